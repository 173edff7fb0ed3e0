"""scripts/campaign.py: what each stage's slice runs (no training here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from dtpm_core.config import Stage2Options, preset
from dtpm_core.diffusion.calibration import Calibration
from dtpm_core.modelfiles.weights import save_base
from dtpm_core.networks.model import DTPM

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def campaign(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("campaign", ROOT / "scripts" / "campaign.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "campaign", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "CHECKPOINTS", tmp_path / "checkpoints")
    monkeypatch.setattr(module, "SHIPPED", tmp_path / "models")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "models").mkdir()
    return module


def _base(path: Path, scale: float) -> Path:
    torch.manual_seed(0)
    model = DTPM(preset("tiny", denoiser__semantic="none"), Stage2Options()).eval()
    save_base(path, model, calibration=Calibration(residual_scale=scale, start_step=600))
    return path


def _value(command: list[str], key: str) -> str:
    values = [c.split("=", 1)[1] for c in command if c.startswith(f"{key}=")]
    assert len(values) == 1, command
    return values[0]


def test_the_base_stage_continues_the_shipped_base_with_its_residual_scale(campaign, tmp_path):
    stage = {s.name: s for s in campaign.PLAN}["base"]
    shipped = _base(tmp_path / "models" / "base.safetensors", 0.125)
    command = stage.command(tmp_path / "run")
    assert command[1:3] == ["stage1", "--config"] and "bundled_stage1" in command
    assert _value(command, "model.init") == str(shipped)
    assert float(_value(command, "calibration.residual_scale")) == 0.125
    assert stage.exported(tmp_path / "run") == tmp_path / "run" / "base.safetensors"
    # from the second slice on: the campaign's own checkpoint and its scale
    checkpoint = _base(tmp_path / "checkpoints" / "base.safetensors", 0.25)
    command = stage.command(tmp_path / "run")
    assert _value(command, "model.init") == str(checkpoint)
    assert float(_value(command, "calibration.residual_scale")) == 0.25


def test_a_base_stage_without_a_base_says_so(campaign, tmp_path):
    stage = {s.name: s for s in campaign.PLAN}["base"]
    with pytest.raises(SystemExit, match="no .*base.safetensors to continue"):
        stage.command(tmp_path / "run")


def test_stopped_lines_stay_out_of_the_default_plan_but_can_be_named(campaign, monkeypatch):
    stopped = {s.name for s in campaign.PLAN if s.stopped}
    assert {"derain-dehaze", "desnow", "base", "raindrop-effnet", "raindrop", "raindrop-p48",
            "motion-deblur-p48", "motion-deblur-effnet"} <= stopped

    def turns(argv: list[str], count: int) -> list[str]:
        ran: list[str] = []

        def fake_slice(stage, child):
            ran.append(stage.name)
            if len(ran) == count:
                raise campaign.Stop

        monkeypatch.setattr(campaign, "run_slice", fake_slice)
        monkeypatch.setattr(sys, "argv", ["campaign.py", "--hours", "1", *argv])
        assert campaign.main() == 143
        return ran

    default = turns([], len(campaign.PLAN) - len(stopped))
    assert default == [s.name for s in campaign.PLAN if not s.stopped]
    assert turns(["--stages", "desnow,base"], 3) == ["desnow", "base", "desnow"]


@pytest.mark.parametrize("native", [True, False])
def test_every_slice_compiles_its_step_in_bf16_where_the_cpu_has_it(campaign, tmp_path,
                                                                    monkeypatch, native):
    monkeypatch.setattr(campaign, "native_bf16", lambda: native)
    _base(tmp_path / "models" / "base.safetensors", 0.125)
    for stage in campaign.PLAN:
        if not stage.compiled_step:
            continue
        command = stage.command(tmp_path / "run")
        assert _value(command, "loop.compile") == "true", stage.name
        assert _value(command, "loop.cpu_bf16") == ("true" if native else "false"), stage.name
    assert [s.name for s in campaign.PLAN if not s.compiled_step] == ["singlepass"]
