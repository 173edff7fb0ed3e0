"""The runner both restorers share (dtpm_core.engines.runner) and the finite-output check."""

import pytest
import torch

from dtpm_core.engines.inference import require_finite
from dtpm_core.engines.runner import Runner
from dtpm_core.errors import ConfigError, ModelOutputError, OutOfMemory


def test_resolves_once_and_prepares_torch_networks():
    runner = Runner("cpu", "fp32", "torch")
    assert (runner.device.type, runner.precision, runner.backend) == ("cpu", "fp32", "torch")
    assert runner.openvino is None and runner.notes == []
    net = torch.nn.Conv2d(3, 3, 3)
    assert runner.prepare(net) is net
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    with pytest.raises(RuntimeError, match="OpenVINO"):
        runner.compile_graphs([], progress=None)


def test_refuses_what_the_device_cannot_run_before_any_file():
    with pytest.raises(ConfigError, match="fp16"):
        Runner("cpu", "fp16", "torch")


def test_run_tiled_backs_off_and_puts_waiting_notes_first():
    runner = Runner("cpu", "fp32", "torch")
    runner.notes.append("the converted denoiser graph was unusable")
    tiles = []

    def job(tile: int) -> str:
        tiles.append(tile)
        if tile > 64:
            raise RuntimeError("out of memory (simulated)")
        return "done"

    run = runner.run_tiled(job, 256, (300, 200))
    assert (run.value, run.tile, tiles) == ("done", 64, [256, 128, 64])
    assert run.notes[0] == "the converted denoiser graph was unusable"
    assert "retried with 128" in run.notes[1] and "retried with 64" in run.notes[2]
    assert run.seconds >= 0 and runner.notes == []  # handed over with this result only
    assert runner.run_tiled(job, 32, (300, 200)).notes == []

    def never(tile: int) -> str:
        raise MemoryError
    with pytest.raises(OutOfMemory):
        runner.run_tiled(never, 64, (300, 200))


def test_require_finite_names_the_model_files():
    require_finite(torch.zeros(1, 3, 4, 4), "result", ["a.safetensors"])
    broken = torch.tensor([0.0, float("inf")])
    with pytest.raises(ModelOutputError, match=r"model file a\.safetensors holds .* it again"):
        require_finite(broken, "single-pass result", ["a.safetensors"])
    with pytest.raises(ModelOutputError,
                       match=r"noise prediction .* model files b / c hold .* them again"):
        require_finite(broken.mul(float("nan")), "noise prediction", ["b", "c"])
