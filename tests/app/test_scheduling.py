"""The job the person asked for first: slider drags restore only where they stop, the engine
in use pre-empts the other engine's side and the curve, a large new photo does not inherit an
expensive K, a batch keeps the processor for itself; and what the app says meanwhile (status,
Cancelled, the result on screen is what Save takes), the first task, the amber flag."""

from __future__ import annotations

import threading

import pytest
from app_helpers import hold_first_pass, job_kind, make_image, wait_result
from test_single_pass_engine import (  # noqa: F401  (fixtures)
    single_pass_model_dir,
    single_pass_models,
)

from dtpm_app.job_planner import CHEAP_K, best_task
from dtpm_core.evaluation.model_scores import HeldOutScores
from dtpm_core.options import SINGLE_PASS


def _jobs(window) -> list:
    jobs: list = []
    window.controller._submit.connect(lambda job: jobs.append(job.request))
    return jobs


def test_a_slider_drag_restores_only_where_it_is_released(models, image_file, make_window,
                                                          qtbot):
    window = make_window(default_k=1)
    window.start([image_file])
    wait_result(qtbot, window)
    jobs = _jobs(window)
    slider = window.controls.slider
    slider.setSliderDown(True)
    for k in range(2, 12):  # dragged over K = 2..11: the marker follows, nothing restores
        slider.setValue(k)
        qtbot.wait(40)
        assert window.plot.marker_k() == pytest.approx(k)
    qtbot.wait(400)
    assert window.controller.session.k == 1
    assert not [j for j in jobs if job_kind(j) == "restore dtpm"]
    slider.setSliderDown(False)  # released at K = 11
    slider.sliderReleased.emit()
    wait_result(qtbot, window)
    assert [j.key.steps for j in jobs if job_kind(j) == "restore dtpm"] == [11]
    for k in (12, 13, 14):  # arrow keys: one restoration once they rest
        slider.setValue(k)
    wait_result(qtbot, window)
    assert [j.key.steps for j in jobs if job_kind(j) == "restore dtpm"] == [11, 14]


def test_switching_to_single_pass_pre_empts_the_dtpm_side(
        single_pass_models, tmp_path,  # noqa: F811
                                                    make_window, qtbot):
    image = make_image(tmp_path / "big.png", 96, 128)
    window = make_window(default_k=50, right_side="dtpm", task="motion-deblur")
    c = window.controller
    c.start()
    qtbot.waitUntil(lambda: c.models_ready and c.single_pass_ready and c.idle, timeout=30_000)
    seen, clicked, passes = threading.Event(), threading.Event(), []
    hold_first_pass(c.worker.engines["dtpm"], seen, clicked, passes)
    jobs = _jobs(window)
    c.open_image(image)
    qtbot.waitUntil(seen.is_set, timeout=30_000)  # the K = 50 DTPM job is running
    with qtbot.waitSignal(c.jobCancelled, timeout=10_000):
        window.engine_picker.buttons[SINGLE_PASS].click()  # on screen now: the single-pass result
        clicked.set()
    qtbot.waitUntil(lambda: c.current_result() is not None, timeout=30_000)
    kinds = [job_kind(j) for j in jobs]
    assert kinds[:2] == ["restore dtpm", "restore single-pass"]  # next, not after K = 50
    assert window._display.pending  # the DTPM side comes back afterwards
    qtbot.waitUntil(lambda: window._display.result_k == 50, timeout=60_000)


def test_a_large_new_photo_does_not_inherit_an_expensive_k(models, tmp_path, make_window,
                                                            qtbot):
    big = make_image(tmp_path / "large.png", 900, 1200)
    window = make_window(default_k=20)
    c = window.controller
    c.start()
    qtbot.waitUntil(lambda: c.models_ready and c.idle, timeout=30_000)
    with qtbot.waitSignal(c.taskValuesChanged, timeout=30_000):
        c.open_image(big)
    c.cancel()  # the test needs no 1 MP restoration
    assert c.session.k == CHEAP_K and window.controls.slider.value() == CHEAP_K
    assert window.banner.isVisible() and "instead of K=20" in window.banner.text()
    assert "1.1 megapixels" in window.banner.text()


def test_cancel_says_so_and_save_takes_the_k_on_screen(models, tmp_path, make_window, qtbot):
    image = make_image(tmp_path / "photo.png", 96, 128)
    window = make_window(default_k=1)
    c = window.controller
    window.start([image])
    wait_result(qtbot, window)
    seen, clicked, passes = threading.Event(), threading.Event(), []
    hold_first_pass(c.worker.engines["dtpm"], seen, clicked, passes)
    window.controls.slider.setValue(9)
    window.controls.flush()
    qtbot.waitUntil(seen.is_set, timeout=30_000)
    with qtbot.waitSignal(c.jobCancelled, timeout=10_000):
        window.cancel_action.trigger()
        clicked.set()
    qtbot.waitUntil(lambda: c.idle, timeout=10_000)
    status = window.status_text.text()
    assert status.startswith("Cancelled: Showing DTPM, K=1") and "K=9 cancelled" in status
    shown = c.shown_result()
    assert shown is not None and shown.tag == "dtpm-K1"  # what Save and Copy take
    target = tmp_path / "out.png"
    with qtbot.waitSignal(c.saved, timeout=30_000):
        c.save_result(target, "png8", 90)
    assert target.is_file()


def test_a_running_batch_holds_back_the_curve(models, image_file, tmp_path, make_window,
                                              qtbot):
    window = make_window(default_k=1)
    c = window.controller
    c.start()
    qtbot.waitUntil(lambda: c.models_ready and c.idle, timeout=30_000)
    c.set_batch_running(True)
    jobs = _jobs(window)
    c.open_image(image_file)
    wait_result(qtbot, window)  # the result on screen is still computed
    qtbot.waitUntil(lambda: c.idle, timeout=10_000)
    assert not [j for j in jobs if job_kind(j) == "curve point"]
    c.set_batch_running(False)  # then the curve follows
    qtbot.waitUntil(lambda: any(job_kind(j) == "curve point" for j in jobs), timeout=10_000)


def _scores(input_psnr: float, **psnr_at: float) -> HeldOutScores:
    return HeldOutScores(2, input_psnr, input_psnr + 1,
                         {int(k[1:]): v for k, v in psnr_at.items()})


def test_the_first_task_is_the_one_the_models_do_best():
    scores = {"motion-deblur": _scores(24.7, K4=23.9, K10=23.4),
              "desnow": _scores(20.6, K4=26.4, K50=26.8),
              "derain-dehaze": _scores(13.7, K4=20.9)}
    tasks = ["motion-deblur", "desnow", "derain-dehaze", "raindrop"]
    assert best_task(scores, tasks) == "derain-dehaze"  # +7.2 dB over its degraded input
    assert best_task(scores, ["motion-deblur", "raindrop"]) == "motion-deblur"
    assert best_task({}, tasks) is None


def test_a_score_below_the_input_is_flagged_amber(models, image_file, make_window, qtbot):
    window = make_window(default_k=4, task="motion-deblur")  # K=4: 24.0 dB, input 25.0 dB
    window.start([image_file])
    qtbot.waitUntil(lambda: window._models.scores is not None, timeout=30_000)
    hint = window.controls.hint
    assert "below the degraded input" in hint.text() and "b45309" in hint.styleSheet()
    combo = window.task_picker.combo
    assert "below input" in combo.itemText(combo.findData("motion-deblur"))
    assert "below input" not in combo.itemText(combo.findData("defocus-deblur"))  # no scores
