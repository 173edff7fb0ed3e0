"""Issue 21, items 2 and 7: a training checkpoint carries a checksum over everything in it
(weights, optimizer, config, ...) and one that does not fit the model is refused in one line.

- 16 weights of a checkpoint bit-flipped (by up to a few thousand ULPs) loaded and trained;
  now resuming, exporting or warm-starting from it is refused, naming the file;
- a checkpoint without a checksum (an old one, or one rewritten by a script) is refused
  unless the user passes --allow-unverified-models;
- a checkpoint with missing keys or wrong shapes gave a KeyError traceback (stage2 and
  export); now one line that names the file and what is wrong, exit 2.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from fast_settings import FAST

from dtpm_core.config import Stage2Options, preset
from dtpm_core.modelfiles.unverified import UNVERIFIED_ENV, UNVERIFIED_OPTION
from dtpm_core.modelfiles.weights import load_adapter, load_base, save_base
from dtpm_core.networks.model import DTPM, configure_stage2_trainable
from trainer.checkpoint import (
    STATE_HASH_KEY,
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    state_sha256,
)
from trainer.cli import main as train_main
from trainer.config import load_config
from trainer.ema import EMA
from trainer.singlepass.objective import ANCHOR_NAME, Anchor, load_anchor, save_anchor


@pytest.fixture(autouse=True)
def _checked(monkeypatch):
    """Unverified files refused, as by default; restored after each test (the option of
    dtpm-train sets the variable for its process)."""
    monkeypatch.setenv(UNVERIFIED_ENV, "0")


@pytest.fixture(scope="module")
def base_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("base") / "base.safetensors"
    torch.manual_seed(1)
    save_base(path, DTPM(preset("tiny", denoiser__semantic="none")))
    return path


def _sets(*extra: str) -> list[str]:
    args = []
    for item in (*FAST, *extra):
        args += ["--set", item]
    return args


def _stage2_state(base_file: Path, clean_folder: Path) -> dict:
    """A Stage II checkpoint as `loop.run` writes it (after one Adam step), for the tiny base."""
    config = load_config("cpu_demo_stage2", [*FAST, f'data.clean=["{clean_folder}"]',
                                             "data.synthetic_length=16",
                                             'stage2.task="motion-deblur"'])
    base, info = load_base(base_file)
    model = DTPM(base.config, Stage2Options())
    model.denoiser.load_state_dict(base.denoiser.state_dict())
    configure_stage2_trainable(model)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.Adam(list(trainable.values()), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    for p in trainable.values():
        p.grad = torch.randn(p.shape, generator=generator)
    optimizer.step()
    ema = EMA(trainable, 0.999)
    ema.update()
    return {"kind": "stage2", "step": 2, "config": config.to_dict(),
            "trainable": {k: v.detach().clone() for k, v in trainable.items()},
            "optimizer": optimizer.state_dict(), "ema": ema.state_dict(), "rng": rng_state(),
            "extra": {"base_path": str(base_file), "base_sha256": info.sha256,
                      "stage2": Stage2Options().to_dict(), "semantic": "none",
                      "residual_scale": 0.25}}


def _raw_save(path: Path, state: dict) -> None:
    """torch.save without (re)computing the checksum: what an edit or bit rot leaves."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path.write_bytes(buffer.getvalue())


def _flip_16_weights(state: dict) -> dict:
    """The issue's damage: 16 weights with a low mantissa bit pattern flipped (each changed
    by at most 4195 units in the last place), the stored checksum left as it was."""
    flipped = dict(state)
    flipped["trainable"] = {k: v.clone() for k, v in state["trainable"].items()}
    names = sorted(n for n, v in flipped["trainable"].items() if v.numel() >= 4)[:16]
    for name in names:
        bits = flipped["trainable"][name].view(-1).view(torch.int32)
        bits[1] ^= 0x1063  # 4195
    return flipped


def _export(run_dir: Path, out: Path, *extra: str) -> int:
    return train_main(["export", "--run-dir", str(run_dir), "-o", str(out), *extra])


def _one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_the_checksum_covers_weights_optimizer_and_config(base_file, clean_folder):
    state = _stage2_state(base_file, clean_folder)
    digest = state_sha256(state)
    assert digest == state_sha256({**state, STATE_HASH_KEY: "anything"})
    assert state_sha256(_flip_16_weights(state)) != digest
    moments = state["optimizer"]["state"][0]["exp_avg"].clone()
    moments[0] += 1e-6
    changed = {**state, "optimizer": {**state["optimizer"],
                                      "state": {**state["optimizer"]["state"],
                                                0: {**state["optimizer"]["state"][0],
                                                    "exp_avg": moments}}}}
    assert state_sha256(changed) != digest
    config = {**state["config"], "optim": {**state["config"]["optim"], "lr": 1.0}}
    assert state_sha256({**state, "config": config}) != digest


def test_a_saved_checkpoint_round_trips_with_its_checksum(base_file, clean_folder, tmp_path):
    state = _stage2_state(base_file, clean_folder)
    save_checkpoint(checkpoint_path(tmp_path), state)
    loaded = load_checkpoint(checkpoint_path(tmp_path))
    assert STATE_HASH_KEY not in loaded
    assert state_sha256(loaded) == state_sha256(state)


def test_sixteen_flipped_weights_are_refused_on_export_and_resume(base_file, clean_folder,
                                                                  tmp_path, capsys):
    state = _stage2_state(base_file, clean_folder)
    run_dir = tmp_path / "run"
    save_checkpoint(checkpoint_path(run_dir), state)
    sealed = torch.load(checkpoint_path(run_dir), weights_only=True)
    _raw_save(checkpoint_path(run_dir), _flip_16_weights(sealed))
    assert _export(run_dir, tmp_path / "a.safetensors") == 2
    err = _one_line(capsys.readouterr().err)
    assert str(checkpoint_path(run_dir)) in err and "corrupted or was edited" in err
    assert not (tmp_path / "a.safetensors").exists()
    code = train_main(["stage2", "--run-dir", str(run_dir), "--base", str(base_file),
                       "--task", "motion-deblur", "--iterations", "4", "--quiet",
                       *_sets(f'data.clean=["{clean_folder}"]', "data.synthetic_length=16")])
    err = _one_line(capsys.readouterr().err)
    assert code == 2 and str(checkpoint_path(run_dir)) in err


def test_a_checkpoint_without_checksum_needs_the_explicit_option(base_file, clean_folder,
                                                                 tmp_path, capsys):
    run_dir = tmp_path / "old_run"
    _raw_save(checkpoint_path(run_dir), _stage2_state(base_file, clean_folder))
    assert _export(run_dir, tmp_path / "a.safetensors") == 2
    err = _one_line(capsys.readouterr().err)
    assert str(checkpoint_path(run_dir)) in err and "no checksum" in err
    assert UNVERIFIED_OPTION in err
    assert _export(run_dir, tmp_path / "a.safetensors", UNVERIFIED_OPTION) == 0
    base, info = load_base(base_file)
    load_adapter(tmp_path / "a.safetensors", base, info)  # a sound adapter came out


def test_a_flipped_anchor_file_is_refused(tmp_path):
    save_anchor(tmp_path, Anchor({"w": torch.ones(8)}, {"w": torch.zeros(8)}))
    state = torch.load(tmp_path / ANCHOR_NAME, weights_only=True)
    state["theta0"]["w"].view(torch.int32)[3] ^= 0x1063
    _raw_save(tmp_path / ANCHOR_NAME, state)
    with pytest.raises(CheckpointError, match="corrupted or was edited") as err:
        load_anchor(tmp_path)
    assert ANCHOR_NAME in str(err.value)


# ------------------------------------------------------------------ item 7: does not fit


def _damaged(state: dict, how: str) -> dict:
    """A checkpoint of the right kind that does not fit its model (sealed: a bad export or
    a checkpoint of another model version, not bit rot)."""
    state = dict(state)
    trainable = dict(state["trainable"])
    shadow = dict(state["ema"]["shadow"])
    name = sorted(trainable)[0]
    if how == "missing keys":
        for key in sorted(trainable)[:2]:
            del trainable[key], shadow[key]
    elif how == "wrong shape":
        trainable[name] = shadow[name] = torch.zeros(3, *trainable[name].shape)
    elif how == "missing entry":
        del state["ema"]
        return state
    state["trainable"] = trainable
    state["ema"] = {**state["ema"], "shadow": shadow}
    return state


@pytest.mark.parametrize("how", ["missing keys", "wrong shape", "missing entry"])
def test_export_of_a_checkpoint_that_does_not_fit_is_one_line(base_file, clean_folder,
                                                              tmp_path, capsys, how):
    run_dir = tmp_path / "run"
    save_checkpoint(checkpoint_path(run_dir),
                    _damaged(_stage2_state(base_file, clean_folder), how))
    assert _export(run_dir, tmp_path / "a.safetensors") == 2
    err = _one_line(capsys.readouterr().err)
    assert str(checkpoint_path(run_dir)) in err
    assert {"missing keys": "missing 2", "wrong shape": "wrong shape",
            "missing entry": "lacks ema"}[how] in err
    assert not (tmp_path / "a.safetensors").exists()


def test_export_of_a_sound_hand_made_checkpoint_works(base_file, clean_folder, tmp_path):
    """The checkpoints of the tests above differ from this one only in their damage."""
    run_dir = tmp_path / "run"
    save_checkpoint(checkpoint_path(run_dir), _stage2_state(base_file, clean_folder))
    assert _export(run_dir, tmp_path / "a.safetensors") == 0


@pytest.mark.parametrize("how", ["missing keys", "wrong shape"])
def test_stage2_resume_from_a_checkpoint_that_does_not_fit_is_one_line(
        base_file, clean_folder, tmp_path, capsys, how):
    run_dir = tmp_path / "run"
    save_checkpoint(checkpoint_path(run_dir),
                    _damaged(_stage2_state(base_file, clean_folder), how))
    code = train_main(["stage2", "--run-dir", str(run_dir), "--base", str(base_file),
                       "--task", "motion-deblur", "--iterations", "4", "--quiet",
                       *_sets(f'data.clean=["{clean_folder}"]', "data.synthetic_length=16")])
    err = _one_line(capsys.readouterr().err)
    assert code == 2 and str(checkpoint_path(run_dir)) in err
    assert ("missing 2" if how == "missing keys" else "wrong shape") in err
