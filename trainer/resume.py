"""Resuming a run: a run folder with a checkpoint continues with the config and extra state
stored in it (nanoGPT style: the model is rebuilt from the checkpoint, not from flags)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .checkpoint import checkpoint_path, load_checkpoint
from .config import TrainConfig


def resumed_config(config: TrainConfig, run_dir: Path) -> tuple[TrainConfig, dict]:
    """(config, extra state) to train `run_dir` with: the stored ones when the folder has a
    checkpoint, except for loop.iterations, which may be raised to train longer; else
    (`config`, {})."""
    ckpt = checkpoint_path(run_dir)
    if not ckpt.is_file():
        return config, {}
    state = load_checkpoint(ckpt)
    stored = TrainConfig.from_dict(state["config"])
    if config.loop.iterations != stored.loop.iterations:
        stored = dataclasses.replace(
            stored, loop=dataclasses.replace(stored.loop, iterations=config.loop.iterations))
    return stored, dict(state.get("extra", {}))
