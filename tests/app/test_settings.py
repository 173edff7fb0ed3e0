"""Settings persist across a restart of the main window; bad files fall back to defaults."""

from __future__ import annotations

import json

import pytest
from test_single_pass_engine import (  # noqa: F401  (fixtures)
    single_pass_model_dir,
    single_pass_models,
)

from dtpm_app.settings import (
    DEFAULT_TILE,
    AppSettings,
    load_settings,
    save_settings,
    settings_dir,
)
from dtpm_core.options import SINGLE_PASS


def test_settings_survive_a_restart(models, make_window, tmp_path, qtbot):
    window = make_window()
    window.controller.start()  # the task is known: K is the person's own for it
    window.resize(780, 560)  # within the offscreen screen (800x800): no clamping
    size = (window.width(), window.height())
    window.controls.slider.setValue(7)
    window.controls.flush()
    window.controls.seed.setValue(123)
    window.controls.device.setCurrentIndex(window.controls.device.findData("cpu"))
    window.controls.tile.setValue(256)
    window.left_side.setCurrentIndex(window.left_side.findData("initial"))
    window.batch_panel.set_output(str(tmp_path / "out"), "jpeg", 80)
    window.batch_panel._emit_output()
    window.settings.add_recent(tmp_path / "a.png")
    window.close()
    assert (settings_dir() / "settings.json").is_file()

    again = make_window()
    again.controller.start()
    assert again.controls.slider.value() == 7 and again.controls.steps.value() == 7
    assert again.controller.session.k == 7 and again.plot.marker_k() == pytest.approx(7)
    assert again.controller.session.seed == 123 and again.controls.seed.value() == 123
    assert again.controller.session.device == "cpu" and again.controls.device.currentData() == "cpu"
    assert again.controller.session.tile == 256
    assert again.left_side.currentData() == "initial"
    assert again.batch_panel.outdir.text() == str(tmp_path / "out")
    assert again.batch_panel.format.currentData() == "jpeg"
    assert again.batch_panel.quality.value() == 80
    assert again.batch.outdir == tmp_path / "out"
    assert again.settings.recent_files == [str(tmp_path / "a.png")]
    assert (again.width(), again.height()) == size == (780, 560)


def test_damaged_or_wrong_values_fall_back_to_defaults(tmp_path):
    (tmp_path / "settings.json").write_text("{not json", encoding="utf-8")
    assert load_settings(tmp_path) == AppSettings()
    (tmp_path / "settings.json").write_text(json.dumps(
        {"default_k": 99, "seed": "x", "device": "tpu", "tile": 32, "recent_files": [1],
         "quality": 50, "unknown": 1}), encoding="utf-8")
    loaded = load_settings(tmp_path)
    assert loaded.default_k == AppSettings().default_k and loaded.seed == 0
    assert loaded.device == "auto" and loaded.tile == DEFAULT_TILE
    assert loaded.recent_files == [] and loaded.quality == 50


def test_recent_files_are_unique_and_bounded(tmp_path):
    s = AppSettings()
    for i in range(15):
        s.add_recent(tmp_path / f"{i}.png")
    s.add_recent(tmp_path / "3.png")
    assert len(s.recent_files) == 10 and s.recent_files[0] == str(tmp_path / "3.png")
    assert len(set(s.recent_files)) == 10
    save_settings(s, tmp_path)
    assert load_settings(tmp_path).recent_files == s.recent_files


def test_ensemble_setting_loads_from_old_and_wrong_files(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"engine": "single-pass"}),
                                            encoding="utf-8")
    loaded = load_settings(tmp_path)  # written before the option existed
    assert loaded.engine == SINGLE_PASS and loaded.ensemble is False
    (tmp_path / "settings.json").write_text(json.dumps({"ensemble": 1}), encoding="utf-8")
    assert load_settings(tmp_path).ensemble is False
    save_settings(AppSettings(ensemble=True), tmp_path)
    assert load_settings(tmp_path).ensemble is True


def test_settings_of_older_versions_name_the_single_pass_engine_fast(tmp_path):
    """Before the engine had one name, settings stored it as "fast" (engine and split-view
    sides) with the key fast_ensemble: they load as the single-pass engine."""
    (tmp_path / "settings.json").write_text(json.dumps(
        {"engine": "fast", "fast_ensemble": True, "left_side": "fast", "right_side": "dtpm",
         "default_k": 9}), encoding="utf-8")
    loaded = load_settings(tmp_path)
    assert (loaded.engine, loaded.ensemble) == (SINGLE_PASS, True)
    assert (loaded.left_side, loaded.right_side, loaded.default_k) == (SINGLE_PASS, "dtpm", 9)
    save_settings(loaded, tmp_path)
    written = json.loads((tmp_path / "settings.json").read_text(encoding="utf-8"))
    assert written["engine"] == SINGLE_PASS and written["ensemble"] is True
    assert "fast_ensemble" not in written and written["left_side"] == SINGLE_PASS
    (tmp_path / "settings.json").write_text(json.dumps(  # today's key wins over the old one
        {"fast_ensemble": True, "ensemble": False}), encoding="utf-8")
    assert load_settings(tmp_path).ensemble is False


def test_old_settings_open_the_window_with_the_single_pass_engine(
        single_pass_models, make_window, qtbot):  # noqa: F811
    from dtpm_app.settings import settings_dir

    (settings_dir() / "settings.json").write_text(json.dumps(
        {"engine": "fast", "fast_ensemble": True, "right_side": "fast"}), encoding="utf-8")
    window = make_window()
    window.controller.start()
    assert window.controller.session.engine == SINGLE_PASS
    assert window.engine_picker.buttons[SINGLE_PASS].isChecked()
    assert window.controls.ensemble.isChecked() and window.right_side.currentData() == SINGLE_PASS


def test_precision_setting_falls_back_to_auto(tmp_path):
    assert AppSettings().precision == "auto"
    (tmp_path / "settings.json").write_text(json.dumps({"precision": "int4"}), encoding="utf-8")
    assert load_settings(tmp_path).precision == "auto"
    save_settings(AppSettings(precision="fp32"), tmp_path)
    assert load_settings(tmp_path).precision == "fp32"


def test_backend_setting_falls_back_to_auto_and_persists(tmp_path):
    assert AppSettings().backend == "auto"
    (tmp_path / "settings.json").write_text(json.dumps({"backend": "onnx"}), encoding="utf-8")
    assert load_settings(tmp_path).backend == "auto"
    save_settings(AppSettings(backend="torch"), tmp_path)
    assert load_settings(tmp_path).backend == "torch"
