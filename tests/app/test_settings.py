"""Settings persist across a restart of the main window; bad files fall back to defaults."""

from __future__ import annotations

import json

import pytest

from dtpm_app.settings import (
    DEFAULT_TILE,
    AppSettings,
    load_settings,
    save_settings,
    settings_dir,
)


def test_settings_survive_a_restart(make_window, tmp_path, qtbot):
    window = make_window()
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
    assert again.controls.slider.value() == 7 and again.controls.steps.value() == 7
    assert again.controller.k == 7 and again.plot.marker_k() == pytest.approx(7)
    assert again.controller.seed == 123 and again.controls.seed.value() == 123
    assert again.controller.device == "cpu" and again.controls.device.currentData() == "cpu"
    assert again.controller.tile == 256
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


def test_fast_ensemble_setting_loads_from_old_and_wrong_files(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"engine": "fast"}), encoding="utf-8")
    loaded = load_settings(tmp_path)  # written before the option existed
    assert loaded.engine == "fast" and loaded.fast_ensemble is False
    (tmp_path / "settings.json").write_text(json.dumps({"fast_ensemble": 1}), encoding="utf-8")
    assert load_settings(tmp_path).fast_ensemble is False
    save_settings(AppSettings(fast_ensemble=True), tmp_path)
    assert load_settings(tmp_path).fast_ensemble is True


def test_precision_setting_falls_back_to_auto(tmp_path):
    assert AppSettings().precision == "auto"
    (tmp_path / "settings.json").write_text(json.dumps({"precision": "int4"}), encoding="utf-8")
    assert load_settings(tmp_path).precision == "auto"
    save_settings(AppSettings(precision="fp32"), tmp_path)
    assert load_settings(tmp_path).precision == "fp32"
