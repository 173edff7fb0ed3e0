"""The texture strength control (issue 13): the scale of the DTPM texture layer reaches every
DTPM restore the app runs (the result on screen, the batch), each strength has its own cached
result, 0 shows the initial prediction exactly, and the value persists."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest
from app_helpers import hold_first_pass, job_kind, make_image, wait_result, wait_settled

from dtpm_app.jobs import Restore
from dtpm_app.settings import AppSettings, load_settings, save_settings
from dtpm_core.files.imageio import read_image


def _record_restores(window) -> list[Restore]:
    jobs: list = []
    window.controller._submit.connect(
        lambda job: job_kind(job.request) == "restore dtpm" and jobs.append(job.request))
    return jobs


def _wait_strength(qtbot, window, strength: float, timeout: int = 60_000) -> np.ndarray:
    """Until the result for the current K at `strength` is on screen; returns it."""
    def shown() -> bool:
        d = window._display
        return (window.controller.session.strength == strength and d.strength == strength
                and d.result is not None and d.result_k == window.controller.session.k
                and not d.pending)

    qtbot.waitUntil(shown, timeout=timeout)
    return window.shown_images()[1]


def test_strength_restores_again_and_zero_is_the_initial_prediction(models, image_file,
                                                                     make_window, qtbot):
    window = make_window(default_k=2)
    jobs = _record_restores(window)
    window.start([image_file])
    wait_result(qtbot, window)
    control = window.controls.strength
    assert control.isEnabled() and control.value() == 1.0
    assert (control.minimum(), control.maximum(), control.singleStep()) == (0.0, 2.0, 0.05)
    assert control.decimals() == 2  # measured recommendations such as 0.25
    assert "texture layer" in control.toolTip() and "initial prediction" in control.toolTip()
    as_trained, initial = window.controller.current_result(), window._display.initial
    assert [j.spec.strength for j in jobs] == [1.0]
    assert "strength" not in window.status_text.text()  # only mentioned when not 1

    control.setValue(0.5)
    half = _wait_strength(qtbot, window, 0.5)
    assert jobs[-1].spec.strength == 0.5 and jobs[-1].spec.steps == (2,)
    assert half is window.controller.current_result()
    assert not np.array_equal(half, as_trained)
    assert window.status_text.text().startswith("Showing DTPM, K=2, texture strength 0.5")
    assert window.view._labels[1] == "Result · K=2, strength 0.5"
    assert window.controller.result_tag() == "dtpm-K2-strength0.5"  # issue 21: own name

    control.setValue(0.0)
    zero = _wait_strength(qtbot, window, 0.0)
    assert initial is not None and np.array_equal(zero, initial)  # that of the first run
    assert not np.array_equal(zero, half)

    # back to 1: the cached result at once, without a new restoration
    restores = len(jobs)
    control.setValue(1.0)
    assert window._display.strength == 1.0 and not window._display.pending
    assert np.array_equal(window.shown_images()[1], as_trained)
    assert len(jobs) == restores


def test_a_result_for_another_strength_is_never_shown(models, tmp_path, make_window, qtbot):
    """Changing the strength while a restoration runs cancels it; what it would have made is
    never shown for the new strength, and a nearer K of the old strength is not either."""
    image = make_image(tmp_path / "big.png", 96, 128)
    window = make_window(default_k=10)
    window.controller.start()
    qtbot.waitUntil(lambda: window.controller.models_ready and window.controller.idle,
                    timeout=30_000)
    window.controller.open_image(image)
    wait_settled(qtbot, window)  # K=10 at strength 1 is cached, the curve complete
    seen, clicked, passes = threading.Event(), threading.Event(), []
    hold_first_pass(window.controller.worker.engines["dtpm"], seen, clicked, passes)
    jobs = _record_restores(window)
    window.controls.slider.setValue(12)
    window.controls.flush()
    qtbot.waitUntil(seen.is_set, timeout=30_000)
    with qtbot.waitSignal(window.controller.jobCancelled, timeout=10_000):
        window.controls.strength.setValue(0.0)  # the K=12, strength 1 job is now useless
        clicked.set()
    assert window._display.result is None  # not K=10 at strength 1 as "nearest K"
    zero = _wait_strength(qtbot, window, 0.0)
    assert [(j.spec.steps, j.spec.strength) for j in jobs] == [((12,), 1.0), ((12,), 0.0)]
    assert np.array_equal(zero, window._display.initial)


def test_batch_restores_at_the_strength_in_use(models, tmp_path, make_window, qtbot):
    from dtpm_core.engines.dtpm_restorer import Restorer

    folder, outdir = tmp_path / "shoot", tmp_path / "out"
    folder.mkdir()
    inputs = [make_image(folder / "a.png", seed=1), make_image(folder / "b.png", seed=2)]
    window = make_window(default_k=2, strength=0.3, output_dir=str(outdir),
                         output_format="png8")
    window.controller.start()
    qtbot.waitUntil(lambda: window.controller.models_ready, timeout=30_000)
    window.open_paths([folder])
    with qtbot.waitSignal(window.batch.finished, timeout=60_000) as finished:
        window.batch_panel.start_button.click()
    summary = finished.args[0]
    assert (summary.done, summary.failed, summary.error) == (2, 0, "")
    assert "K=2, seed 0, texture strength 0.3" in window.batch_panel.running_text
    s = window.controller.session
    # the backend the app's engine resolves (the process preference, "auto": OpenVINO on an
    # x86-64 CPU), not the Restorer's own default (torch)
    restorer = Restorer(models / "base.safetensors", s.catalog.adapters[s.task].path,
                        device="cpu", backend=None)
    for source in inputs:
        rgb = read_image(source).rgb
        expected = restorer.restore(rgb, 2, seed=0, tile=s.tile, strength=0.3).result
        as_trained = restorer.restore(rgb, 2, seed=0, tile=s.tile).result
        written = read_image(outdir / source.name).rgb
        np.testing.assert_allclose(written, expected, rtol=0, atol=0.5 / 255 + 1e-6)
        assert np.abs(written - as_trained).max() > 2 / 255


def test_strength_persists_across_a_restart(models, make_window, qtbot):
    window = make_window()
    window.controller.start()
    window.controls.strength.setValue(0.3)
    assert window.controller.session.strength == 0.3
    window.close()
    again = make_window()
    again.controller.start()
    assert again.controls.strength.value() == pytest.approx(0.3)
    assert again.controller.session.strength == 0.3
    assert again.settings.task_values == {again.controller.session.task: {"strength": 0.3}}


def test_strength_setting_falls_back_and_is_offered_in_hundredths(tmp_path):
    assert AppSettings().strength == 1.0
    for stored, loaded in ((5.0, 1.0), (-0.1, 1.0), ("x", 1.0), (math.nan, 1.0), (True, 1.0),
                           (0, 0.0), (2, 2.0), (0.25, 0.25), (0.333, 0.33), (1.7, 1.7)):
        (tmp_path / "settings.json").write_text(json.dumps({"strength": stored}),
                                                encoding="utf-8")
        value = load_settings(tmp_path).strength
        assert type(value) is float and value == loaded, (stored, value)
    save_settings(AppSettings(strength=0.7), tmp_path)
    assert load_settings(tmp_path).strength == 0.7


def test_controller_rejects_a_strength_out_of_range(models, make_window):
    window = make_window()
    with pytest.raises(ValueError, match="between 0 and 2"):
        window.controller.set_strength(2.5)
    assert window.controller.session.strength == 1.0
