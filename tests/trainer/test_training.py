"""dtpm-train end to end, kill-and-resume, and two processes under torchrun."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fast_settings import FAST

from dtpm_core.cli import main as restore_main
from dtpm_core.modelfiles.verified import read_adapter_info
from dtpm_core.modelfiles.weights import load_adapter, load_base
from trainer.checkpoint import checkpoint_path, load_checkpoint
from trainer.cli import main as train_main
from trainer.loop import EXIT_SIGTERM

ROOT = Path(__file__).resolve().parents[2]


def _sets(*extra):
    args = []
    for item in (*FAST, *extra):
        args += ["--set", item]
    return args


def _stage1(run_dir, prepared, iterations=4, *extra):
    return train_main(["stage1", "--run-dir", str(run_dir), "--iterations", str(iterations),
                       "--quiet", *_sets(f'data.prepared="{prepared}"', *extra)])


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.slow
def test_prepare_stage1_stage2_export_restore(tmp_path, prepared_folder, clean_folder):
    assert _stage1(tmp_path / "s1", prepared_folder, 4, "loop.validate_every=4") == 0
    base = tmp_path / "s1" / "base.safetensors"
    assert base.is_file() and (tmp_path / "s1" / "samples" / "step_0000004.png").is_file()
    base_digest = _digest(base)
    code = train_main(["stage2", "--run-dir", str(tmp_path / "s2"), "--base", str(base),
                       "--task", "motion-deblur", "--iterations", "4", "--quiet",
                       *_sets(f'data.clean=["{clean_folder}"]', "data.synthetic_length=16")])
    assert code == 0
    assert _digest(base) == base_digest  # Stage II never writes to the base
    exported = tmp_path / "motion.safetensors"
    assert train_main(["export", "--run-dir", str(tmp_path / "s2"), "-o", str(exported)]) == 0
    info = read_adapter_info(exported)
    assert info.task == "motion-deblur" and info.training["steps"] == 4
    assert info.training["config"]["data"]["crop"] == 32  # the resolved config travels
    model, base_info = load_base(base)
    assert info.base_sha256 == base_info.sha256
    load_adapter(exported, model, base_info)
    out = tmp_path / "restored"
    assert restore_main([str(clean_folder / "coffee.png"), "-o", str(out), "--base", str(base),
                         "--adapter", str(exported), "--steps", "2", "-q"]) == 0
    assert (out / "coffee.png").is_file()
    # both files carry a measured sampling calibration (residual scale, start level, clamp)
    for calibration in (base_info.calibration, info.calibration):
        assert calibration.note.startswith("measured on")
        assert 50 <= calibration.start_step <= 1000 and calibration.x0_clip > 0
        assert 0.0 < calibration.residual_scale < 1.0  # the residual's RMS, not the default 1

    # a later session continues both stages from the exported files
    assert _stage1(tmp_path / "s1b", prepared_folder, 2, f'model.init="{base}"') == 0
    assert train_main(["stage2", "--run-dir", str(tmp_path / "s2b"), "--base", str(base),
                       "--task", "motion-deblur", "--iterations", "2", "--quiet",
                       *_sets(f'data.clean=["{clean_folder}"]', "data.synthetic_length=16",
                              f'stage2.init="{exported}"')]) == 0
    continued = read_adapter_info(tmp_path / "s2b" / "motion-deblur.safetensors")
    assert continued.calibration.residual_scale == info.calibration.residual_scale
    # stage2.rescale measures s again on the trained predictor (the file's s was measured on
    # the untrained one); an explicit s with a warm start and no rescale is refused
    assert train_main(["stage2", "--run-dir", str(tmp_path / "s2r"), "--base", str(base),
                       "--task", "motion-deblur", "--iterations", "2", "--quiet",
                       *_sets(f'data.clean=["{clean_folder}"]', "data.synthetic_length=16",
                              f'stage2.init="{exported}"', "stage2.rescale=true")]) == 0
    rescaled = read_adapter_info(tmp_path / "s2r" / "motion-deblur.safetensors")
    assert 0.0 < rescaled.calibration.residual_scale < 1.0
    assert rescaled.calibration.residual_scale != info.calibration.residual_scale
    assert train_main(["stage2", "--run-dir", str(tmp_path / "s2x"), "--base", str(base),
                       "--task", "motion-deblur", "--iterations", "2", "--quiet",
                       *_sets(f'data.clean=["{clean_folder}"]', "data.synthetic_length=16",
                              f'stage2.init="{exported}"',
                              "calibration.residual_scale=0.5")]) != 0
    assert train_main(["stage2", "--run-dir", str(tmp_path / "s2c"), "--base", str(base),
                       "--task", "desnow", "--iterations", "2", "--quiet",
                       *_sets(f'data.clean=["{clean_folder}"]', "data.synthetic_length=16",
                              f'stage2.init="{exported}"')]) != 0  # another task's adapter
    # the continued base (s1b) is another model: its adapters start from the old base's
    # only when stage2.rebase says so, and the result names the new base
    new_base = tmp_path / "s1b" / "base.safetensors"
    assert _digest(new_base) != base_digest
    moved = ["stage2", "--base", str(new_base), "--task", "motion-deblur", "--iterations", "2",
             "--quiet", *_sets(f'data.clean=["{clean_folder}"]', "data.synthetic_length=16",
                               f'stage2.init="{exported}"')]
    assert train_main([*moved, "--run-dir", str(tmp_path / "s2m")]) != 0
    assert train_main([*moved, "--run-dir", str(tmp_path / "s2n"), "--set",
                       "stage2.rebase=true"]) == 0
    rebased = read_adapter_info(tmp_path / "s2n" / "motion-deblur.safetensors")
    assert rebased.base_sha256 == load_base(new_base)[1].sha256 != info.base_sha256
    assert rebased.calibration.residual_scale == info.calibration.residual_scale


def _trained_state(run_dir):
    state = load_checkpoint(checkpoint_path(run_dir))
    return state["step"], state["trainable"], state["ema"]["shadow"], state["optimizer"]


def test_kill_and_resume_continues_exactly(tmp_path, prepared_folder, monkeypatch):
    assert _stage1(tmp_path / "straight", prepared_folder, 6) == 0
    calls = {"n": 0}
    original = torch.optim.Adam.step

    def dying_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # the process "dies" after the checkpoint of step 4
            raise SystemExit("killed")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", dying_step)
    with pytest.raises(SystemExit):
        _stage1(tmp_path / "killed", prepared_folder, 6)
    assert load_checkpoint(checkpoint_path(tmp_path / "killed"))["step"] == 4
    monkeypatch.setattr(torch.optim.Adam, "step", original)
    assert _stage1(tmp_path / "killed", prepared_folder, 6) == 0
    step_a, weights_a, ema_a, opt_a = _trained_state(tmp_path / "straight")
    step_b, weights_b, ema_b, opt_b = _trained_state(tmp_path / "killed")
    assert step_a == step_b == 6
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name
        assert torch.equal(ema_a[name], ema_b[name]), name
    for key, value in opt_a["state"].items():
        assert torch.equal(value["exp_avg"], opt_b["state"][key]["exp_avg"])


@pytest.mark.slow
def test_two_cpu_processes_under_torchrun_end_identical(tmp_path, prepared_folder):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "trainer.cli", "stage1",
               "--run-dir", str(tmp_path / "ddp"), "--iterations", "3", "--quiet", "--device",
               "cpu", *_sets(f'data.prepared="{prepared_folder}"', "data.batch_size=1")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 processes finished with identical weights" in result.stdout
    step, weights, _, _ = _trained_state(tmp_path / "ddp")
    assert step == 3
    from dtpm_core.modelfiles.weights import content_sha256
    assert content_sha256(weights) in result.stdout


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    code = train_main(["stage1", "--run-dir", str(tmp_path / "r"), "--iterations", "2",
                       "--quiet", *_sets(f'data.prepared="{tmp_path / "nothing"}"')])
    assert code == 2
    assert "prepare" in capsys.readouterr().err


@pytest.mark.parametrize("flags,expected", [
    ([], {"adapters", "predictor"}),
    (["--mode", "finetune-encoder"], {"predictor", "denoiser-encoder"}),
    (["--mode", "finetune-decoder"], {"predictor", "denoiser-decoder"}),
    (["--mode", "finetune-both"], {"predictor", "denoiser-encoder", "denoiser-decoder",
                                   "denoiser-middle"}),
    (["--no-predictor"], {"adapters"}),
    (["--no-stage1"], {"adapters", "predictor", "denoiser-encoder", "denoiser-decoder",
                       "denoiser-middle"}),
])
def test_stage2_ablation_flags_select_the_trained_parameters(tmp_path, clean_folder, flags,
                                                             expected, monkeypatch):
    from dtpm_core.config import preset
    from dtpm_core.modelfiles.weights import save_base
    from dtpm_core.networks.model import DTPM
    from trainer import cli, loop

    base = tmp_path / "base.safetensors"
    save_base(base, DTPM(preset("tiny", denoiser__semantic="none")))
    seen = {}

    def fake_run(job, dist, progress=True):  # capture the job instead of training
        seen["job"] = job

    monkeypatch.setattr(loop, "run", fake_run)
    assert cli.main(["stage2", "--run-dir", str(tmp_path / "r"), "--base", str(base),
                     "--task", "desnow", *flags, "--quiet",
                     *_sets(f'data.clean=["{clean_folder}"]')]) == 0

    def group(name):
        if not name.startswith("denoiser."):
            return name.split(".")[0]
        part = name.split(".")[1]
        if part in ("intro", "encoders", "downs"):
            return "denoiser-encoder"
        if part in ("ups", "decoders", "ending"):
            return "denoiser-decoder"
        return "denoiser-middle"

    job = seen["job"]
    assert {group(n) for n in job.trainable} == expected
    frozen = {n for n, p in job.model.named_parameters() if not p.requires_grad}
    assert frozen.isdisjoint(job.trainable)


def test_a_fresh_run_starts_the_encoder_predictor_from_imagenet(tmp_path, clean_folder,
                                                               monkeypatch):
    from dtpm_core.config import preset
    from dtpm_core.modelfiles.weights import save_base
    from dtpm_core.networks.efficientnet_lite import folded_state, load_efficientnet_lite0
    from dtpm_core.networks.model import DTPM
    from trainer import cli, loop

    base = tmp_path / "base.safetensors"
    save_base(base, DTPM(preset("tiny", denoiser__semantic="none")))
    seen = {}
    monkeypatch.setattr(loop, "run", lambda job, dist, progress=True: seen.update(job=job))
    overrides = ('model.overrides.predictor.encoder="efficientnet-lite0"',
                 "model.overrides.predictor.enc_blocks=[]", "model.overrides.predictor.width=8",
                 "model.overrides.predictor.dec_blocks=[1, 1, 1, 1, 1]")
    assert cli.main(["stage2", "--run-dir", str(tmp_path / "r"), "--base", str(base),
                     "--task", "motion-deblur", "--quiet",
                     *_sets(f'data.clean=["{clean_folder}"]', *overrides)]) == 0
    job = seen["job"]
    imagenet = folded_state(load_efficientnet_lite0(), with_head=False)
    for name, value in job.model.predictor.encoder.state_dict().items():
        assert torch.equal(value, imagenet[name]), name
    assert any(n.startswith("predictor.encoder.") for n in job.trainable)  # fine-tuned


def test_no_semantic_ablation_needs_a_matching_base(tmp_path, clean_folder, capsys):
    from dtpm_core.config import preset
    from dtpm_core.modelfiles.weights import save_base
    from dtpm_core.networks.model import DTPM
    base = tmp_path / "base.safetensors"
    save_base(base, DTPM(preset("tiny", denoiser__semantic="random")))
    code = train_main(["stage2", "--run-dir", str(tmp_path / "r"), "--base", str(base),
                       "--no-semantic", "--quiet", *_sets(f'data.clean=["{clean_folder}"]')])
    assert code == 2 and "without semantic code" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_to_resume_from(tmp_path, prepared_folder):
    import signal
    import time
    run_dir = tmp_path / "term"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "trainer.cli", "stage1", "--run-dir", str(run_dir),
               "--iterations", "100000", "--quiet",
               *_sets(f'data.prepared="{prepared_folder}"', "loop.checkpoint_every=100000")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "tensorboard").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3.0)  # let it take a few steps
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == EXIT_SIGTERM == 143  # documented in dtpm-train --help
    assert "checkpoint saved" in err and "Traceback" not in err
    step = load_checkpoint(checkpoint_path(run_dir))["step"]
    assert 0 < step < 100000


@pytest.mark.slow
def test_a_compiled_step_trains_as_the_eager_one(tmp_path, prepared_folder):
    """loop.compile: the same steps up to the compiler's rounding (Adam's first steps move
    each weight by about +-lr, so a weight the two runs move apart is one whose gradient
    changed sign: rare), and a checkpoint that a later eager run resumes from."""
    assert _stage1(tmp_path / "eager", prepared_folder, 2) == 0
    assert _stage1(tmp_path / "compiled", prepared_folder, 2, "loop.compile=true") == 0
    step_a, weights_a, _, _ = _trained_state(tmp_path / "eager")
    step_b, weights_b, _, _ = _trained_state(tmp_path / "compiled")
    assert step_a == step_b == 2
    lr = load_checkpoint(checkpoint_path(tmp_path / "eager"))["config"]["optim"]["lr"]
    apart = sum(int(((weights_b[n] - w).abs() > 0.5 * lr).sum()) for n, w in weights_a.items())
    total = sum(w.numel() for w in weights_a.values())
    assert apart / total < 0.01, (apart, total)
    assert _stage1(tmp_path / "compiled", prepared_folder, 4) == 0  # resumed (compiled again)
    assert _trained_state(tmp_path / "compiled")[0] == 4
