"""Restorer: tiling, determinism, progress, cancellation, out-of-memory back-off."""

import numpy as np
import pytest
import torch
from model_factory import tiny_model

from dtpm_core.config import Stage2Options
from dtpm_core.engines.dtpm_restorer import Restorer
from dtpm_core.engines.tiling import TileBlender, tile_windows
from dtpm_core.errors import Cancelled, ConfigError, OutOfMemory
from dtpm_core.modelfiles.weights import save_adapter, save_base


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    model = tiny_model(Stage2Options(), semantic="random", seed=2)
    sha = save_base(folder / "base.safetensors", model)
    save_adapter(folder / "motion.safetensors", model, "motion-deblur", sha)
    return folder / "base.safetensors", folder / "motion.safetensors"


@pytest.fixture(scope="module")
def restorer(model_files):
    return Restorer(*model_files, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def photo():
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[100:292:, 120:376] / 255.0, dtype=np.float32)


def test_windows_cover_the_image_and_touch_the_borders():
    for height, width, tile in [(100, 100, 64), (513, 1000, 256), (64, 300, 64), (50, 40, 512)]:
        windows = tile_windows(height, width, tile)
        covered = np.zeros((height, width), bool)
        for w in windows:
            assert w.bottom - w.top <= tile and w.right - w.left <= tile
            covered[w.top:w.bottom, w.left:w.right] = True
        assert covered.all()
        assert min(w.top for w in windows) == 0 and max(w.bottom for w in windows) == height
        assert max(w.right for w in windows) == width


def test_blending_a_local_function_equals_the_untiled_result():
    x = np.random.default_rng(0).random((1, 3, 150, 230), dtype=np.float32)
    blender = TileBlender(150, 230, 64)
    assert len(blender) > 6
    out = blender.blend(lambda w: x[(..., *w.slices)] * 2 + 1, channels=3)
    assert out.dtype == np.float32 and np.allclose(out, x * 2 + 1, atol=1e-5)


def _seam_score(image: np.ndarray, columns: list[int]) -> float:
    """Mean |horizontal step| on the given columns over the mean on all columns."""
    steps = np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))
    return float(steps[columns].mean() / steps.mean())


def test_tiled_and_untiled_restoration_agree_without_seams(restorer, photo):
    whole = restorer.restore(photo, 4, seed=1, tile=0)
    tiled = restorer.restore(photo, 4, seed=1, tile=128)
    assert len(tile_windows(*photo.shape[:2], 128)) == 6
    for a, b in ((whole.initial, tiled.initial), (whole.result, tiled.result)):
        diff = np.abs(a - b)
        assert diff.mean() < 0.01 and np.quantile(diff, 0.99) < 0.06
    # no seam: at the window edges the tiled result steps no more than anywhere else
    edges = sorted({w.right - 1 for w in tile_windows(*photo.shape[:2], 128)} - {255})
    assert _seam_score(tiled.result, edges) < 1.5
    assert _seam_score(tiled.result, edges) < _seam_score(whole.result, edges) + 0.3


def test_same_inputs_give_identical_bytes_and_k_matters(restorer, photo):
    first = restorer.restore(photo, 4, seed=7, tile=128)
    second = restorer.restore(photo, 4, seed=7, tile=128)
    assert first.result.tobytes() == second.result.tobytes()
    assert first.initial.tobytes() == second.initial.tobytes()
    other_k = restorer.restore(photo, 10, seed=7, tile=128)
    assert np.abs(other_k.result - first.result).mean() > 1e-3
    other_seed = restorer.restore(photo, 4, seed=8, tile=128)
    assert np.abs(other_seed.result - first.result).mean() > 1e-4


def test_several_k_in_one_call_match_separate_calls(restorer, photo):
    small = photo[:64, :96]
    many = restorer.restore(small, [1, 4, 10], seed=3, tile=0)
    assert list(many.results) == [1, 4, 10]
    for k in (1, 4, 10):
        assert np.array_equal(many.results[k], restorer.restore(small, k, seed=3, tile=0).result)


def test_progress_counts_every_pass_and_cancel_stops_within_a_step(restorer, photo):
    seen = []
    restorer.restore(photo, 3, tile=128, progress=seen.append)
    assert seen[-1].done == seen[-1].total == 6 * (1 + 3)
    assert [p.done for p in seen] == list(range(1, 25))
    assert seen[0].stage == "initial prediction" and seen[-1].stage.startswith("K=3")
    calls = []

    def stop():
        calls.append(1)
        return len(calls) >= 8  # requested in the middle of the second DDIM step

    with pytest.raises(Cancelled):
        restorer.restore(photo, 10, tile=128, should_stop=stop)
    assert len(calls) == 8  # no pass ran after the request
    # still usable afterwards
    assert restorer.restore(photo[:32, :32], 1).result.shape == (32, 32, 3)


def test_out_of_memory_backs_off_to_smaller_tiles(model_files, photo, monkeypatch):
    restorer = Restorer(*model_files, device="cpu")
    forward = restorer.networks.model.denoiser.forward

    def limited(x, *args, **kwargs):
        if x.shape[-1] > 64:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(x, *args, **kwargs)

    monkeypatch.setattr(restorer.networks.model.denoiser, "forward", limited)
    result = restorer.restore(photo, 2, tile=256)
    assert result.tile == 64 and len(result.notes) == 2 and "retried with 128" in result.notes[0]
    reference = Restorer(*model_files, device="cpu").restore(photo, 2, tile=64)
    assert np.array_equal(result.result, reference.result)

    monkeypatch.setattr(restorer.networks.model.denoiser, "forward",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("out of memory")))
    with pytest.raises(OutOfMemory, match="out of memory"):
        restorer.restore(photo, 1, tile=128)


def test_switching_adapter_keeps_the_base(model_files, tmp_path, photo):
    restorer = Restorer(model_files[0], device="cpu")
    base_model = restorer.networks.model
    other = tiny_model(Stage2Options(), semantic="random", seed=2)
    for p in other.adapters.parameters():
        torch.nn.init.normal_(p, 0, 0.05)
    save_adapter(tmp_path / "snow.safetensors", other, "desnow", restorer.base_info.sha256)
    restorer.load_adapter(model_files[1])
    a = restorer.restore(photo[:64, :64], 2).result
    assert restorer.load_adapter(tmp_path / "snow.safetensors").task == "desnow"
    b = restorer.restore(photo[:64, :64], 2).result
    assert restorer.networks.model is base_model and np.abs(a - b).mean() > 1e-4


def test_bad_arguments_are_clear_errors(restorer):
    with pytest.raises(ConfigError, match="between 1 and 50"):
        restorer.restore(np.zeros((8, 8, 3), np.float32), 51)
    with pytest.raises(ConfigError, match=r"\(H, W, 3\)"):
        restorer.restore(np.zeros((8, 8), np.float32), 1)
    with pytest.raises(ConfigError, match="NaN"):
        restorer.restore(np.full((8, 8, 3), np.nan, np.float32), 1)


def test_without_a_predictor_the_initial_prediction_is_the_input(tmp_path, photo):
    model = tiny_model(Stage2Options(use_predictor=False), seed=6)
    sha = save_base(tmp_path / "b.safetensors", model)
    save_adapter(tmp_path / "a.safetensors", model, "desnow", sha)
    restorer = Restorer(tmp_path / "b.safetensors", tmp_path / "a.safetensors", device="cpu")
    out = restorer.restore(photo[:48, :64], 2, tile=32)
    assert np.abs(out.initial - photo[:48, :64]).max() < 1e-6
    assert np.abs(out.result - out.initial).mean() > 1e-3
