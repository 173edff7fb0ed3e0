"""Resuming a run: a run folder with a checkpoint continues with the config and extra state
stored in it (nanoGPT style: the model is rebuilt from the checkpoint, not from flags)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dtpm_core.errors import ConfigError

from .checkpoint import CHECKPOINT_REMEDY, CheckpointError, checkpoint_path, load_checkpoint
from .config import TrainConfig


def resumed_config(config: TrainConfig, run_dir: Path) -> tuple[TrainConfig, dict]:
    """(config, extra state) to train `run_dir` with: the stored ones when the folder has a
    checkpoint, except for loop.iterations, which may be raised to train longer; else
    (`config`, {})."""
    ckpt = checkpoint_path(run_dir)
    if not ckpt.is_file():
        return config, {}
    state = load_checkpoint(ckpt)
    stored = stored_config(state, ckpt)
    if config.loop.iterations != stored.loop.iterations:
        stored = dataclasses.replace(
            stored, loop=dataclasses.replace(stored.loop, iterations=config.loop.iterations))
    return stored, dict(state.get("extra", {}))


def stored_config(state: Mapping[str, Any], path: Path) -> TrainConfig:
    """The resolved config a checkpoint was trained with; one that cannot be read is a
    CheckpointError naming the file."""
    try:
        return TrainConfig.from_dict(state["config"])
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {path}: its stored config cannot be read ({exc}); "
                              f"{CHECKPOINT_REMEDY}") from exc


def extra_value(extra: Mapping[str, Any], key: str, path: Path) -> Any:
    """extra[key] of a checkpoint, or a CheckpointError naming the file and the entry."""
    if key not in extra:
        raise CheckpointError(f"checkpoint {path} lacks the entry extra[{key!r}] that this "
                              f"kind of run stores; {CHECKPOINT_REMEDY}")
    return extra[key]
