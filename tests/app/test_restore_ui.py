"""The interactive restoration: slider and cache, trade-off plot, cancel, responsiveness,
task switching without reloading the base, errors shown instead of crashing."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
from app_helpers import hold_first_pass, job_kind, make_image, wait_result, wait_settled
from PySide6.QtCore import QTimer

from dtpm_app.job_planner import CURVE_KS


def test_slider_changes_the_result_and_moves_the_marker(models, image_file, make_window,
                                                        qtbot):
    window = make_window(default_k=4)
    window.start([image_file])
    wait_settled(qtbot, window)
    plot = window.plot
    assert plot.marker_k() == pytest.approx(4)
    assert set(plot._state.psnr) == set(CURVE_KS)
    assert plot.psnr_plot.getAxis("left").labelText == "PSNR (dB)"
    assert "vs the initial prediction" in plot.caption.text()
    assert "random" in plot.canvas.toolTip() or "ImageNet" in plot.canvas.toolTip()
    _, before = window.shown_images()
    assert window._display.result_k == 4

    window.controls.slider.setValue(2)
    assert plot.marker_k() == pytest.approx(2)  # the marker follows at once
    assert plot.markers[1].value() == pytest.approx(math.log10(2))
    wait_result(qtbot, window)
    _, after = window.shown_images()
    assert window._display.result_k == 2
    assert after.shape == before.shape and not np.array_equal(after, before)

    # back to K=4: cached, shown without a new job
    jobs = []
    window.controller._submit.connect(lambda job: jobs.append(job))
    window.controls.slider.setValue(4)
    window.controls.flush()
    assert window._display.result_k == 4 and not window._display.pending
    assert np.array_equal(window.shown_images()[1], before)
    assert not [j for j in jobs if job_kind(j.request) == "restore dtpm"]


def test_reference_relabels_the_curve(models, image_file, tmp_path, make_window, qtbot):
    reference = make_image(tmp_path / "clean.png", seed=1)
    window = make_window(default_k=1)
    window.start([image_file], reference=reference)
    qtbot.waitUntil(lambda: window.controller.session.reference is not None, timeout=30_000)
    wait_settled(qtbot, window)
    plot = window.plot
    assert "vs the reference" in plot.caption.text()
    assert "clean.png" in window.reference_label.text()
    window.right_side.setCurrentIndex(window.right_side.findData("reference"))
    assert np.array_equal(window.shown_images()[1], window.controller.session.reference)


def test_cancel_stops_within_a_step_and_the_app_stays_usable(models, tmp_path, make_window,
                                                             qtbot):
    image = make_image(tmp_path / "big.png", 96, 128)
    window = make_window(default_k=50)
    window.controller.start()
    qtbot.waitUntil(lambda: window.controller.models_ready and window.controller.idle,
                    timeout=30_000)
    seen, clicked, passes = threading.Event(), threading.Event(), []
    hold_first_pass(window.controller.worker.engines["dtpm"], seen, clicked, passes)
    window.controller.open_image(image)
    qtbot.waitUntil(seen.is_set, timeout=30_000)
    # while it runs: a progress bar, the stage and an estimate of the time left
    # (the bar shows busy first; the pass count arrives as a queued signal: wait for it,
    # a loaded machine delivers it later)
    qtbot.waitUntil(lambda: window.progress.isVisible() and window.progress.maximum() > 0,
                    timeout=10_000)
    assert (window.progress.value(), window.progress.maximum()) == (1, 51)
    assert "K=50" in window.status_text.text() and "left" in window.status_text.text()
    assert window.cancel_action.isEnabled()
    # the worker's `cancelled`, relayed by the controller (waiting on a signal of an object
    # in another thread would run pytest-qt's slot in that thread)
    with qtbot.waitSignal(window.controller.jobCancelled, timeout=10_000):
        window.cancel_action.trigger()
        clicked.set()
    assert passes == [1]  # stopped right after the pass during which Cancel was clicked
    qtbot.waitUntil(lambda: window.controller.idle, timeout=5_000)
    assert window.controller.current_result() is None
    assert not window._display.pending and window.progress.isHidden()

    window.controls.slider.setValue(1)  # a new request restores normally
    wait_result(qtbot, window)
    assert window.controller.current_result() is not None


def test_event_loop_keeps_serving_timers_during_a_restoration(models, tmp_path, make_window,
                                                               qtbot):
    image = make_image(tmp_path / "big.png", 96, 128)
    window = make_window(default_k=50)
    window.controller.start()
    qtbot.waitUntil(lambda: window.controller.models_ready and window.controller.idle,
                    timeout=30_000)
    ticks = []
    timer = QTimer()
    timer.setInterval(15)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    progress = []
    window.controller.progressChanged.connect(
        lambda p: p is not None and p.total and progress.append(len(ticks)))
    timer.start()
    t0 = time.monotonic()
    with qtbot.waitSignal(window.controller.displayChanged, timeout=60_000,
                          check_params_cb=lambda d: d.result is not None):
        window.controller.open_image(image)
    elapsed = time.monotonic() - t0
    timer.stop()
    assert len(progress) > 10, "the restoration did not report its passes"
    # 51 network passes: long enough for many ticks, all served while the worker computes
    assert elapsed > 0.15
    assert len(ticks) >= max(5, 0.3 * elapsed / 0.015), (len(ticks), elapsed)
    assert progress[-1] - progress[0] >= 3  # ticks kept coming between the first and last pass


def test_switching_task_loads_the_adapter_but_not_the_base(models, image_file, make_window,
                                                           qtbot):
    window = make_window(default_k=1, task="motion-deblur")
    jobs = []
    window.controller._submit.connect(lambda job: jobs.append(job_kind(job.request)))
    window.start([image_file])
    wait_result(qtbot, window)
    first = window.controller.current_result()
    assert jobs.count("load dtpm") == 1
    picker = window.task_picker
    index = picker.combo.findData("defocus-deblur")
    picker.combo.setCurrentIndex(index)
    picker.combo.activated.emit(index)
    dtpm = window.controller.session.dtpm
    qtbot.waitUntil(lambda: dtpm.adapter is not None and dtpm.adapter.task == "defocus-deblur",
                    timeout=30_000)
    wait_result(qtbot, window)
    assert jobs.count("load dtpm") == 1 and jobs.count("switch adapter") == 2
    assert not np.array_equal(window.controller.current_result(), first)
    assert window.settings.task == "defocus-deblur"

    # another device reloads the base (then the adapter); cached results stay valid
    window.controls.device.setCurrentIndex(window.controls.device.findData("cpu"))
    qtbot.waitUntil(lambda: jobs.count("load dtpm") == 2 and window.controller.idle,
                    timeout=30_000)
    assert jobs.count("switch adapter") == 3 and window.device_label.text() == "Device: cpu"


def test_unreadable_image_is_reported_not_fatal(models, tmp_path, image_file, make_window,
                                                qtbot):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    window = make_window(default_k=1)
    window.start([broken])
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=30_000)
    assert window.banner.level == "error" and "broken.jpg" in window.banner.text()
    window.controller.open_image(image_file)  # still usable
    wait_result(qtbot, window)


def test_bad_model_file_is_reported(models, tmp_path, make_window, qtbot, monkeypatch):
    bad = tmp_path / "bad-models"
    bad.mkdir()
    (bad / "base.safetensors").write_bytes(b"\0" * 100)
    (bad / "a.safetensors").write_bytes(b"\0" * 100)
    (bad / "manifest.json").write_text('{"base": "base.safetensors", "adapters": '
                                       '[{"task": "a", "file": "a.safetensors"}]}')
    monkeypatch.setenv("DTPM_USER_MODELS", str(bad))
    window = make_window()
    window.controller.start()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=30_000)
    assert window.banner.level == "error"
    assert "base.safetensors" in window.banner.text()
    qtbot.waitUntil(lambda: window.controller.idle, timeout=5_000)


def test_errors_are_worded_for_people():
    from dtpm_app.workers import describe_error
    from dtpm_core.errors import (
        BaseMismatchError,
        ConfigError,
        ImageReadError,
        OutOfMemory,
        WeightsError,
    )

    cases = {OutOfMemory("oom on cpu"): "memory", ImageReadError("Cannot read x.png"): "image",
             BaseMismatchError("a.safetensors"): "model", WeightsError("b.safetensors"): "model",
             ConfigError("steps"): "setting", RuntimeError("boom"): "internal"}
    for exc, kind in cases.items():
        info = describe_error(exc)
        assert info.kind == kind and info.title and str(exc) in info.message


def test_step_hint_shows_held_out_scores_and_warns_where_the_model_gives_noise(
        models, image_file, make_window, qtbot):
    window = make_window(default_k=4, task="motion-deblur")
    window.start([image_file])
    qtbot.waitUntil(lambda: window._models.scores is not None, timeout=30_000)
    hint = window.controls.hint
    assert "K=4: 24.0 dB on held-out images (degraded input 25.0 dB)" in hint.text()
    window.controls.slider.setValue(1)
    assert "K=1 scored 11.0 dB" in hint.text() and "expect noise" in hint.text()
    assert "b45309" in hint.styleSheet()  # shown as a warning
    window.controls.slider.setValue(2)  # not evaluated: the usual hint
    assert "fidelity" in hint.text() and "b45309" not in hint.styleSheet()

    # an adapter without stored scores: the usual hint at every K
    picker = window.task_picker
    index = picker.combo.findData("defocus-deblur")
    picker.combo.setCurrentIndex(index)
    picker.combo.activated.emit(index)
    dtpm = window.controller.session.dtpm
    qtbot.waitUntil(lambda: dtpm.adapter is not None and dtpm.adapter.task == "defocus-deblur",
                    timeout=30_000)
    window.controls.slider.setValue(1)
    assert window._models.scores is None and "fidelity" in hint.text()
    wait_settled(qtbot, window)
