"""Issue 21, the app: a second batch of same-named photos is restored (outputs belong to their
inputs), no stale or wrong words (notices, batch states, the distance's name), saving names
and questions, the single-pass engine's own "below input" marks, and small things a
photographer notices (seed change, Ctrl+E in a spin box, 1:1, a 1024x700 window)."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import hold_first_pass, make_image, wait_result, wait_settled
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication, QMessageBox
from test_single_pass_engine import (  # noqa: F401  (fixtures)
    single_pass_model_dir,
    single_pass_models,
)
from test_walkthrough import _message_box, _stop_pollers, answer_next_dialog  # noqa: F401

from dtpm_app.single_pass_scores import single_pass_scores
from dtpm_app.state import CurveState
from dtpm_core.options import SINGLE_PASS


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shoot(folder: Path, seed: int, count: int = 2) -> list[Path]:
    folder.mkdir(parents=True)
    return [make_image(folder / f"{i:03d}.png", 40, 56, seed=seed + i) for i in range(count)]


def _run_batch(qtbot, window):
    with qtbot.waitSignal(window.batch.finished, timeout=60_000) as finished:
        window.start_batch()
    return finished.args[0]


# ------------------------------------------------------------------ item 8: second batch


def test_a_second_shoot_with_the_same_names_is_restored(models, tmp_path, make_window, qtbot):
    """Batch of shoot1/000-001, quit, start with shoot2 (same names): its own output folder,
    both restored; nothing of the first batch changed."""
    first, second = tmp_path / "shoot1", tmp_path / "shoot2"
    _shoot(first, seed=1)
    _shoot(second, seed=11)
    window = make_window(default_k=1)
    window.start([first])
    qtbot.waitUntil(lambda: window.controller.models_ready, timeout=30_000)
    assert window.batch.outdir == tmp_path / "shoot1-restored"
    summary = _run_batch(qtbot, window)
    assert (summary.done, summary.skipped, summary.failed) == (2, 0, 0)
    kept = {p: _sha(p) for p in (tmp_path / "shoot1-restored").glob("*.png")}
    window.close()  # quit: the settings keep "shoot1-restored"

    again = make_window(default_k=1)
    again.start([second])
    qtbot.waitUntil(lambda: again.controller.models_ready, timeout=30_000)
    assert again.batch.outdir == tmp_path / "shoot2-restored"
    assert again.batch_panel.outdir.text() == str(tmp_path / "shoot2-restored")
    summary = _run_batch(qtbot, again)
    assert (summary.done, summary.skipped, summary.failed) == (2, 0, 0)
    assert sorted(p.name for p in (tmp_path / "shoot2-restored").glob("*.png")) == \
        ["000.png", "001.png"]
    assert {p: _sha(p) for p in kept} == kept


def test_a_chosen_output_folder_keeps_other_photos_results(models, tmp_path, make_window,
                                                          qtbot):
    """Into one chosen folder: the second shoot's photos are restored beside the first
    shoot's results (never reported as done, never replacing them); a rerun skips them."""
    first, second, outdir = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    _shoot(first, seed=1)
    _shoot(second, seed=11)
    window = make_window(default_k=1, output_dir=str(outdir))
    window.controller.start()
    qtbot.waitUntil(lambda: window.controller.models_ready, timeout=30_000)
    window.open_paths([first])
    assert _run_batch(qtbot, window).done == 2
    kept = {p: _sha(p) for p in outdir.glob("*.png")}
    window.batch.clear()
    window.open_paths([second])
    assert window.batch.outdir == outdir  # a folder the person chose stays
    summary = _run_batch(qtbot, window)
    assert (summary.done, summary.skipped) == (2, 0)
    assert {p: _sha(p) for p in kept} == kept
    assert sorted(p.name for p in outdir.glob("*.png")) == \
        ["000.png", "000_restored.png", "001.png", "001_restored.png"]
    assert "000_restored.png" in window.banner.text()  # the plan says why
    assert "another photo" in window.banner.text()
    assert window.batch.outputs[0] == str(outdir / "000_restored.png")
    again = _run_batch(qtbot, window)  # its own results are recognised
    assert (again.done, again.skipped) == (0, 2)


# ------------------------------------------------------------------ item 9: stale words


def test_photo_notices_go_when_another_photo_opens(models, tmp_path, make_window, qtbot):
    big = make_image(tmp_path / "big.png", 1000, 1000)
    small = make_image(tmp_path / "small.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    window = make_window(default_k=10)
    window.controller.start()
    qtbot.waitUntil(lambda: window.controller.models_ready, timeout=30_000)
    window.controller.open_image(big)
    qtbot.waitUntil(lambda: window.banner.isVisible()
                    and window.banner.title.startswith("Steps set to K=4"), timeout=30_000)
    window.controller.open_image(small)
    qtbot.waitUntil(lambda: window.controller.session.image.path == small, timeout=30_000)
    assert not window.banner.isVisible(), window.banner.text()

    window.controller.open_image(broken)
    qtbot.waitUntil(lambda: window.banner.isVisible()
                    and window.banner.title == "Cannot read the image", timeout=30_000)
    window.controller.open_image(big)
    qtbot.waitUntil(lambda: window.controller.session.image.path == big, timeout=30_000)
    assert window.banner.title != "Cannot read the image" or not window.banner.isVisible()


def test_batch_words_follow_the_batch(models, tmp_path, make_window, qtbot):
    """The "queued ... press Start batch" notice gives way when the batch starts and when it
    ends; finished rows name their result; Cancel says cancelled, not finished."""
    folder = tmp_path / "shoot"
    _shoot(folder, seed=1, count=3)
    window = make_window(default_k=1)
    window.start([folder])
    assert window.banner.title == "3 images queued"
    qtbot.waitUntil(lambda: window.controller.models_ready, timeout=30_000)
    with qtbot.waitSignal(window.batch.finished, timeout=60_000) as finished:
        window.start_batch()
        assert window.banner.title == "Batch running"
        assert "press Start batch" not in window.banner.text()
    summary = finished.args[0]
    assert summary.done == 3 and not summary.cancelled
    assert window.banner.title == "Batch finished"
    outdir = tmp_path / "shoot-restored"
    for i in range(3):
        cell = window.batch_panel.tree.topLevelItem(i).text(2)
        assert str(outdir / f"{i:03d}.png") in cell and " s" in cell

    for p in outdir.glob("*.png"):
        p.unlink()
    window.batch.replan()
    window.start_batch()
    with qtbot.waitSignal(window.batch.finished, timeout=60_000) as finished:
        window.batch.cancel()
    assert finished.args[0].cancelled
    assert "Batch cancelled" in window.statusBar().currentMessage()
    assert "finished" not in window.statusBar().currentMessage()
    assert window.batch_panel.summary.text().startswith("Cancelled")


def test_a_paused_item_says_so(models, tmp_path, make_window, qtbot):
    folder = tmp_path / "shoot"
    _shoot(folder, seed=1, count=2)
    window = make_window(default_k=1, output_dir=str(tmp_path / "out"))
    window.controller.start()
    window.open_paths([folder])
    batch = window.batch
    seen = []
    batch.itemChanged.connect(lambda i: seen.append((i, batch.status[i])))
    with qtbot.waitSignal(batch.finished, timeout=60_000):
        window.start_batch()
        qtbot.waitUntil(lambda: (0, "running") in seen, timeout=30_000)
        batch.pause()
        assert batch.status[0] == "paused"
        assert window.batch_panel.tree.topLevelItem(0).text(1) == "paused"
        batch.resume()
        assert batch.status[0] in ("running", "done")
    assert batch.status == ["done", "done"]


def test_an_item_s_time_leaves_the_pause_out(tmp_path, qtbot, monkeypatch):
    """A restoration paused for 1.5 s in its middle reports its own time, not the pause."""
    from dtpm_app import batch_worker
    from dtpm_app.batch_worker import BatchEntry, BatchModels, BatchSettings, BatchWorker
    from dtpm_core.engines.engine import EngineResult

    class Progress:
        done, total = 1, 2

    worker: list = []

    class PausingEngine:
        def restore(self, rgb, progress=None, should_stop=None):
            start = time.perf_counter()
            worker[0].pause()
            threading.Timer(1.5, worker[0].resume).start()
            progress(Progress())  # waits here while paused, as after a network pass
            return EngineResult(SINGLE_PASS, rgb, "desnow", 0, time.perf_counter() - start)

    monkeypatch.setattr(batch_worker, "load_batch_engine", lambda settings: PausingEngine())
    source = make_image(tmp_path / "a.png")
    settings = BatchSettings(BatchModels(SINGLE_PASS, "desnow", singlepass=tmp_path / "x"),
                             "cpu", 1, 0, 0, "png8", 92)
    worker.append(BatchWorker([BatchEntry(source, tmp_path / "out" / "a.png")], settings))
    results = []
    worker[0].item_finished.connect(lambda *args: results.append(args))
    with qtbot.waitSignal(worker[0].finished, timeout=30_000):
        worker[0].run()
    index, status, message, output = results[0]
    assert status == "done" and output == str(tmp_path / "out" / "a.png")
    assert float(message.split(" s")[0]) < 1.0, message


def test_the_distance_keeps_its_name_when_a_new_curve_starts(models, image_file, make_window,
                                                            qtbot):
    window = make_window(default_k=1)
    window.start([image_file])
    wait_settled(qtbot, window)
    label = window.plot.lpips_plot.getAxis("left").labelText
    assert label in ("LPIPS", "EffNet<br>distance")
    labels = []
    window.controller.curveChanged.connect(
        lambda state: labels.append(window.plot.lpips_plot.getAxis("left").labelText))
    window.controls.seed.setValue(3)  # a new curve (seed is part of its key)
    wait_settled(qtbot, window)
    assert labels and set(labels) == {label}


# ------------------------------------------------------------------ item 10: saving


def test_save_names_say_the_strength_and_keep_both_counts_as_saved(models, tmp_path,
                                                                   make_window, qtbot):
    photo = make_image(tmp_path / "photo.png")
    window = make_window(default_k=1)
    window.start([photo])
    wait_result(qtbot, window)
    window.saver.folder = tmp_path  # as after a first Save As into the photo's folder
    with qtbot.waitSignal(window.controller.saved, timeout=30_000):
        window.save_action.trigger()
    assert (tmp_path / "photo_restored_dtpm-K1.png").is_file()

    window.controls.strength.setValue(0.5)
    qtbot.waitUntil(lambda: window.controller.current_result() is not None
                    and window.controller.session.strength == 0.5, timeout=60_000)
    assert window.controller.result_tag() == "dtpm-K1-strength0.5"
    with qtbot.waitSignal(window.controller.saved, timeout=30_000):
        window.save_action.trigger()  # another name: nothing to ask
    assert (tmp_path / "photo_restored_dtpm-K1-strength0.5.png").is_file()

    window.controls.strength.setValue(1.0)  # the strength 1 result again, from the cache
    window.controls.seed.setValue(4)
    wait_result(qtbot, window)
    qtbot.waitUntil(lambda: not window._display.pending, timeout=60_000)
    keep = _message_box("Keep both")
    answer_next_dialog(QMessageBox, keep)
    with qtbot.waitSignal(window.controller.saved, timeout=30_000):
        window.save_action.trigger()
    assert (tmp_path / "photo_restored_dtpm-K1-2.png").is_file()
    asked = answer_next_dialog(QMessageBox, _message_box("Cancel"))
    said = []
    show = window.saver.show_message
    window.saver.show_message = lambda *message: (said.append(message), show(*message))
    window.save_action.trigger()  # the same result, unchanged: saved already
    qtbot.wait(300)
    assert not asked
    assert said[0][1] == "Already saved" and "photo_restored_dtpm-K1-2.png" in said[0][2]


def test_save_during_a_recompute(models, tmp_path, make_window, qtbot):
    """A new seed keeps the old result on screen (labelled with its seed) and Save takes it;
    a new strength has no result to show yet, and Save says why."""
    photo = make_image(tmp_path / "photo.png", 96, 128)
    window = make_window(default_k=1)
    c = window.controller
    window.start([photo])
    wait_result(qtbot, window)
    before = c.current_result()
    seen, clicked, passes = threading.Event(), threading.Event(), []
    hold_first_pass(c.worker.engines["dtpm"], seen, clicked, passes)
    window.controls.seed.setValue(9)
    qtbot.waitUntil(seen.is_set, timeout=30_000)
    try:
        d = window._display
        assert d.result is before and d.pending
        assert window.view._labels[1] == "Result · K=1, seed 0 (computing seed 9…)"
        target = tmp_path / "held.png"
        with qtbot.waitSignal(c.saved, timeout=30_000):
            c.save_result(target, "png8", 90)
        assert "seed 0" in window.status_text.text() or target.is_file()
        shown = c.shown_result()
        assert shown is not None and shown.key.seed == 0 and "seed 0" in shown.label
    finally:
        clicked.set()
    wait_result(qtbot, window)
    assert c.shown_result().key.seed == 9

    seen.clear()
    clicked.clear()
    window.controls.strength.setValue(0.5)
    qtbot.waitUntil(seen.is_set, timeout=30_000)
    try:
        assert window._display.result is None  # never another strength's result
        window.save_action.trigger()
        assert window.banner.title == "Nothing to save yet"
        assert "being computed" in window.banner.text()
    finally:
        clicked.set()


# ------------------------------------------------------------------ item 11: single-pass marks


@pytest.fixture(scope="session")
def scored_model_dir(single_pass_model_dir, tmp_path_factory) -> Path:  # noqa: F811
    """The single-pass test models, with a motion-deblur adapter whose stored evaluation puts
    the single-pass network ("fast", as older evaluations call it) below the input, and DTPM
    above it."""
    from dtpm_core.config import Stage2Options, preset
    from dtpm_core.modelfiles.weights import save_adapter, save_base
    from dtpm_core.networks.model import DTPM

    folder = tmp_path_factory.mktemp("scored-models")
    for file in single_pass_model_dir.iterdir():
        shutil.copy(file, folder / file.name)
    torch.manual_seed(0)  # the base of conftest.model_dir
    model = DTPM(preset("tiny", denoiser__semantic="none"), Stage2Options()).eval()
    sha = save_base(folder / "scratch-base.safetensors", model)
    metrics = {"eval": [
        {"image": image, "method": method, "steps": "", "psnr": psnr}
        for image in ("a.png", "b.png")
        for method, psnr in (("input", "25.0"), ("initial", "26.0"), ("K=4", "26.5"),
                             ("fast", "24.2"))]}
    save_adapter(folder / "motion-deblur.safetensors", model, "motion-deblur", sha,
                 display_name="Motion deblurring (test)", metrics=metrics)
    (folder / "scratch-base.safetensors").unlink()
    return folder


def test_single_pass_scores_are_read_from_the_stored_evaluation(scored_model_dir):
    from dtpm_core.modelfiles.catalog import ModelEntry

    adapters = {"motion-deblur": ModelEntry("motion-deblur", "m",
                                            scored_model_dir / "motion-deblur.safetensors")}
    scores = single_pass_scores(scored_model_dir / "fast.safetensors", adapters)
    score = scores["motion-deblur"]
    assert (score.images, score.input_psnr, score.psnr) == (2, 25.0, 24.2)
    assert score.below_input and score.source == "motion-deblur.safetensors"
    assert single_pass_scores(None, adapters) == {}


def test_the_single_pass_engine_keeps_its_below_input_marks(scored_model_dir, monkeypatch,
                                                           make_window, qtbot):
    monkeypatch.setenv("DTPM_USER_MODELS", str(scored_model_dir))
    window = make_window(default_k=4, task="motion-deblur")
    window.controller.start()
    qtbot.waitUntil(lambda: window.controller.single_pass_ready, timeout=30_000)
    combo = window.task_picker.combo

    def text(task: str) -> str:
        return combo.itemText(combo.findData(task))

    assert "below input" not in text("motion-deblur")  # DTPM beats the input at K=4
    window.engine_picker.buttons[SINGLE_PASS].click()
    qtbot.waitUntil(lambda: window.controller.planner.active_engine == SINGLE_PASS,
                    timeout=10_000)
    assert "below input" in text("motion-deblur")
    tip = combo.itemData(combo.findData("motion-deblur"), Qt.ItemDataRole.ToolTipRole)
    assert "24.2 dB" in tip and "25.0 dB" in tip
    assert "below input" not in text("desnow")  # no stored score: no claim either way
    assert "Single-pass" in window.controls.hint.text() and "24.2 dB" in \
        window.controls.hint.text()


# ------------------------------------------------------------------ item 12: small things


def test_swap_shortcut_reaches_the_window_from_a_spin_box(models, make_window, qtbot):
    """A spin box claims some key sequences as a text field (X11 binds Ctrl+E to "end of
    line"; every platform binds Ctrl+A to "select all"): the swap shortcut must still swap.
    Ctrl+A stands in for X11's Ctrl+E where the test platform does not bind it."""
    window = make_window()
    window.activateWindow()
    for sequence, key in (("Ctrl+E", Qt.Key.Key_E), ("Ctrl+A", Qt.Key.Key_A)):
        window.swap_action.setShortcut(sequence)
        for spin in (window.controls.steps, window.controls.seed):
            spin.setFocus()
            qtbot.waitUntil(lambda s=spin: QApplication.focusWidget() is s, timeout=5_000)
            before = window.compare.sides()
            qtbot.keyClick(spin, key, Qt.KeyboardModifier.ControlModifier)
            assert window.compare.sides() == before[::-1], (sequence, spin)


def test_actual_size_fills_the_view_whatever_the_pan(models, tmp_path, make_window, qtbot):
    photo = make_image(tmp_path / "wide.png", 900, 1400)
    window = make_window(default_k=1)
    window.resize(1024, 700)
    window.controller.start()
    window.controller.open_image(photo)
    qtbot.waitUntil(lambda: window.view.has_image, timeout=30_000)
    view = window.view
    view.fit()
    view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() + 5_000)
    view.verticalScrollBar().setValue(view.verticalScrollBar().value() - 5_000)
    window.actual_action.trigger()
    assert view.zoom == 1.0
    shown = view.visible_image_rect()
    port = view.viewport().rect()
    assert abs(shown.width() - port.width()) <= 1 and abs(shown.height() - port.height()) <= 1

    small = make_image(tmp_path / "small.png", 48, 64)
    window.controller.open_image(small)
    qtbot.waitUntil(lambda: view.visible_image_rect().width() == 64, timeout=30_000)
    view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() + 300)
    window.actual_action.trigger()
    centre = view.mapFromScene(QPointF(32, 24))
    assert abs(centre.x() - port.center().x()) <= 2 and abs(centre.y() - port.center().y()) <= 2


def _segments_hit(points, rect) -> bool:
    """Any segment between consecutive `points` (scene coordinates) passes through `rect`."""
    for a, b in zip(points, points[1:], strict=False):
        for t in np.linspace(0.0, 1.0, 200):
            if rect.contains(QPointF(a.x() + t * (b.x() - a.x()), a.y() + t * (b.y() - a.y()))):
                return True
    return False


def test_single_pass_label_clear_of_the_curve_at_1024x700(models, make_window, qtbot):
    from dtpm_app.widgets.tradeoff_plot import _x

    window = make_window()
    window.resize(1024, 700)
    qtbot.wait(100)
    plot = window.plot
    psnr = {1: 28.3, 2: 28.5, 4: 26.6, 10: 25.2, 20: 24.7, 50: 24.4}  # as the photo
    lpips = {1: 0.23, 2: 0.15, 4: 0.23, 10: 0.32, 20: 0.38, 50: 0.42}
    plot.set_state(CurveState(psnr, lpips, backbone="EffNet-Lite0 feature distance: x",
                              single_pass_psnr=24.9, single_pass_lpips=0.155))
    qtbot.wait(200)  # the views' ranges settle
    for item, values, label in zip((plot.psnr_plot, plot.lpips_plot), (psnr, lpips),
                                   plot.single_pass_labels, strict=True):
        box = item.getViewBox()
        points = [box.mapViewToScene(QPointF(_x(k), v)) for k, v in sorted(values.items())]
        if label.isVisible():
            assert not _segments_hit(points, label.sceneBoundingRect()), label.pos()
            assert box.sceneBoundingRect().contains(label.sceneBoundingRect())
    assert "single&#8209;pass" in plot.caption.text()  # named even where the label has no room


def test_the_status_line_fits_a_1024_window(models, make_window, qtbot):
    window = make_window()
    window.resize(1024, 700)
    qtbot.wait(100)
    window.image_label.setText("4032×3024, 16-bit")
    window.device_label.setText("Device: cpu")
    window.progress.show()
    text = ("Showing DTPM, K=4, texture strength 0.5, seed 12345 (restored in 12.3 s); K=10, "
            "seed 67890 not restored yet · Refining the trade-off curve: K=20 on a 256 px "
            "preview · about 12 s left")
    window.show_status(text)
    qtbot.wait(100)
    label = window.status_text
    shown = label.shown_text() if hasattr(label, "shown_text") else label.text()
    assert label.fontMetrics().horizontalAdvance(shown) <= label.contentsRect().width()
    assert label.geometry().right() <= window.statusBar().width()
    assert label.toolTip() == text and label.text() == text


def test_the_derived_output_folder_is_recognised(tmp_path):
    from dtpm_app.batch_runner import default_output_dir, looks_derived

    shoot = tmp_path / "shoot"
    shoot.mkdir()
    assert default_output_dir(shoot) == tmp_path / "shoot-restored"
    assert looks_derived(tmp_path / "shoot-restored")
    assert not looks_derived(tmp_path / "other-restored")  # no "other" folder beside it
    assert not looks_derived(tmp_path / "results")
