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
from dtpm_core.files.imageio import read_image


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
    qtbot.waitUntil(lambda: window.controller.session.image is not None, timeout=30_000)
    assert window.controller.session.image.path == image
    _drop(window, [clean], Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: window.controller.session.reference_path == clean, timeout=30_000)
    assert window.controller.session.image.path == image
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


# issue 16: the app's batch uses the planner of `dtpm-restore` -------------------------------

def test_colliding_names_in_the_input_folder_used_as_output_folder(models, tmp_path,
                                                                   make_window, qtbot):
    """x.PNG + x.png, and photo.png beside the user's own photo_restored.png, with the output
    folder set to the input folder: four inputs, four distinct results, no input touched,
    and a re-run finds everything done without reading a result back as an input."""
    folder = tmp_path / "photos"
    folder.mkdir()
    inputs = [make_image(folder / name, seed=i) for i, name in
              enumerate(("x.PNG", "x.png", "photo.png", "photo_restored.png"))]
    before = {p: _sha(p) for p in inputs}
    window = make_window(default_k=1, output_dir=str(folder), output_format="png8")
    window.controller.start()
    _drop(window, [folder])
    batch = window.batch
    targets = [e.target.name.casefold() for e in batch.entries]
    assert len(targets) == 4 and len(set(targets)) == 4
    assert not {e.target.resolve() for e in batch.entries} & {p.resolve() for p in inputs}
    with qtbot.waitSignal(batch.finished, timeout=60_000) as finished:
        window.start_batch()
    assert (finished.args[0].done, finished.args[0].skipped) == (4, 0)
    assert {p: _sha(p) for p in before} == before
    results = {e.target: _sha(e.target) for e in batch.entries}
    assert len(set(results.values())) == 4  # each holds its own image's result

    batch.replan()
    assert sorted(e.source.name for e in batch.entries) == sorted(p.name for p in inputs)
    with qtbot.waitSignal(batch.finished, timeout=60_000) as again:
        window.start_batch()
    assert (again.args[0].done, again.args[0].skipped) == (0, 4)
    assert {t: _sha(t) for t in results} == results


def test_special_and_unsupported_files_are_listed_as_skipped(models, tmp_path, make_window,
                                                            qtbot):
    import os

    folder = tmp_path / "mixed"
    folder.mkdir()
    make_image(folder / "good.png")
    os.mkfifo(folder / "pipe.png")
    os.symlink("/dev/zero", folder / "zero.png")
    (folder / "anim.gif").write_bytes(b"GIF89a")
    window = make_window(default_k=1, output_dir=str(tmp_path / "out"))
    window.controller.start()
    _drop(window, [folder])
    assert [e.source.name for e in window.batch.entries] == ["good.png"]
    text = window.banner.text()
    assert "anim.gif" in text and "pipe.png" in text and "zero.png" in text
    with qtbot.waitSignal(window.batch.finished, timeout=60_000) as finished:
        window.start_batch()
    assert finished.args[0].done == 1


def test_unwritable_output_folder_is_reported_before_any_work(models, tmp_path, make_window):
    folder = tmp_path / "in"
    folder.mkdir()
    make_image(folder / "a.png")
    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should go")
    window = make_window(default_k=1, output_dir=str(blocker / "sub"))
    window.controller.start()
    _drop(window, [folder])
    window.start_batch()
    assert not window.batch.running
    assert "cannot write results to" in window.banner.text()
    assert set(window.batch.status) == {"queued"}


def test_nan_weights_fail_the_item_and_write_nothing(tmp_path, qtbot):
    """Weights holding NaN (with a valid hash) give a failed item naming the model file, never
    an all-black result."""
    import torch

    from dtpm_app.batch_worker import BatchEntry, BatchModels, BatchSettings, BatchWorker
    from dtpm_core.config import Stage2Options, preset
    from dtpm_core.modelfiles.weights import save_adapter, save_base
    from dtpm_core.networks.model import DTPM

    model = DTPM(preset("tiny", denoiser__semantic="none"), Stage2Options()).eval()
    with torch.no_grad():
        next(model.predictor.parameters()).fill_(float("nan"))
    sha = save_base(tmp_path / "base.safetensors", model)
    save_adapter(tmp_path / "nan.safetensors", model, "motion-deblur", sha)
    source = make_image(tmp_path / "a.png")
    target = tmp_path / "out" / "a.png"
    models = BatchModels("dtpm", "motion-deblur", tmp_path / "base.safetensors",
                         tmp_path / "nan.safetensors")
    worker = BatchWorker([BatchEntry(source, target)],
                         BatchSettings(models, "cpu", 1, 0, 0, "png8", 92))
    with qtbot.waitSignal(worker.finished, timeout=60_000) as finished:
        worker.run()
    summary = finished.args[0]
    assert (summary.done, summary.failed) == (0, 1) and not summary.error
    assert "nan.safetensors" in summary.failures[0][1] and "NaN" in summary.failures[0][1]
    assert not target.exists()


def _run_worker(qtbot, entries, settings):
    from dtpm_app.batch_worker import BatchWorker

    worker = BatchWorker(entries, settings)
    with qtbot.waitSignal(worker.finished, timeout=60_000) as finished:
        worker.run()
    return finished.args[0]


def test_batch_gives_the_engine_s_bytes_for_both_engines(model_dir, tmp_path, qtbot):
    """The batch restores through dtpm_core.engines.engine: K, seed, strength and tile (DTPM), task
    and ensemble (single-pass) reach the spec, and the file holds the engine's result."""
    import numpy as np
    import torch

    from dtpm_app.batch_worker import BatchEntry, BatchModels, BatchSettings
    from dtpm_core.engines.engine import DTPMSpec, SinglePassSpec, load_engine
    from dtpm_core.files.imageio import write_image
    from dtpm_core.singlepass.config import singlepass_preset
    from dtpm_core.singlepass.network import SinglePassNet
    from dtpm_core.singlepass.weights import save_singlepass

    torch.manual_seed(0)
    fast = tmp_path / "fast.safetensors"
    save_singlepass(fast, SinglePassNet(singlepass_preset("tiny", width=8)),
                    tasks={"desnow": 15, "raindrop": 22})
    source = make_image(tmp_path / "a.png")
    image = read_image(source).rgb
    base, adapter = model_dir / "base.safetensors", model_dir / "motion-deblur.safetensors"
    cases = {
        "dtpm": (BatchModels("dtpm", "motion-deblur", base, adapter),
                 DTPMSpec(base, adapter, steps=(2,), seed=3, strength=0.5, tile=32,
                          device="cpu")),
        "single-pass": (BatchModels("single-pass", "raindrop", singlepass=fast, ensemble=True),
                        SinglePassSpec(fast, "raindrop", ensemble=True, tile=32, device="cpu")),
        "single-pass, no ensemble": (BatchModels("single-pass", "raindrop", singlepass=fast),
                                     SinglePassSpec(fast, "raindrop", tile=32, device="cpu")),
    }
    for name, (models, spec) in cases.items():
        target = tmp_path / name / "a.png"
        summary = _run_worker(qtbot, [BatchEntry(source, target)],
                              BatchSettings(models, "cpu", 2, 3, 32, "png8", 92, strength=0.5))
        assert (summary.done, summary.failed, summary.error) == (1, 0, ""), summary
        expected = tmp_path / name / "expected.png"
        write_image(expected, load_engine(spec).restore(image).image, bit_depth=8)
        assert np.array_equal(read_image(target).rgb, read_image(expected).rgb), name


def test_a_task_the_single_pass_file_lacks_fails_before_the_first_file(tmp_path, qtbot):
    import torch

    from dtpm_app.batch_worker import BatchEntry, BatchModels, BatchSettings
    from dtpm_core.singlepass.config import singlepass_preset
    from dtpm_core.singlepass.network import SinglePassNet
    from dtpm_core.singlepass.weights import save_singlepass

    torch.manual_seed(0)
    fast = tmp_path / "fast.safetensors"
    save_singlepass(fast, SinglePassNet(singlepass_preset("tiny", width=8)),
                    tasks={"desnow": 15})
    entries = [BatchEntry(make_image(tmp_path / f"{n}.png"), tmp_path / "out" / f"{n}.png")
               for n in ("a", "b")]
    summary = _run_worker(qtbot, entries, BatchSettings(
        BatchModels("single-pass", "raindrop", singlepass=fast), "cpu", 4, 0, 0, "png8", 92))
    assert (summary.done, summary.failed, summary.remaining) == (0, 0, 2)
    assert "raindrop" in summary.error and "desnow" in summary.error
    assert not (tmp_path / "out").exists()
