"""What a single-pass weight file says about itself (DESIGN 6), read and verified without
torch (`dtpm_core.modelfiles.verified`): config, task -> t_mat table, notes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, WeightsError
from ..modelfiles.verified import KIND_SINGLEPASS, VerifiedFile, json_field, read_verified
from .config import SinglePassConfig


@dataclass(frozen=True)
class SinglePassInfo:
    """What a single-pass file says about itself."""

    path: Path | None
    sha256: str
    config: SinglePassConfig
    tasks: dict[str, int]  # task -> t_mat
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def check_tasks(tasks: dict[str, int], config: SinglePassConfig) -> dict[str, int]:
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


def singlepass_info(file: VerifiedFile) -> SinglePassInfo:
    metadata = file.metadata
    try:
        config = SinglePassConfig.from_dict(json.loads(metadata["config"]))
        tasks = check_tasks(json.loads(metadata["tasks"]), config)
    except (KeyError, json.JSONDecodeError, ConfigError) as exc:
        raise WeightsError(f"{file.path}: its single-pass config or task table cannot be read: "
                           f"{exc}") from exc
    return SinglePassInfo(path=file.path, sha256=metadata["content_sha256"], config=config,
                          tasks=tasks, training=json_field(metadata, "training"),
                          metrics=json_field(metadata, "metrics"))


def read_singlepass_info(path: Path | str) -> SinglePassInfo:
    """Read and verify a single-pass file's metadata (the tensors' hash is checked too)."""
    return singlepass_info(read_verified(path, KIND_SINGLEPASS))
