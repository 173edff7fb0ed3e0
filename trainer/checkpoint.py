"""Training checkpoints: written atomically, resumed automatically after a kill.

A checkpoint holds the training state (model, EMA, optimizer, step, RNG, resolved config);
it is separate from the exported inference weights. It is loaded with
`torch.load(weights_only=True)`, which reads tensors and plain containers only, never
arbitrary pickled objects.
"""

from __future__ import annotations

import pickle
import struct
import warnings
import zipfile
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
    return load_training_state(path, "checkpoint",
                               "delete it to start over or restore a backup")


def load_training_state(path: str | Path, what: str, remedy: str) -> dict[str, Any]:
    """torch.load(weights_only=True) of a training-state file (`what`: "checkpoint", "anchor
    file", ...), every failure turned into a CheckpointError that names the file, says what
    is wrong and what to do (`remedy`). torch's own text is left out where it would advise
    weights_only=False, which would let a damaged or foreign file run code."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # protocol notes of the safe unpickler: noise here
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"no {what} at {path}") from exc
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{what} {path} is damaged or not a DTPM Studio {what}: it holds data other than "
            f"tensors and plain containers, which is never unpickled (that could run code); "
            f"{remedy}") from exc
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, TypeError, AttributeError,
            IndexError, UnicodeDecodeError, zipfile.BadZipFile, struct.error) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{what} {path} is damaged or truncated ({reason}); "
                              f"{remedy}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{what} {path} holds a {type(state).__name__}, not a DTPM "
                              f"Studio {what}; {remedy}")
    return state


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
