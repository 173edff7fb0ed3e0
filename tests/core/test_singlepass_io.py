"""Single-pass engine: weight files (round trip, strict loading) and tiled one-pass inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from model_factory import tiny_model
from safetensors import safe_open
from safetensors.torch import save_file

from dtpm_core.engines.singlepass_restorer import SinglePassRestorer, dihedral_transforms
from dtpm_core.engines.tiling import tile_windows
from dtpm_core.errors import Cancelled, ConfigError, WeightsError
from dtpm_core.modelfiles.verified import seal_metadata
from dtpm_core.modelfiles.weights import content_sha256, load_base, save_base
from dtpm_core.singlepass.config import singlepass_preset
from dtpm_core.singlepass.network import SinglePassNet, tmddp_loss
from dtpm_core.singlepass.schedule import sigma_bars
from dtpm_core.singlepass.weights import load_singlepass, save_singlepass

CONFIG = singlepass_preset("tiny", width=8, cond_dim=16, adaptor_tasks=("desnow", "raindrop"))
TASKS = {"desnow": 15, "raindrop": 22}


def _trained_net(seed: int = 0) -> SinglePassNet:
    """A tiny net after a few Adam steps of TMDDP, with the adaptors switched on."""
    torch.manual_seed(seed)
    net = SinglePassNet(CONFIG)
    with torch.no_grad():
        for adaptor in net.adaptors:
            adaptor.scale.fill_(0.5)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    table = sigma_bars()
    clean = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        optimiser.zero_grad()
        tmddp_loss(net, clean, generator, table).backward()
        optimiser.step()
    return net.eval()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    net = _trained_net()
    path = tmp_path_factory.mktemp("singlepass") / "fast.safetensors"
    sha = save_singlepass(path, net, tasks=TASKS, training={"steps": 3},
                          metrics={"psnr": 30.5})
    return path, net, sha


@pytest.fixture(scope="module")
def photo():
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[100:300, 100:400] / 255.0, dtype=np.float32)


@pytest.fixture(scope="module")
def restorer(model_file):
    return SinglePassRestorer(model_file[0], device="cpu", precision="fp32")


def _metadata(path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata())


def _rewrite(path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Save tensors with the given metadata and recomputed (so valid) content and metadata
    sha256s: what a deliberate rewrite, not an accident, produces."""
    sealed = seal_metadata({**metadata, "content_sha256": content_sha256(tensors)})
    save_file(tensors, str(path), metadata=sealed)


# ---------------------------------------------------------------------------------------------
# Weight files


def test_save_load_round_trip_is_bit_identical(model_file):
    path, net, sha = model_file
    loaded, info = load_singlepass(path)
    assert not loaded.training
    assert info.sha256 == sha and info.path == path
    assert info.config == CONFIG and info.tasks == TASKS
    assert info.training == {"steps": 3} and info.metrics == {"psnr": 30.5}
    assert any(a.scale.item() != 0.0 for a in loaded.adaptors)  # the adaptors are loaded
    x = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(3)) * 2 - 1
    for t_mat in TASKS.values():
        t = torch.full((2,), t_mat)
        with torch.no_grad():
            assert torch.equal(loaded(x, t), net(x, t))


def test_a_missing_adaptor_tensor_is_refused(model_file, tmp_path):
    path, net, _ = model_file
    tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
    dropped = "adaptors.1.experts.3.0.weight"
    del tensors[dropped]
    broken = tmp_path / "missing.safetensors"
    _rewrite(broken, tensors, _metadata(path))
    with pytest.raises(WeightsError, match="missing keys") as err:
        load_singlepass(broken)
    assert str(broken) in str(err.value) and dropped in str(err.value)


def test_an_extra_tensor_is_refused(model_file, tmp_path):
    path, net, _ = model_file
    tensors = {**{k: v.contiguous() for k, v in net.state_dict().items()},
               "adaptors.9.scale": torch.zeros(())}
    broken = tmp_path / "extra.safetensors"
    _rewrite(broken, tensors, _metadata(path))
    with pytest.raises(WeightsError, match=r"unexpected keys \['adaptors.9.scale'\]"):
        load_singlepass(broken)


def test_adaptors_are_not_dropped_by_a_config_without_them(model_file, tmp_path):
    path, net, _ = model_file
    metadata = _metadata(path)
    config = json.loads(metadata["config"])
    config["adaptor_tasks"] = []
    broken = tmp_path / "no_adaptors.safetensors"
    _rewrite(broken, {k: v.contiguous() for k, v in net.state_dict().items()},
             {**metadata, "config": json.dumps(config)})
    with pytest.raises(WeightsError, match=r"unexpected keys \['adaptors\.") as err:
        load_singlepass(broken)
    assert str(broken) in str(err.value)


def test_corrupted_and_truncated_files_are_refused(model_file, tmp_path):
    data = bytearray(model_file[0].read_bytes())
    data[-3] ^= 0xFF  # inside the last tensor's bytes
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupted"):
        load_singlepass(damaged)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_singlepass(truncated)
    with pytest.raises(WeightsError, match="not found"):
        load_singlepass(tmp_path / "absent.safetensors")


def test_dtpm_files_and_single_pass_files_are_not_confused(model_file, tmp_path):
    base = tmp_path / "base.safetensors"
    save_base(base, tiny_model())
    with pytest.raises(WeightsError, match="is a DTPM base model .* not a single-pass model"):
        load_singlepass(base)
    with pytest.raises(WeightsError, match="dtpm-singlepass"):
        load_base(model_file[0])


def test_content_hash_handles_scalars():
    scalar = content_sha256({"s": torch.tensor(0.5)})
    assert scalar != content_sha256({"s": torch.tensor([0.5])})  # the shape is hashed too


def test_save_checks_the_task_table(tmp_path):
    net = SinglePassNet(CONFIG)
    with pytest.raises(ConfigError, match="no t_mat"):
        save_singlepass(tmp_path / "a.safetensors", net, tasks={"desnow": 15})
    with pytest.raises(ConfigError, match="0..50"):
        save_singlepass(tmp_path / "b.safetensors", net, tasks={**TASKS, "blur": 51})
    assert not list(tmp_path.iterdir())  # nothing written


# ---------------------------------------------------------------------------------------------
# Inference


def _count_passes(restorer, monkeypatch) -> list[tuple[int, ...]]:
    calls: list[tuple[int, ...]] = []
    original = restorer.net.forward

    def counting(x, t):
        calls.append(tuple(x.shape))
        return original(x, t)
    monkeypatch.setattr(restorer.net, "forward", counting)
    return calls


def test_one_pass_per_tile_and_eight_with_the_ensemble(restorer, photo, monkeypatch):
    assert photo.shape == (200, 300, 3)
    windows = len(tile_windows(200, 300, 128))
    assert windows > 1
    calls = _count_passes(restorer, monkeypatch)
    seen = []
    single = restorer.restore(photo, "desnow", tile=128, progress=seen.append)
    assert len(calls) == windows
    assert [p.done for p in seen] == list(range(1, windows + 1))
    assert {p.total for p in seen} == {windows}
    calls.clear()
    ens = restorer.restore(photo, "desnow", tile=128, ensemble=True)
    assert len(calls) == 8 * windows
    assert ens.result.shape == single.result.shape == photo.shape
    assert 0.0 <= ens.result.min() and ens.result.max() <= 1.0
    assert not np.array_equal(ens.result, single.result)


def test_same_inputs_give_identical_bytes_and_the_task_matters(restorer, photo):
    first = restorer.restore(photo, "desnow", tile=128)
    second = restorer.restore(photo, "desnow", tile=128)
    assert first.result.dtype == np.float32
    assert first.result.tobytes() == second.result.tobytes()
    assert (first.task, first.t_mat, first.tile) == ("desnow", 15, 128)
    other = restorer.restore(photo, "raindrop", tile=128)
    assert other.t_mat == 22 and not np.array_equal(other.result, first.result)


def test_result_is_the_network_output_clipped(restorer, photo):
    crop = photo[:48, :64]
    out = restorer.restore(crop, "raindrop", tile=0).result
    x = torch.from_numpy(crop).permute(2, 0, 1)[None]
    expected = restorer.net.restore(x, 22)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_ensemble_transforms_invert_exactly():
    x = np.arange(2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 3, 5, 7)
    pairs = dihedral_transforms()
    assert len(pairs) == 8
    images = {tuple(f(x).flatten().tolist()) for f, _ in pairs}
    assert len(images) == 8  # eight distinct variants
    for forward, inverse in pairs:
        assert np.array_equal(inverse(forward(x)), x)


def test_ensemble_of_an_identity_network_returns_the_image(restorer, photo, monkeypatch):
    monkeypatch.setattr(restorer.net, "forward", lambda x, t: x)
    out = restorer.restore(photo, "desnow", tile=128, ensemble=True).result
    np.testing.assert_allclose(out, photo, atol=1e-6)


def test_tiled_and_untiled_agree(restorer, photo):
    whole = restorer.restore(photo, "desnow", tile=0).result
    tiled = restorer.restore(photo, "desnow", tile=128).result
    assert np.abs(whole - tiled).mean() < 0.01


def test_cancel_and_unknown_task(restorer, photo):
    polls = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) >= 2

    with pytest.raises(Cancelled):
        restorer.restore(photo, "desnow", tile=128, should_stop=stop)
    assert len(polls) == 2  # stopped right after the second pass
    with pytest.raises(ConfigError, match=r"'haze'.*\['desnow', 'raindrop'\]"):
        restorer.restore(photo, "haze")
    assert restorer.tasks == TASKS


def test_out_of_memory_backs_off_to_smaller_tiles(model_file, photo, monkeypatch):
    restorer = SinglePassRestorer(model_file[0], device="cpu")
    original = restorer.net.forward

    def limited(x, t):
        if x.shape[-1] * x.shape[-2] > 100 * 100:
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(x, t)
    monkeypatch.setattr(restorer.net, "forward", limited)
    out = restorer.restore(photo, "desnow", tile=256)
    assert out.tile == 64 and len(out.notes) == 2
    reference = SinglePassRestorer(model_file[0], device="cpu").restore(photo, "desnow", tile=64)
    assert out.result.tobytes() == reference.result.tobytes()
