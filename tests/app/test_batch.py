"""Batch: a dropped folder is restored into the output folder, inputs stay untouched,
unreadable files are reported, finished items are skipped on a re-run."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

from app_helpers import make_image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from dtpm_app.batch_runner import match_reference
from dtpm_core.imageio import read_image


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _drop(window, paths, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """What a drag from a file manager delivers: enter, then drop (Qt ignores a drop
    without an enter first)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the QPoint constructor
        enter = QDragEnterEvent(QPoint(200, 200), Qt.DropAction.CopyAction, mime,
                                Qt.MouseButton.LeftButton, modifiers)
    assert QApplication.sendEvent(window, enter) and enter.isAccepted()
    drop = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, modifiers)
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted()


def test_dropped_folder_is_restored_without_touching_inputs(models, tmp_path, make_window,
                                                            qtbot):
    folder = tmp_path / "shoot"
    (folder / "day2").mkdir(parents=True)
    inputs = [make_image(folder / "a.png", seed=1), make_image(folder / "b.jpg", seed=2),
              make_image(folder / "day2" / "c.tif", seed=3)]
    broken = folder / "day2" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "notes.txt").write_text("not an image")
    before = {p: _sha(p) for p in [*inputs, broken]}
    outdir = tmp_path / "out"

    window = make_window(default_k=2, output_dir=str(outdir), output_format="png8")
    window.controller.start()
    qtbot.waitUntil(lambda: window.controller.models_ready, timeout=30_000)
    _drop(window, [folder])
    batch = window.batch
    assert len(batch.entries) == 4 and set(batch.status) == {"queued"}
    assert window.batch_dock.isVisible()

    with qtbot.waitSignal(batch.finished, timeout=60_000) as finished:
        window.batch_panel.start_button.click()
    summary = finished.args[0]
    assert (summary.done, summary.skipped, summary.failed) == (3, 0, 1)
    by_name = {e.source.name: s for e, s in zip(batch.entries, batch.status, strict=True)}
    assert by_name == {"a.png": "done", "b.jpg": "done", "c.tif": "done",
                       "broken.png": "failed"}
    failed_row = [m for e, m in zip(batch.entries, batch.messages, strict=True)
                  if e.source == broken]
    assert "broken.png" in failed_row[0]
    outputs = sorted(p.relative_to(outdir).as_posix() for p in outdir.rglob("*") if p.is_file())
    assert outputs == ["a.png", "b.png", "day2/c.png"]
    for out in outdir.rglob("*.png"):
        assert read_image(out).rgb.shape == (48, 64, 3)
    assert {p: _sha(p) for p in before} == before  # inputs byte-identical
    assert "1 failed" in window.batch_panel.summary.text()
    assert window.banner.isVisible() and "broken.png" in window.banner.text()

    # a re-run skips what is already done and touches nothing
    stamps = {p: p.stat().st_mtime_ns for p in outdir.rglob("*.png")}
    with qtbot.waitSignal(batch.finished, timeout=60_000) as again:
        window.start_batch()
    assert (again.args[0].done, again.args[0].skipped, again.args[0].failed) == (0, 3, 1)
    assert {p: p.stat().st_mtime_ns for p in outdir.rglob("*.png")} == stamps


def test_output_folder_inside_the_input_is_not_read_back(models, tmp_path, make_window, qtbot):
    folder = tmp_path / "photos"
    folder.mkdir()
    make_image(folder / "a.png")
    window = make_window(default_k=1, output_dir=str(folder / "restored"))
    window.controller.start()
    _drop(window, [folder])
    with qtbot.waitSignal(window.batch.finished, timeout=60_000):
        window.start_batch()
    assert (folder / "restored" / "a.png").is_file()
    window.batch.replan()
    assert [e.source.name for e in window.batch.entries] == ["a.png"]


def test_drop_single_file_opens_it_and_shift_drop_sets_the_reference(models, tmp_path,
                                                                      make_window, qtbot):
    image = make_image(tmp_path / "x.png", seed=4)
    clean = make_image(tmp_path / "x_clean.png", seed=5)
    window = make_window(default_k=1)
    window.controller.start()
    _drop(window, [image])
    qtbot.waitUntil(lambda: window.controller.image is not None, timeout=30_000)
    assert window.controller.image.path == image
    _drop(window, [clean], Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: window.controller.reference_path == clean, timeout=30_000)
    assert window.controller.image.path == image
    assert not window.batch.entries


def test_reference_matched_by_name(tmp_path):
    refs = tmp_path / "gt"
    refs.mkdir()
    target = make_image(refs / "IMG_1.png")
    assert match_reference(tmp_path / "in" / "IMG_1.jpg", refs) == target
    assert match_reference(tmp_path / "in" / "IMG_2.jpg", refs) is None
    assert match_reference(tmp_path / "in" / "IMG_1.jpg", None) is None


def test_pause_holds_the_batch_and_cancel_stops_it(models, tmp_path, make_window, qtbot):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(3):
        make_image(folder / f"{i}.png", seed=i)
    outdir = tmp_path / "out"
    window = make_window(default_k=3, output_dir=str(outdir))
    window.controller.start()
    _drop(window, [folder])
    batch = window.batch
    started = []
    batch.itemChanged.connect(lambda i: batch.status[i] == "running" and started.append(i))
    window.start_batch()
    batch.pause()  # before the worker has loaded its model
    assert window.batch_panel.pause_button.text() == "Resume"
    with qtbot.waitSignal(batch.finished, timeout=30_000) as finished:
        window.batch_panel.cancel_button.click()
    summary = finished.args[0]
    assert (summary.done, summary.remaining) == (0, 3) and not started
    assert not outdir.exists() or not any(outdir.iterdir())
    assert set(batch.status) == {"queued"}

    with qtbot.waitSignal(batch.finished, timeout=60_000) as finished:
        window.start_batch()
        batch.pause()
        batch.resume()
    assert finished.args[0].done == 3
