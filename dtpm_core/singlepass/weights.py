"""Weight files of the single-pass engine (DESIGN 4 and 6): safetensors with DTPM metadata.

A single-pass file holds the whole `SinglePassNet` (MoE adaptors included) together with its
config and the task -> matched time step (t_mat) table it was trained for. Like the DTPM base
and adapter files it carries a content sha256 and a metadata sha256 (config and task table
included) checked on load, and loading is strict: a
missing or extra tensor is an error, never silently dropped (the reference test script drops
the adaptors). Pickles are never read. What a file says about itself is read without torch
(`dtpm_core.singlepass.info`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import save as st_save_bytes

from ..files.atomic import write_bytes_atomic
from ..modelfiles.verified import FORMAT_VERSION, KIND_SINGLEPASS, read_verified, seal_metadata
from ..modelfiles.weights import content_sha256, load_strict, tensors_of
from .info import SinglePassInfo, check_tasks, singlepass_info
from .network import SinglePassNet


def save_singlepass(path: Path | str, net: SinglePassNet, *, tasks: dict[str, int],
                    training: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None) -> str:
    """Write `net` (all of its tensors, adaptors included) atomically; returns the content
    sha256.

    Args:
        tasks: task name -> matched time step t_mat, the tasks this network restores.
        training, metrics: JSON-serialisable notes stored with the weights.
    """
    tasks = check_tasks(tasks, net.config)
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


def load_singlepass(path: Path | str) -> tuple[SinglePassNet, SinglePassInfo]:
    """Rebuild the network (on the CPU, eval mode) from its file's own config and load its
    tensors strictly. Gradients stay enabled so that a loaded file can seed fine-tuning."""
    file = read_verified(path, KIND_SINGLEPASS)
    info = singlepass_info(file)
    tensors = tensors_of(file)
    net = SinglePassNet(info.config)
    load_strict(net, tensors, info.path, "single-pass network")
    return net.eval(), info
