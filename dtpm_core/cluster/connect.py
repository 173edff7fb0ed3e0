"""Reaching Ray (a local one started here, or an existing cluster) and sizing the pool of
workers from what the cluster offers. ray is imported inside the functions."""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass

from ..errors import DTPMError
from .arguments import LOCAL

DEFAULT_CPUS_PER_WORKER = 1
"""One engine per core: the batch is many independent photos, so processes scale better than
threads, and a worker's memory is one model plus one image's activations."""
LOCAL_OBJECT_STORE_BYTES = 128 << 20
"""Object store of a local Ray: only paths and small results travel through it (the workers
read and write the shared folder themselves)."""
INSTALL_HINT = 'install the cluster extra: pip install "dtpm-studio[cluster]"'
REACH_SECONDS = 10.0
"""How long a cluster address may take to accept a connection (Ray itself would retry an
unreachable address for minutes)."""


class ClusterError(DTPMError):
    """Ray is missing, cannot be reached, or cannot run a single worker."""


@dataclass(frozen=True)
class WorkerShape:
    """What the pool asks Ray for: `count` actors of `cpus` cores and `gpus` GPUs each, whose
    engines run on `device` (the spec's device; "auto" is settled here so that a CPU worker
    on a GPU node never takes a GPU it was not given)."""

    count: int
    cpus: int
    gpus: int
    device: str

    def describe(self) -> str:
        each = f"{self.gpus} GPU + {self.cpus} CPU" if self.gpus else \
            f"{self.cpus} CPU{'s' if self.cpus > 1 else ''}"
        return f"{self.count} worker{'s' if self.count > 1 else ''} ({each} each, {self.device})"


def import_ray():
    """The ray module, or ClusterError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        if getattr(sys, "frozen", False):  # the desktop bundle leaves Ray out
            raise ClusterError("--cluster needs Ray, which the desktop bundle does not "
                               "carry: run dtpm-restore from a pip install instead "
                               f"({INSTALL_HINT})") from None
        raise ClusterError(f"--cluster needs Ray, which is not installed ({exc}); "
                           f"{INSTALL_HINT}") from None
    return ray


def connect(address: str, local_cpus: int | None) -> bool:
    """Connect this process to Ray; True when it started a local Ray (to shut down at the
    end). A process already connected (a caller's own `ray.init`) stays as it is.

    Args:
        address: LOCAL, "auto", "ray://HOST:PORT" or "HOST:PORT".
        local_cpus: CPUs a local Ray offers (None: all of this machine's).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address == LOCAL:
            # address "local": a new Ray of its own, even where `ray start` left one running
            ray.init(address="local", num_cpus=local_cpus or _usable_cores(),
                     include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                     **quiet)
            return True
        _check_reachable(address)
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = "a local Ray" if address == LOCAL else f"the Ray cluster at {address!r}"
        raise ClusterError(f"cannot start or reach {where} ({exc}); start one with "
                           "`ray start --head` or give the address of a running one") from exc
    return False


def _check_reachable(address: str) -> None:
    """For "HOST:PORT" and "ray://HOST:PORT": that something listens there (ConnectionError
    within REACH_SECONDS otherwise). "auto" is found by Ray itself."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_SECONDS):
            pass
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"nothing answers at {host}:{port}: {exc}") from None


def disconnect(started_here: bool) -> None:
    """Shut down a Ray this process started; leave a cluster it joined running."""
    import ray

    if started_here and ray.is_initialized():
        ray.shutdown()


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def size_workers(device: str, workers: int | None, cpus_per_worker: int | None,
                 resources: dict[str, float], todo: int) -> WorkerShape:
    """The pool for `todo` photos on a cluster offering `resources` (`ray.cluster_resources()`).

    GPU workers (one GPU each) for --device cuda, or --device auto on a cluster with GPUs;
    CPU workers otherwise, their engines pinned to the CPU. Without `workers`: one per GPU,
    or the cluster's CPUs / `cpus_per_worker`; never more than `todo` (at least one)."""
    cpus = cpus_per_worker or DEFAULT_CPUS_PER_WORKER
    gpus_offered = int(resources.get("GPU", 0))
    use_gpus = device.startswith("cuda") or (device == "auto" and gpus_offered > 0)
    if use_gpus:
        count = workers or gpus_offered
        if count < 1:
            raise ClusterError("--device cuda: the Ray cluster offers no GPU; use --device "
                               "cpu, or add GPU nodes")
        shape_device = "cuda" if device == "auto" else device
    else:
        count = workers or int(resources.get("CPU", 0)) // cpus
        if count < 1:
            raise ClusterError(f"the Ray cluster offers {resources.get('CPU', 0):g} CPUs, "
                               f"fewer than one worker's {cpus}; lower "
                               "--cluster-cpus-per-worker")
        shape_device = "cpu" if device == "auto" else device
    return WorkerShape(max(1, min(count, todo)), cpus, 1 if use_gpus else 0, shape_device)
