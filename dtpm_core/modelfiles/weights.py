"""Weight files: safetensors with DTPM metadata, content hashes and strict loading (DESIGN 4).

A *base* file holds the Stage I denoiser; an *adapter* file holds one task's Stage II weights
and the hash of the base it was trained on. Every file carries its model config as JSON, a
sha256 of its tensors (`content_sha256`, which identifies the model: adapters name their base
by it) and a sha256 of its metadata (`metadata_sha256`: config, task, base hash, Stage II
options, calibration, task table, ... everything that changes results, and content_sha256, so
it covers the tensors too), both checked on load. A file without them (written before
`metadata_sha256` existed, or with it deleted) is refused unless the user allows unverified
files (`dtpm_core.modelfiles.unverified`). Pickles are never read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

from ..config import ModelConfig
from ..diffusion.calibration import Calibration
from ..errors import BaseMismatchError, ConfigError, WeightsError
from ..files.atomic import write_bytes_atomic
from ..networks.model import (
    DTPM,
    Stage2Options,
    build_task_modules,
    denoiser_parameter_names_trained,
)
from .unverified import no_checksum_message, unverified_allowed

FORMAT_VERSION = 1
KIND_BASE = "dtpm-base"
KIND_ADAPTER = "dtpm-adapter"
KIND_SINGLEPASS = "dtpm-singlepass"
KIND_NAMES = {KIND_BASE: "base model", KIND_ADAPTER: "adapter",
              KIND_SINGLEPASS: "single-pass model"}
"""What each kind of weight file is called in messages."""


@dataclass(frozen=True)
class BaseInfo:
    """What a base file says about itself."""

    path: Path | None
    sha256: str
    config: ModelConfig
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration = field(default_factory=Calibration)


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter file says about itself."""

    path: Path | None
    sha256: str
    task: str
    display_name: str
    base_sha256: str
    config: ModelConfig
    stage2: Stage2Options
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration = field(default_factory=Calibration)


def content_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the tensors, in name order. It identifies
    a model independently of file layout and metadata."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


METADATA_HASH_KEY = "metadata_sha256"


def metadata_sha256(metadata: dict[str, str]) -> str:
    """sha256 over every metadata entry (content_sha256 included, so the metadata is bound to
    its tensors) except this hash itself, in key order."""
    covered = {k: v for k, v in metadata.items() if k != METADATA_HASH_KEY}
    return hashlib.sha256(json.dumps(covered, sort_keys=True).encode()).hexdigest()


def seal_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """`metadata` with its `metadata_sha256` added (every save function calls this last)."""
    return {**metadata, METADATA_HASH_KEY: metadata_sha256(metadata)}


def _save(path: Path | str, tensors: dict[str, torch.Tensor], kind: str,
          config: ModelConfig, extra: dict[str, Any]) -> str:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    sha = content_sha256(tensors)
    metadata = {"format": "dtpm", "format_version": str(FORMAT_VERSION), "kind": kind,
                "config": config.to_json(), "content_sha256": sha}
    for key, value in extra.items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    write_bytes_atomic(path, st_save_bytes(tensors, metadata=seal_metadata(metadata)))
    return sha


def _read(path: Path | str, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read and verify a DTPM safetensors file of the given kind (one of KIND_NAMES)."""
    path = Path(path)
    what = KIND_NAMES[kind]
    if not path.is_file():
        raise WeightsError(f"{what} file not found: {path}")
    data = path.read_bytes()
    try:
        tensors = st_load_bytes(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file (damaged or of another "
                           f"format): {exc}") from exc
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != "dtpm":
        raise WeightsError(f"{path} is a safetensors file but not a DTPM model (no DTPM metadata)")
    try:
        version = int(metadata.get("format_version", "0"))
    except ValueError as exc:
        raise WeightsError(f"{path}: bad format_version {metadata.get('format_version')!r}") \
            from exc
    if version > FORMAT_VERSION:
        raise WeightsError(f"{path} was written by a newer DTPM Studio (format {version}); "
                           f"this version reads format {FORMAT_VERSION}: please update")
    found = metadata.get("kind")
    if found != kind:
        found_name = KIND_NAMES.get(found, "unknown kind of")
        raise WeightsError(f"{path} is a DTPM {found_name} file ({found!r}), not {_a(what)} "
                           f"(expected {_a(what)}); check which file goes to --base, --adapter "
                           "or --model")
    _verify(path, what, tensors, metadata)
    return tensors, metadata


def _verify(path: Path, what: str, tensors: dict[str, torch.Tensor],
            metadata: dict[str, str]) -> None:
    """Check the tensors against content_sha256 and the metadata against metadata_sha256 (which
    covers content_sha256, so both together cover everything); a wrong hash is refused always,
    a missing one unless the user allows unverified files. A file let through without
    content_sha256 gets the computed one: it is the model's identity (adapters name their
    base by it)."""
    actual = content_sha256(tensors)
    stated = metadata.get("content_sha256")
    if stated is not None and stated != actual:
        raise WeightsError(f"{path} is corrupted: its tensors do not match the sha256 recorded "
                           "when it was saved; download or export it again")
    recorded = metadata.get(METADATA_HASH_KEY)
    if recorded is not None and recorded != metadata_sha256(metadata):
        raise WeightsError(f"{path} is corrupted or was edited: its metadata (model config, "
                           "task, base model hash, calibration, ...) do not match the sha256 "
                           "recorded when it was saved; download or export it again")
    missing = [key for key, value in (("content_sha256", stated), (METADATA_HASH_KEY, recorded))
               if value is None]
    if missing and not unverified_allowed():
        raise WeightsError(no_checksum_message(path, what + " file", " and ".join(missing)))
    metadata.setdefault("content_sha256", actual)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _config_of(path: Path | str, metadata: dict[str, str]) -> ModelConfig:
    try:
        return ModelConfig.from_json(metadata["config"])
    except (KeyError, ConfigError) as exc:
        raise WeightsError(f"{path}: its model config cannot be read: {exc}") from exc


def _json_field(metadata: dict[str, str], key: str) -> dict[str, Any]:
    try:
        value = json.loads(metadata.get(key, "{}"))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path | str,
                 what: str) -> None:
    expected = set(module.state_dict())
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        raise WeightsError(f"{path} does not fit the {what} its config describes: "
                           f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                           f"unexpected keys {extra[:5]}{'...' if len(extra) > 5 else ''}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shape mismatch: torch lists every tensor, keep a few
        raise WeightsError(f"{path} does not fit the {what}: {_first_lines(exc)}") from exc


def _first_lines(exc: Exception, keep: int = 3) -> str:
    lines = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
    if not lines:
        return str(exc)
    more = f" (and {len(lines) - keep} more)" if len(lines) > keep else ""
    return f"{len(lines)} tensor(s) differ: " + " ".join(lines[:keep]) + more


def save_base(path: Path | str, model: DTPM, training: dict[str, Any] | None = None,
              metrics: dict[str, Any] | None = None,
              calibration: Calibration | None = None) -> str:
    """Write the Stage I denoiser of `model` as a base file; returns its content sha256."""
    return _save(path, model.base_state_dict(), KIND_BASE, model.config,
                 {"training": training or {}, "metrics": metrics or {},
                  **_calibration_field(calibration)})


def _calibration_field(calibration: Calibration | None) -> dict[str, str]:
    """Files saved without a calibration keep none, and load with the stated default."""
    return {} if calibration is None else {"calibration": calibration.to_json()}


def _calibration_of(path: Path | str, metadata: dict[str, str]) -> Calibration:
    try:
        return Calibration.from_metadata(metadata, str(path))
    except ConfigError as exc:
        raise WeightsError(str(exc)) from exc


def load_base(path: Path | str) -> tuple[DTPM, BaseInfo]:
    """Rebuild the base model (on the CPU, eval mode, frozen) from a base file."""
    tensors, metadata = _read(path, KIND_BASE)
    config = _config_of(path, metadata)
    model = DTPM(config)
    _load_strict(model.denoiser, tensors, path, "base denoiser")
    model.eval().requires_grad_(False)
    info = BaseInfo(path=Path(path), sha256=metadata["content_sha256"], config=config,
                    training=_json_field(metadata, "training"),
                    metrics=_json_field(metadata, "metrics"),
                    calibration=_calibration_of(path, metadata))
    return model, info


def save_adapter(path: Path | str, model: DTPM, task: str, base_sha256: str,
                 display_name: str | None = None, training: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None,
                 calibration: Calibration | None = None) -> str:
    """Write the Stage II weights of `model` for `task`; returns the file's content sha256."""
    if model.stage2 is None:
        raise ConfigError("save_adapter needs a model with Stage II parts")
    return _save(path, model.task_state_dict(), KIND_ADAPTER, model.config,
                 {"task": task, "display_name": display_name or task,
                  "base_sha256": base_sha256, "stage2": model.stage2.to_dict(),
                  "training": training or {}, "metrics": metrics or {},
                  **_calibration_field(calibration)})


class TaskParts(torch.nn.Module):
    """The loaded weights of one task: adapters, initial predictor and, for the fine-tuning
    ablations, replacement denoiser tensors (applied without touching the base)."""

    def __init__(self, info: AdapterInfo, block_widths: tuple[int, ...]) -> None:
        super().__init__()
        self.info = info
        self.adapters, self.predictor = build_task_modules(info.config, info.stage2, block_widths)
        self.denoiser_overrides: dict[str, torch.Tensor] = {}


def read_adapter_info(path: Path | str) -> AdapterInfo:
    """Read and verify an adapter file's metadata (the tensors are checked too)."""
    return _read_adapter(path)[1]


def _read_adapter(path: Path | str) -> tuple[dict[str, torch.Tensor], AdapterInfo]:
    tensors, metadata = _read(path, KIND_ADAPTER)
    try:
        stage2 = Stage2Options(**_json_field(metadata, "stage2"))
    except (TypeError, ConfigError) as exc:
        raise WeightsError(f"{path}: its Stage II options cannot be read: {exc}") from exc
    info = AdapterInfo(path=Path(path), sha256=metadata["content_sha256"],
                       task=metadata.get("task", "unknown"),
                       display_name=metadata.get("display_name", metadata.get("task", "")),
                       base_sha256=metadata.get("base_sha256", ""),
                       config=_config_of(path, metadata), stage2=stage2,
                       training=_json_field(metadata, "training"),
                       metrics=_json_field(metadata, "metrics"),
                       calibration=_calibration_of(path, metadata))
    return tensors, info


def load_adapter(path: Path | str, base: DTPM, base_info: BaseInfo) -> TaskParts:
    """Load an adapter file for `base`; refuses one trained on another base."""
    tensors, info = _read_adapter(path)
    if info.base_sha256 != base_info.sha256:
        raise BaseMismatchError(
            f"{path} ({info.display_name}) was trained on base model {info.base_sha256[:12]}, "
            f"but the loaded base is {base_info.sha256[:12]} ({base_info.path}); load the base "
            "it was trained with, or retrain the adapter on this base")
    parts = TaskParts(info, base.denoiser.block_widths)
    for prefix, module, what in (("adapters.", parts.adapters, "adapters"),
                                 ("predictor.", parts.predictor, "initial predictor")):
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if module is not None:
            _load_strict(module, state, path, what)
        elif state:
            raise WeightsError(f"{path} holds {what} weights its Stage II options do not use")
    overrides = {k[len("denoiser."):]: v for k, v in tensors.items() if k.startswith("denoiser.")}
    expected = set(denoiser_parameter_names_trained(base.denoiser, info.stage2))
    if set(overrides) != expected:
        raise WeightsError(f"{path}: its denoiser weights do not match its Stage II mode "
                           f"{info.stage2.mode!r} ({len(overrides)} tensors, expected "
                           f"{len(expected)})")
    shapes = {n: p.shape for n, p in base.denoiser.named_parameters()}
    for name, tensor in overrides.items():
        if tensor.shape != shapes[name]:
            raise WeightsError(f"{path}: denoiser tensor {name} has shape {tuple(tensor.shape)}, "
                               f"the base has {tuple(shapes[name])}")
    unknown = [k for k in tensors if not k.startswith(("adapters.", "predictor.", "denoiser."))]
    if unknown:
        raise WeightsError(f"{path} holds unexpected tensors {unknown[:5]}")
    parts.denoiser_overrides = overrides
    parts.eval().requires_grad_(False)
    return parts
