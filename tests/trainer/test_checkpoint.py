"""Issue 16, case 7: a damaged checkpoint or single-pass anchor file gives a short, safe
message (never torch's advice to load with weights_only=False) and exit status 2."""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict

import pytest
import torch

from trainer.checkpoint import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from trainer.cli import main as train_main
from trainer.singlepass.objective import ANCHOR_NAME, Anchor, load_anchor, save_anchor


class NotATensor:
    """Stands for any object a foreign pickle could carry."""


def _truncated() -> bytes:
    buffer = io.BytesIO()
    torch.save({"step": 3, "model": {"w": torch.zeros(1000)}}, buffer)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


def _foreign_pickle() -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": OrderedDict(), "hook": NotATensor()}, buffer)
    return buffer.getvalue()


DAMAGE = {"garbage": b"this is not a checkpoint" * 20, "truncated": _truncated(),
          "plain pickle": pickle.dumps({"step": 1}), "foreign object": _foreign_pickle(),
          "empty": b""}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_checkpoint_gives_a_clean_message_and_exit_2(tmp_path, capsys, damage):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    checkpoint_path(run_dir).write_bytes(DAMAGE[damage])
    code = train_main(["export", "--run-dir", str(run_dir), "-o", str(tmp_path / "x.safetensors")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(checkpoint_path(run_dir)) in err and "delete it to start over" in err
    assert "weights_only" not in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_anchor_gives_a_clean_message(tmp_path, damage):
    (tmp_path / ANCHOR_NAME).write_bytes(DAMAGE[damage])
    with pytest.raises(CheckpointError) as err:
        load_anchor(tmp_path)
    message = str(err.value)
    assert ANCHOR_NAME in message and "start the fine-tuning over" in message
    assert "weights_only" not in message and "\n" not in message


def _minimal_state(step: int = 7) -> dict:
    weights = {"w": torch.ones(2)}
    return {"kind": "stage1", "step": step, "config": {}, "trainable": weights,
            "optimizer": {"state": {}, "param_groups": []},
            "ema": {"decay": 0.9, "updates": 0, "shadow": weights}, "rng": {}}


def test_sound_files_still_load(tmp_path):
    save_checkpoint(checkpoint_path(tmp_path), _minimal_state())
    assert load_checkpoint(checkpoint_path(tmp_path))["step"] == 7
    save_anchor(tmp_path, Anchor({"w": torch.ones(2)}, {"w": torch.zeros(2)}))
    assert torch.equal(load_anchor(tmp_path).theta0["w"], torch.ones(2))
    (tmp_path / ANCHOR_NAME).write_bytes(b"")
    save_anchor(tmp_path, Anchor({}, {}))  # no parameters: still a valid (empty) anchor
    assert load_anchor(tmp_path).omega == {}
