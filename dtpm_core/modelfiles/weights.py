"""Weight files as torch modules (DESIGN 4): saving, and strict loading of files that
`verified` has read and checked (kind, version, both hashes) without torch.

A *base* file holds the Stage I denoiser; an *adapter* file holds one task's Stage II weights
and the hash of the base it was trained on. Loading is strict: a missing or extra tensor, or
one of another shape, is an error, never silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

from ..config import ModelConfig
from ..diffusion.calibration import Calibration
from ..errors import ConfigError, WeightsError
from ..files.atomic import write_bytes_atomic
from ..networks.model import DTPM, build_task_modules, denoiser_parameter_names_trained
from .verified import (
    FORMAT_VERSION,
    KIND_ADAPTER,
    KIND_BASE,
    KIND_NAMES,
    KIND_SINGLEPASS,
    METADATA_HASH_KEY,
    STORED_FROM_KEY,
    AdapterInfo,
    BaseInfo,
    VerifiedFile,
    adapter_info,
    base_info,
    check_base_match,
    file_kind,
    read_verified,
    seal_metadata,
    tensor_digest,
)


def content_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """`verified.tensor_digest` of torch tensors (what a file of them will be hashed as)."""
    def entries():
        for name, tensor in tensors.items():
            t = tensor.detach().to("cpu").contiguous()
            data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            yield name, str(t.dtype), tuple(t.shape), data
    return tensor_digest(entries())


STORAGE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
"""How a file stores its floating-point tensors. Networks always load them into fp32
parameters: fp16 storage rounds every weight once (half the file), nothing else changes."""


def stored_tensors(tensors: dict[str, torch.Tensor], storage: str = "fp32"
                   ) -> dict[str, torch.Tensor]:
    """The tensors as a file of `storage` holds them (floating-point ones converted).

    Raises:
        ConfigError: an unknown storage, or a weight that fp16 cannot hold (|w| > 65504).
    """
    if storage not in STORAGE_DTYPES:
        raise ConfigError(f"weight storage must be one of {sorted(STORAGE_DTYPES)}, "
                          f"got {storage!r}")
    dtype = STORAGE_DTYPES[storage]
    out = {}
    for name, value in tensors.items():
        t = value.detach().to("cpu").contiguous()
        if t.is_floating_point() and t.dtype != dtype:
            t = t.to(dtype)
            if not torch.isfinite(t).all():
                raise ConfigError(f"tensor {name} has values that {storage} cannot hold: "
                                  "store the file in fp32")
        out[name] = t
    return out


def _save(path: Path | str, tensors: dict[str, torch.Tensor], kind: str,
          config: ModelConfig, extra: dict[str, Any], storage: str = "fp32") -> str:
    tensors = stored_tensors(tensors, storage)
    sha = content_sha256(tensors)
    metadata = {"format": "dtpm", "format_version": str(FORMAT_VERSION), "kind": kind,
                "config": config.to_json(), "content_sha256": sha}
    for key, value in extra.items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    write_bytes_atomic(path, st_save_bytes(tensors, metadata=seal_metadata(metadata)))
    return sha


def store_again(source: Path | str, out: Path | str, storage: str = "fp32",
                metrics: dict[str, Any] | None = None) -> str:
    """Write the base, adapter or single-pass file `source` again to `out` (which may be
    `source`) with its weights stored in `storage` and, when given, new `metrics`; the rest of
    its metadata (config, task(s), calibration, training recipe) is kept. For a file whose
    training run is gone, such as a campaign checkpoint. A base whose weights change (another
    storage) records the hash it was stored from, so that its adapters still load on it
    (`base_identities`). A single-pass file is stored in fp32 only. Returns the new file's
    content sha256."""
    kind = file_kind(source)
    if kind not in (KIND_BASE, KIND_ADAPTER, KIND_SINGLEPASS):
        raise ConfigError(f"{source} is a DTPM {KIND_NAMES.get(kind, repr(kind))} file, "
                          "which cannot be stored again")
    if kind == KIND_SINGLEPASS and storage != "fp32":
        raise ConfigError(f"{source} is a single-pass file, stored in fp32 only (its "
                          f"network is not checked in {storage}): use --storage fp32")
    file = read_verified(source, kind)
    tensors = stored_tensors(tensors_of(file), storage)
    metadata = {k: v for k, v in file.metadata.items() if k != METADATA_HASH_KEY}
    sha = content_sha256(tensors)
    if kind == KIND_BASE and sha != metadata["content_sha256"]:
        # the adapters trained on the original name its hash: the copy keeps them
        metadata.setdefault(STORED_FROM_KEY, metadata["content_sha256"])
    metadata["content_sha256"] = sha
    if metrics is not None:
        metadata["metrics"] = json.dumps(metrics, sort_keys=True)
    write_bytes_atomic(out, st_save_bytes(tensors, metadata=seal_metadata(metadata)))
    return sha


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path | str,
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
              calibration: Calibration | None = None, storage: str = "fp32") -> str:
    """Write the Stage I denoiser of `model` as a base file; returns its content sha256."""
    return _save(path, model.base_state_dict(), KIND_BASE, model.config,
                 {"training": training or {}, "metrics": metrics or {},
                  **_calibration_field(calibration)}, storage)


def _calibration_field(calibration: Calibration | None) -> dict[str, str]:
    """Files saved without a calibration keep none, and load with the stated default."""
    return {} if calibration is None else {"calibration": calibration.to_json()}


def load_base(path: Path | str) -> tuple[DTPM, BaseInfo]:
    """Rebuild the base model (on the CPU, eval mode, frozen) from a base file."""
    file = read_verified(path, KIND_BASE)
    info = base_info(file)
    model = DTPM(info.config)
    load_strict(model.denoiser, tensors_of(file), path, "base denoiser")
    model.eval().requires_grad_(False)
    return model, info


def tensors_of(file: VerifiedFile) -> dict[str, torch.Tensor]:
    """The tensors of a verified file, as torch tensors; those stored in 16 bits in fp32, the
    precision every network loads (`STORAGE_DTYPES`)."""
    try:
        tensors = st_load_bytes(file.data)
    except SafetensorError as exc:  # checked already: only a reader's own limit lands here
        raise WeightsError(f"{file.path} is not a readable safetensors file: {exc}") from exc
    return {name: t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
            for name, t in tensors.items()}


def save_adapter(path: Path | str, model: DTPM, task: str, base_sha256: str,
                 display_name: str | None = None, training: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None,
                 calibration: Calibration | None = None, storage: str = "fp32") -> str:
    """Write the Stage II weights of `model` for `task`; returns the file's content sha256.
    `storage` "fp16" halves the file (see `STORAGE_DTYPES`)."""
    if model.stage2 is None:
        raise ConfigError("save_adapter needs a model with Stage II parts")
    return _save(path, model.task_state_dict(), KIND_ADAPTER, model.config,
                 {"task": task, "display_name": display_name or task,
                  "base_sha256": base_sha256, "stage2": model.stage2.to_dict(),
                  "training": training or {}, "metrics": metrics or {},
                  **_calibration_field(calibration)}, storage)


class TaskParts(torch.nn.Module):
    """The loaded weights of one task: adapters, initial predictor and, for the fine-tuning
    ablations, replacement denoiser tensors (applied without touching the base)."""

    def __init__(self, info: AdapterInfo, block_widths: tuple[int, ...]) -> None:
        super().__init__()
        self.info = info
        self.adapters, self.predictor = build_task_modules(info.config, info.stage2, block_widths)
        self.denoiser_overrides: dict[str, torch.Tensor] = {}


def _read_adapter(path: Path | str) -> tuple[dict[str, torch.Tensor], AdapterInfo]:
    file = read_verified(path, KIND_ADAPTER)
    return tensors_of(file), adapter_info(file)


def load_adapter(path: Path | str, base: DTPM, base_info: BaseInfo, *,
                 other_base_ok: bool = False) -> TaskParts:
    """Load an adapter file for `base`; refuses one trained on another base, unless
    `other_base_ok` (a trainer's warm start moving an adapter onto a new base: the tensors
    must still fit this base's network)."""
    tensors, info = _read_adapter(path)
    if not other_base_ok:
        check_base_match(info, base_info)
    parts = TaskParts(info, base.denoiser.block_widths)
    for prefix, module, what in (("adapters.", parts.adapters, "adapters"),
                                 ("predictor.", parts.predictor, "initial predictor")):
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if module is not None:
            load_strict(module, state, path, what)
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
