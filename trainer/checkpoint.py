"""Training checkpoints: written atomically, resumed automatically after a kill.

A checkpoint holds the training state (model, EMA, optimizer, step, RNG, resolved config);
it is separate from the exported inference weights. It is loaded with
`torch.load(weights_only=True)`, which reads tensors and plain containers only, never
arbitrary pickled objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dtpm_core.atomic import atomic_writer
from dtpm_core.errors import DTPMError

CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(DTPMError):
    """A checkpoint is unreadable or does not belong to this run."""


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_NAME


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the old one, so
    a kill at any moment leaves either the previous or the new checkpoint, never half."""
    with atomic_writer(path) as handle:
        torch.save(state, handle)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"no checkpoint at {path}") from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(f"checkpoint {path} is damaged ({exc}); delete it to start over "
                              "or restore a backup") from exc


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
