"""Weight files of the single-pass engine (DESIGN 4 and 6): safetensors with DTPM metadata.

A single-pass file holds the whole `SinglePassNet` (MoE adaptors included) together with its
config and the task -> matched time step (t_mat) table it was trained for. Like the DTPM base
and adapter files it carries a content sha256 and a metadata sha256 (config and task table
included) checked on load, and loading is strict: a
missing or extra tensor is an error, never silently dropped (the reference test script drops
the adaptors). Pickles are never read.

`weights._read` words its messages for the two DTPM kinds (base / adapter), so this module
has its own small reader with the same checks in the same order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save_bytes

from ..errors import ConfigError, WeightsError
from ..files.atomic import write_bytes_atomic
from ..modelfiles.weights import (
    FORMAT_VERSION,
    KIND_SINGLEPASS,
    _json_field,
    _load_strict,
    _read,
    content_sha256,
    seal_metadata,
)
from .network import SinglePassConfig, SinglePassNet


@dataclass(frozen=True)
class SinglePassInfo:
    """What a single-pass file says about itself."""

    path: Path | None
    sha256: str
    config: SinglePassConfig
    tasks: dict[str, int]  # task -> t_mat
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def _check_tasks(tasks: dict[str, int], config: SinglePassConfig) -> dict[str, int]:
    if not isinstance(tasks, dict) or not tasks:
        raise ConfigError("a single-pass model needs at least one task -> t_mat entry, "
                          f"got {tasks!r}")
    checked: dict[str, int] = {}
    for task, t_mat in tasks.items():
        if not isinstance(task, str) or not task:
            raise ConfigError(f"task names must be non-empty strings, got {task!r}")
        if isinstance(t_mat, bool) or not isinstance(t_mat, int) \
                or not 0 <= t_mat <= config.num_steps:
            raise ConfigError(f"t_mat of task {task!r} must be an integer in "
                              f"0..{config.num_steps}, got {t_mat!r}")
        checked[task] = t_mat
    unserved = sorted(set(config.adaptor_tasks) - set(checked))
    if unserved:
        raise ConfigError(f"the network has adaptors for {unserved} but no t_mat for them; "
                          "add them to tasks")
    return checked


def save_singlepass(path: Path | str, net: SinglePassNet, *, tasks: dict[str, int],
                    training: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None) -> str:
    """Write `net` (all of its tensors, adaptors included) atomically; returns the content
    sha256.

    Args:
        tasks: task name -> matched time step t_mat, the tasks this network restores.
        training, metrics: JSON-serialisable notes stored with the weights.
    """
    tasks = _check_tasks(tasks, net.config)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    sha = content_sha256(tensors)
    metadata = {
        "format": "dtpm", "format_version": str(FORMAT_VERSION), "kind": KIND_SINGLEPASS,
        "config": json.dumps(net.config.to_dict(), sort_keys=True),
        "tasks": json.dumps(tasks, sort_keys=True), "content_sha256": sha,
        "training": json.dumps(training or {}, sort_keys=True),
        "metrics": json.dumps(metrics or {}, sort_keys=True),
    }
    write_bytes_atomic(path, st_save_bytes(tensors, metadata=seal_metadata(metadata)))
    return sha


def _read_with_info(path: Path) -> tuple[dict[str, torch.Tensor], SinglePassInfo]:
    tensors, metadata = _read(path, KIND_SINGLEPASS)
    try:
        config = SinglePassConfig.from_dict(json.loads(metadata["config"]))
        tasks = _check_tasks(json.loads(metadata["tasks"]), config)
    except (KeyError, json.JSONDecodeError, ConfigError) as exc:
        raise WeightsError(f"{path}: its single-pass config or task table cannot be read: "
                           f"{exc}") from exc
    info = SinglePassInfo(path=path, sha256=metadata["content_sha256"], config=config,
                          tasks=tasks, training=_json_field(metadata, "training"),
                          metrics=_json_field(metadata, "metrics"))
    return tensors, info


def read_singlepass_info(path: Path | str) -> SinglePassInfo:
    """Read and verify a single-pass file's metadata (the tensors are checked too)."""
    return _read_with_info(Path(path))[1]


def load_singlepass(path: Path | str) -> tuple[SinglePassNet, SinglePassInfo]:
    """Rebuild the network (on the CPU, eval mode) from its file's own config and load its
    tensors strictly. Gradients stay enabled so that a loaded file can seed fine-tuning."""
    tensors, info = _read_with_info(Path(path))
    net = SinglePassNet(info.config)
    _load_strict(net, tensors, info.path, "single-pass network")
    return net.eval(), info
