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
            "motion-deblur-p48", "motion-deblur-effnet", "defocus-deblur",
            "singlepass", "motion-deblur"} <= stopped

    def turns(argv: list[str], count: int) -> list[str]:
        ran: list[str] = []

        def fake_slice(stage, child, commit):
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
    (tmp_path / "models" / "singlepass.safetensors").write_bytes(b"")
    for stage in campaign.PLAN:
        if stage.kind == "singlepass":
            stage.checkpoint().write_bytes(b"")
        command = stage.command(tmp_path / "run")
        if stage.compiled_step:
            assert _value(command, "loop.compile") == "true", stage.name
        else:
            assert "loop.compile=true" not in " ".join(command), stage.name
        assert _value(command, "loop.cpu_bf16") == ("true" if native else "false"), stage.name
    # the single-pass fine-tuning refuses loop.compile: bf16 only
    assert [s.name for s in campaign.PLAN if not s.compiled_step] == ["singlepass",
                                                                       "singlepass-s2",
                                                                       "singlepass-avg",
                                                                       "singlepass-soup"]


def test_the_stem_line_starts_from_the_shipped_network_made_into_a_stem(campaign, tmp_path):
    from dtpm_core.singlepass.config import singlepass_preset
    from dtpm_core.singlepass.network import SinglePassNet
    from dtpm_core.singlepass.weights import load_singlepass, save_singlepass

    stage = {s.name: s for s in campaign.PLAN}["singlepass-s2"]
    torch.manual_seed(0)
    shipped = tmp_path / "models" / "singlepass.safetensors"
    save_singlepass(shipped, SinglePassNet(singlepass_preset(
        "tiny", adaptor_tasks=("desnow",))).eval(), tasks={"desnow": 15})
    stage.prepare()
    net, info = load_singlepass(stage.checkpoint())
    assert net.config.stem == 2 and net.config.width == 32 and info.tasks == {"desnow": 15}
    command = stage.command(tmp_path / "run")
    assert command[command.index("--init") + 1] == str(stage.checkpoint())
    for key, value in (("stem", "2"), ("width", "32"), ("enc_blocks", "[1, 1, 1]")):
        assert _value(command, f"singlepass.overrides.{key}") == value
    written = stage.checkpoint().stat().st_mtime_ns
    stage.prepare()  # a line with a checkpoint continues it: nothing written
    assert stage.checkpoint().stat().st_mtime_ns == written


def _git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def test_the_soup_line_fine_tunes_the_shipped_file_afresh_with_a_seed_per_slice(campaign,
                                                                                tmp_path):
    from trainer.config import load_config

    stage = {s.name: s for s in campaign.PLAN}["singlepass-soup"]
    shipped = tmp_path / "models" / "singlepass.safetensors"
    shipped.write_bytes(b"")
    stage.prepare()  # no warm start to write: the shipped file as it is
    assert not stage.checkpoint().exists()
    stage.checkpoint().write_bytes(b"")  # a later slice: still from the shipped file
    seeds = []
    for number in (1, 2):
        command = stage.command(tmp_path / "run", number)
        assert command[command.index("--init") + 1] == str(shipped)
        overrides = [c for c in command if "=" in c and not c.startswith("--")]
        config = load_config("singlepass_cpu", overrides)  # settings the trainer takes
        assert config.optim.lr == 1e-4 and config.loop.iterations == 600
        assert config.singlepass.task_weights == {} and config.singlepass.overrides["stem"] == 2
        seeds.append(config.loop.seed)
    assert seeds == [1, 2]
    chained = {s.name: s for s in campaign.PLAN}["singlepass-s2"]
    chained.checkpoint().write_bytes(b"")
    command = chained.command(tmp_path / "run", 2)  # a chained line continues its checkpoint
    assert command[command.index("--init") + 1] == str(chained.checkpoint())
    assert "loop.seed=2" not in command


def test_commit_slice_commits_only_the_slices_files(campaign, tmp_path, monkeypatch):
    """`--commit`: a finished slice's checkpoint and log row are committed at once, and
    nothing else that happens to be staged goes with them."""
    repo = tmp_path
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "test@example.com")
    _git(repo, "config", "user.name", "test")
    monkeypatch.setattr(campaign, "ROOT", repo)
    (repo / "work.py").write_text("print('half done')\n")
    _git(repo, "add", "work.py")  # someone's staged work in progress
    stage = {s.name: s for s in campaign.PLAN}["motion-deblur"]
    stage.checkpoint().write_bytes(b"weights")
    campaign._log(stage, 1, 10.0, 9.0)
    assert campaign.commit_slice(stage, 1)
    committed = _git(repo, "show", "--name-only", "--format=%s", "HEAD").split()
    assert "checkpoints/motion-deblur.safetensors" in committed
    assert "checkpoints/campaign.tsv" in committed and "work.py" not in committed
    assert "motion-deblur slice 1 (1500 iterations" in _git(repo, "log", "-1", "--format=%s")
    assert _git(repo, "diff", "--cached", "--name-only").split() == ["work.py"]  # still staged


def test_commit_slice_outside_a_repository_says_so(campaign, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(campaign, "ROOT", tmp_path / "no-repo")
    monkeypatch.setattr(campaign.time, "sleep", lambda s: None)
    stage = {s.name: s for s in campaign.PLAN}["defocus-deblur"]
    stage.checkpoint().write_bytes(b"weights")
    assert not campaign.commit_slice(stage, 3, attempts=2)
    assert "commit checkpoints/ by hand" in capsys.readouterr().out
