"""Per-task K and texture strength (issue 20, item 5): a task starts from the values measured
for its adapter (the manifest's "recommended"), the person's own values for a task are
remembered across task switches and restarts, "Use recommended" goes back, and the preview,
the split view and the batch all restore with the values on the controls."""

from __future__ import annotations

import json
import shutil

import pytest
from app_helpers import job_kind, make_image, wait_result

from dtpm_app.settings import AppSettings, load_settings, save_settings

RECOMMENDED = {"motion-deblur": {"steps": 2, "strength": 0.5},
               "defocus-deblur": {"steps": 3, "strength": 0.0}}


@pytest.fixture
def measured(model_dir, tmp_path, monkeypatch):
    """The test models, with a manifest that recommends RECOMMENDED (as
    scripts/choose_defaults.py --write-manifest writes it)."""
    folder = tmp_path / "measured_models"
    shutil.copytree(model_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["adapters"]:
        entry["recommended"] = RECOMMENDED[entry["task"]]
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    monkeypatch.setenv("DTPM_USER_MODELS", str(folder))
    return folder


def _choose_task(window, task: str) -> None:
    """What a click in the task list does."""
    combo = window.task_picker.combo
    index = combo.findData(task)
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def _shown(window) -> tuple[int, float, int, float]:
    """(slider K, strength control, session K, session strength)."""
    c, s = window.controls, window.controller.session
    return c.slider.value(), c.strength.value(), s.k, s.strength


def _row(window) -> tuple[str, bool, str]:
    row = window.controls.start_values
    return row.label.text(), row.button.isVisibleTo(window), row.button.text()


def test_choosing_a_task_moves_the_controls_to_its_recommended_values(measured, make_window):
    window = make_window(task="motion-deblur")
    window.controller.start()
    assert _shown(window) == (2, 0.5, 2, 0.5)
    label, button_shown, _ = _row(window)
    assert "Recommended for this task" in label and not button_shown
    assert "measured best" in window.controls.start_values.toolTip()
    assert window.plot.marker_k() == pytest.approx(2)

    _choose_task(window, "defocus-deblur")
    assert _shown(window) == (3, 0.0, 3, 0.0)
    assert "K changes nothing" in window.controls.hint.text()  # strength 0
    assert window.settings.task_values == {}  # nothing of the person's own


def test_own_values_are_remembered_per_task_and_across_a_restart(measured, make_window):
    window = make_window(task="defocus-deblur")
    window.controller.start()
    window.controls.strength.setValue(0.3)
    window.controls.slider.setValue(5)
    window.controls.flush()
    assert _shown(window) == (5, 0.3, 5, 0.3)
    label, button_shown, button = _row(window)
    assert "Your values · recommended: strength 0 (the initial prediction)" in label
    assert button_shown and button == "Use recommended"

    _choose_task(window, "motion-deblur")  # not chosen for: its recommendation
    assert _shown(window) == (2, 0.5, 2, 0.5)
    _choose_task(window, "defocus-deblur")  # back: the person's own
    assert _shown(window) == (5, 0.3, 5, 0.3)
    window.close()

    again = make_window()
    again.controller.start()
    assert again.controller.session.task == "defocus-deblur"
    assert _shown(again) == (5, 0.3, 5, 0.3)
    assert load_settings().task_values == {"defocus-deblur": {"steps": 5, "strength": 0.3}}
    _choose_task(again, "motion-deblur")
    assert _shown(again) == (2, 0.5, 2, 0.5)


def test_use_recommended_goes_back_and_forgets_the_own_values(measured, make_window):
    window = make_window(task="motion-deblur")
    window.controller.start()
    window.controls.strength.setValue(1.5)
    assert window.settings.task_values == {"motion-deblur": {"strength": 1.5}}
    window.controls.start_values.button.click()
    assert _shown(window) == (2, 0.5, 2, 0.5)
    assert window.settings.task_values == {}
    assert not _row(window)[1]
    # setting the recommended value by hand is not an own value either
    window.controls.strength.setValue(1.0)
    window.controls.strength.setValue(0.5)
    assert window.settings.task_values == {}


def test_preview_split_view_and_batch_restore_with_the_values_shown(measured, tmp_path,
                                                                    make_window, qtbot):
    image = make_image(tmp_path / "photo.png")
    window = make_window(task="motion-deblur", right_side="result", left_side="initial")
    restores = []
    window.controller._submit.connect(
        lambda job: job_kind(job.request) == "restore dtpm" and restores.append(job.request))
    window.start([image])
    wait_result(qtbot, window)
    assert [(r.spec.steps, r.spec.strength) for r in restores] == [((2,), 0.5)]
    assert window._display.result_k == 2 and window._display.strength == 0.5

    calls = []
    start = window.batch.start
    window.batch.start = lambda *args: calls.append(args) or start(*args)
    folder = tmp_path / "shoot"
    folder.mkdir()
    make_image(folder / "a.png", seed=1)
    window.batch_panel.set_output(str(tmp_path / "out"), "png8", 90)
    window.batch_panel._emit_output()
    window.open_paths([folder])
    with qtbot.waitSignal(window.batch.finished, timeout=60_000) as finished:
        window.batch_panel.start_button.click()
    assert finished.args[0].done == 1
    _, _, k, _, _, strength = calls[0]
    assert (k, strength) == (2, 0.5)
    assert "K=2, seed 0, texture strength 0.5" in window.batch_panel.running_text


def test_an_adapter_without_a_recommendation_starts_from_the_defaults(models, make_window):
    window = make_window(task="motion-deblur")  # the test manifest recommends nothing
    window.controller.start()
    assert _shown(window) == (4, 1.0, 4, 1.0)
    label, button_shown, _ = _row(window)
    assert "Defaults (no measured recommendation)" in label and not button_shown
    window.controls.strength.setValue(0.5)
    label, button_shown, button = _row(window)
    assert "defaults: K=4, strength 1" in label and button == "Use defaults"


def test_old_settings_files_keep_their_own_values_for_the_task_they_had_open(tmp_path):
    def load(raw: dict) -> AppSettings:
        (tmp_path / "settings.json").write_text(json.dumps(raw), encoding="utf-8")
        return load_settings(tmp_path)

    # one K and strength for every task, before per-task values: the person's own
    old = load({"default_k": 10, "strength": 0.5, "task": "raindrop"})
    assert old.task_values == {"raindrop": {"steps": 10, "strength": 0.5}}
    assert load({"default_k": 4, "strength": 1.0, "task": "raindrop"}).task_values == {}
    assert load({"default_k": 7, "task": "desnow"}).task_values == {"desnow": {"steps": 7}}
    assert load({"default_k": 7}).task_values == {}  # no task open: nothing to keep it for
    # a file of today is taken as it is, bad entries left out
    today = load({"default_k": 10, "task": "raindrop", "task_values": {
        "desnow": {"steps": 3}, "raindrop": {"steps": 99, "strength": 0.333},
        "x": {"strength": "a"}, "y": 5, "": {"steps": 2}}})
    assert today.task_values == {"desnow": {"steps": 3}, "raindrop": {"strength": 0.33}}
    save_settings(today, tmp_path)
    assert load_settings(tmp_path).task_values == today.task_values
