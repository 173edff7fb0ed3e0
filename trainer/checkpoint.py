"""Training checkpoints: written atomically, resumed automatically after a kill.

A checkpoint holds the training state (model, EMA, optimizer, step, RNG, resolved config);
it is separate from the exported inference weights. It is loaded with
`torch.load(weights_only=True)`, which reads tensors and plain containers only, never
arbitrary pickled objects.

Every training-state file (checkpoint, single-pass anchor) carries `state_sha256`, a sha256
over everything else in it (tensor bytes, dtypes and shapes, names, numbers, the config),
checked on load like the model files' checksums (issue 21): a file whose checksum does not
match is refused, one without a checksum unless the user allows unverified files
(`dtpm_core.modelfiles.unverified`). `check_training_state` then checks that the state fits the
model it is loaded into (names and shapes), so that a checkpoint of another model is refused with
one line instead of a KeyError or a shape error deep in torch.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dtpm_core.errors import DTPMError
from dtpm_core.files.atomic import atomic_writer
from dtpm_core.modelfiles.unverified import no_checksum_message, unverified_allowed

CHECKPOINT_NAME = "checkpoint.pt"
STATE_HASH_KEY = "state_sha256"
"""The entry of a training-state file that holds the sha256 of all its other entries."""
CHECKPOINT_KEYS = ("kind", "step", "config", "trainable", "optimizer", "ema", "rng")
"""What `loop.run` writes into every checkpoint and reads back when resuming."""


class CheckpointError(DTPMError):
    """A checkpoint is unreadable or does not belong to this run."""


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_NAME


def state_sha256(state: Mapping[str, Any]) -> str:
    """sha256 over every entry of a training state except STATE_HASH_KEY: tensors by dtype,
    shape and bytes, containers by their items (dict keys in sorted order), plain values by
    type and repr. Independent of the file layout, so a state hashes the same after a
    save/load round trip."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in state.items() if k != STATE_HASH_KEY})
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu").contiguous()
        digest.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, Mapping):
        digest.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, list | tuple):
        digest.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or isinstance(value, bool | int | float | str | bytes | torch.dtype):
        digest.update(f"{type(value).__name__}{value!r};".encode())
    else:  # weights_only loading could not give such a value back anyway
        raise TypeError(f"a training state cannot hold a {type(value).__name__}")


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` with its checksum to a temporary file in the same folder, fsync, then
    rename over the old one, so a kill at any moment leaves either the previous or the new
    file, never half."""
    sealed = {**state, STATE_HASH_KEY: state_sha256(state)}
    with atomic_writer(path) as handle:
        torch.save(sealed, handle)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically, with its checksum (`save_training_state`)."""
    save_training_state(path, state)


CHECKPOINT_REMEDY = "delete it to start over or restore a backup"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and verify a checkpoint; a state that lacks what resuming and exporting read
    (CHECKPOINT_KEYS) is refused here, with one line that names the file."""
    state = load_training_state(path, "checkpoint", CHECKPOINT_REMEDY)
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}: it was not "
                              f"written by dtpm-train or was edited; {CHECKPOINT_REMEDY}")
    ema = state["ema"]
    if not isinstance(state["trainable"], Mapping) or not isinstance(ema, Mapping) \
            or not isinstance(ema.get("shadow"), Mapping) or "updates" not in ema:
        raise CheckpointError(f"checkpoint {path}: its trainable weights or EMA are not in "
                              f"the form dtpm-train writes; {CHECKPOINT_REMEDY}")
    return state


def load_training_state(path: str | Path, what: str, remedy: str) -> dict[str, Any]:
    """torch.load(weights_only=True) of a training-state file (`what`: "checkpoint", "anchor
    file", ...), its checksum verified, every failure turned into a CheckpointError that
    names the file, says what is wrong and what to do (`remedy`). torch's own text is left
    out where it would advise weights_only=False, which would let a damaged or foreign file
    run code."""
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
    recorded = state.pop(STATE_HASH_KEY, None)
    if recorded is None:
        if not unverified_allowed():
            raise CheckpointError(no_checksum_message(path, what, STATE_HASH_KEY))
    elif recorded != state_sha256(state):
        raise CheckpointError(f"{what} {path} is corrupted or was edited: its contents do not "
                              f"match the sha256 recorded when it was saved; {remedy}")
    return state


def check_training_state(state: Mapping[str, Any], params: Mapping[str, torch.Tensor],
                         path: str | Path, *, optimizer: bool = True) -> None:
    """Refuse, with one line naming the file, a checkpoint that does not fit the model it is
    loaded into: its trainable weights and EMA must have exactly the names and shapes of
    `params` (the model's trainable parameters), and, with `optimizer`, the optimizer state
    one entry of matching shapes per parameter."""
    expected = {name: tuple(p.shape) for name, p in params.items()}
    for label, values in (("trainable weights", state["trainable"]),
                          ("EMA weights", state["ema"]["shadow"])):
        _check_tensors(values, expected, path, label)
    if not optimizer:
        return
    try:
        groups = state["optimizer"]["param_groups"]
        ids = [i for group in groups for i in group["params"]]
        per_param = state["optimizer"]["state"]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path}: its optimizer state is not in the form "
                              f"dtpm-train writes ({exc}); {CHECKPOINT_REMEDY}") from exc
    if len(ids) != len(expected):
        raise CheckpointError(f"checkpoint {path}: its optimizer state has {len(ids)} "
                              f"parameters, the model trains {len(expected)}; it belongs to "
                              f"another model; {CHECKPOINT_REMEDY}")
    shapes = list(expected.values())  # the optimizer numbers the parameters in this order
    for index, shape in zip(ids, shapes, strict=True):
        for key, value in dict(per_param.get(index, {})).items():
            if isinstance(value, torch.Tensor) and value.dim() and tuple(value.shape) != shape:
                raise CheckpointError(
                    f"checkpoint {path}: optimizer state {key!r} of parameter {index} has "
                    f"shape {tuple(value.shape)}, the model's is {shape}; it belongs to "
                    f"another model; {CHECKPOINT_REMEDY}")


def _check_tensors(values: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]],
                   path: str | Path, label: str) -> None:
    missing = sorted(set(expected) - set(values))
    extra = sorted(set(values) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} ({_few(missing)})")
        if extra:
            parts.append(f"{len(extra)} the model does not have ({_few(extra)})")
        raise CheckpointError(f"checkpoint {path} does not fit this model: its {label} are "
                              f"{'; '.join(parts)}; {CHECKPOINT_REMEDY}")
    wrong = [f"{name} {_shape(values[name])} (model: {expected[name]})" for name in expected
             if _shape(values[name]) != expected[name]]
    if wrong:
        raise CheckpointError(f"checkpoint {path} does not fit this model: {len(wrong)} of "
                              f"its {label} have the wrong shape: {_few(wrong)}; "
                              f"{CHECKPOINT_REMEDY}")


def _shape(value: Any) -> tuple[int, ...] | str:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _few(items: list[str], keep: int = 3) -> str:
    more = f" and {len(items) - keep} more" if len(items) > keep else ""
    return ", ".join(items[:keep]) + more


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
