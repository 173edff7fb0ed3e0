"""Sampling calibration: stored in weight files, chosen from the x0 error curve, and used by
the Restorer (start level, residual scale, clamp, texture strength)."""

import numpy as np
import pytest
from model_factory import tiny_model

from dtpm_core.config import Stage2Options
from dtpm_core.diffusion.calibration import (
    LEGACY_START_STEP,
    Calibration,
    choose_start_step,
    residual_clip,
)
from dtpm_core.engines.dtpm_restorer import Restorer
from dtpm_core.errors import ConfigError, ModelOutputError
from dtpm_core.modelfiles.verified import read_adapter_info
from dtpm_core.modelfiles.weights import load_base, save_adapter, save_base


def test_start_step_is_the_last_t_where_the_denoiser_beats_predicting_zero():
    steps = [50, 100, 150, 200, 250, 300]
    errors = [0.2, 0.5, 0.8, 0.95, 0.7, 1.5]  # fails at 200: the blip at 250 does not count
    assert choose_start_step(steps, errors, zero_error=1.0, num_steps=1000) == 150
    # never below the largest K the product offers
    assert choose_start_step(steps, [2.0] * 6, 1.0, 1000) == 50
    assert choose_start_step([10, 20], [0.1, 0.1], 1.0, 1000, min_step=1) == 20


def test_clip_is_a_few_times_the_rms_or_the_tail():
    assert residual_clip(1.0, 3.0) == 4.0
    assert residual_clip(1.0, 6.5) == 6.5


def test_bad_calibration_values_are_errors():
    with pytest.raises(ConfigError):
        Calibration(residual_scale=0.0)
    with pytest.raises(ConfigError):
        Calibration(start_step=0)
    with pytest.raises(ConfigError, match="unreadable"):
        Calibration.from_metadata({"calibration": "{not json"}, "x.safetensors")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cal")
    model = tiny_model(Stage2Options(), semantic="none", seed=3)
    old_sha = save_base(folder / "old_base.safetensors", model)
    save_adapter(folder / "old.safetensors", model, "desnow", old_sha)
    calibrated = Calibration(residual_scale=0.1, start_step=120, x0_clip=5.0, note="test")
    sha = save_base(folder / "base.safetensors", model, calibration=calibrated)
    save_adapter(folder / "new.safetensors", model, "desnow", sha,
                 calibration=Calibration(residual_scale=0.05, start_step=200, x0_clip=4.0))
    return folder, calibrated


def test_files_without_calibration_load_with_the_stated_default(files):
    folder, calibrated = files
    _, info = load_base(folder / "old_base.safetensors")
    assert info.calibration == Calibration()
    assert info.calibration.start_step == LEGACY_START_STEP
    assert "default" in info.calibration.note
    assert load_base(folder / "base.safetensors")[1].calibration == calibrated
    assert read_adapter_info(folder / "new.safetensors").calibration.residual_scale == 0.05


def test_the_restorer_samples_with_the_adapters_calibration(files):
    folder, _ = files
    restorer = Restorer(folder / "base.safetensors", device="cpu")
    assert restorer.calibration.start_step == 120
    restorer.load_adapter(folder / "new.safetensors")
    assert restorer.calibration.start_step == 200
    restorer.unload_adapter()
    assert restorer.calibration.start_step == 120


def test_strength_scales_the_texture_layer(files):
    folder, _ = files
    restorer = Restorer(folder / "base.safetensors", folder / "new.safetensors", device="cpu")
    photo = np.random.default_rng(0).uniform(0.2, 0.8, (40, 56, 3)).astype(np.float32)
    none = restorer.restore(photo, 4, strength=0.0, tile=0)
    half = restorer.restore(photo, 4, strength=0.5, tile=0)
    full = restorer.restore(photo, 4, strength=1.0, tile=0)
    np.testing.assert_allclose(none.result, none.initial, atol=1e-6)
    texture_half = half.result - half.initial
    texture_full = full.result - full.initial
    assert np.abs(texture_full).mean() > 0
    # away from the [0, 1] clip, half strength is half the texture
    inside = ((full.result > 0) & (full.result < 1) & (half.result > 0) & (half.result < 1)
              & (full.initial > 0) & (full.initial < 1))
    assert inside.mean() > 0.5
    np.testing.assert_allclose(texture_half[inside], 0.5 * texture_full[inside], atol=2e-5)
    with pytest.raises(ConfigError, match="strength"):
        restorer.restore(photo, 4, strength=2.5)


def test_luminance_texture_keeps_the_initial_colours_and_is_the_rgb_textures_luma(files):
    """The default texture colour adds the same change to R, G and B (the texture's BT.601
    luma): no pixel's chroma moves, so no coloured specks; "rgb" (the paper's) adds each
    channel's own, from the same noise."""
    from dtpm_core.evaluation.texture_metrics import colour_specks_per_million

    folder, _ = files
    restorer = Restorer(folder / "base.safetensors", folder / "new.safetensors", device="cpu")
    photo = np.random.default_rng(1).uniform(0.2, 0.8, (40, 56, 3)).astype(np.float32)
    grey = restorer.restore(photo, [1, 4], tile=0)  # the default
    rgb = restorer.restore(photo, [1, 4], tile=0, texture_colour="rgb")
    np.testing.assert_array_equal(grey.initial, rgb.initial)
    for k in (1, 4):
        texture_grey = grey.results[k] - grey.initial
        texture_rgb = rgb.results[k] - rgb.initial
        assert np.abs(texture_rgb[..., 0] - texture_rgb[..., 1]).max() > 1e-3  # colour in rgb
        inside = ((rgb.results[k] > 0) & (rgb.results[k] < 1) & (grey.results[k] > 0)
                  & (grey.results[k] < 1)).all(axis=-1)
        assert inside.mean() > 0.5
        luma = texture_rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        for channel in range(3):
            np.testing.assert_allclose(texture_grey[..., channel][inside], luma[inside],
                                       atol=2e-5)
        # the chroma of every unclipped pixel is the initial prediction's
        assert colour_specks_per_million(grey.results[k], grey.initial, levels=0.01) \
            <= 1e6 * (1 - inside.mean())
    with pytest.raises(ConfigError, match="texture colour"):
        restorer.restore(photo, 4, texture_colour="sepia")


def test_k_above_the_start_level_is_an_error(tmp_path):
    model = tiny_model(Stage2Options(), semantic="none", seed=3)
    save_base(tmp_path / "b.safetensors", model,
              calibration=Calibration(start_step=30, x0_clip=3.0))
    restorer = Restorer(tmp_path / "b.safetensors", device="cpu")
    photo = np.full((16, 16, 3), 0.5, np.float32)
    restorer.restore(photo, 30, tile=0)
    with pytest.raises(ConfigError, match="at most 30 steps"):
        restorer.restore(photo, 31, tile=0)


def test_broken_weights_giving_nan_are_reported_with_the_file(tmp_path):
    import torch
    model = tiny_model(Stage2Options(), semantic="none", seed=3)
    with torch.no_grad():
        model.denoiser.ending.weight.fill_(float("nan"))
    save_base(tmp_path / "nan.safetensors", model)
    restorer = Restorer(tmp_path / "nan.safetensors", device="cpu")
    with pytest.raises(ModelOutputError, match="nan.safetensors"):
        restorer.restore(np.full((16, 16, 3), 0.5, np.float32), 2, tile=0)


def test_an_infinite_initial_prediction_is_an_error_not_a_white_image(tmp_path):
    import torch
    model = tiny_model(Stage2Options(), semantic="none", seed=3)
    sha = save_base(tmp_path / "b.safetensors", model)
    with torch.no_grad():
        model.predictor.ending.bias.fill_(float("inf"))
    save_adapter(tmp_path / "inf.safetensors", model, "desnow", sha)
    restorer = Restorer(tmp_path / "b.safetensors", tmp_path / "inf.safetensors", device="cpu")
    with pytest.raises(ModelOutputError, match="initial prediction.*inf.safetensors"):
        restorer.restore(np.full((16, 16, 3), 0.5, np.float32), 2, tile=0)
