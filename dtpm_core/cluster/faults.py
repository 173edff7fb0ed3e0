"""Fault injection: see a cluster batch survive a lost worker and a lost driver. The tests use
it; an operator can run the same drill on a real cluster. Off unless one of these is set:

    DTPM_CLUSTER_KILL_WORKER_AFTER=N  when N files are finished, end one worker that is
                                      restoring a file, once: SIGKILL of its process when it
                                      runs on this machine, `ray.kill` (restartable) elsewhere
    DTPM_CLUSTER_KILL_DRIVER_AFTER=N  when N files are finished, SIGKILL the driver itself
                                      (no clean-up runs; rerun with --skip-existing)
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError

KILL_WORKER_ENV = "DTPM_CLUSTER_KILL_WORKER_AFTER"
KILL_DRIVER_ENV = "DTPM_CLUSTER_KILL_DRIVER_AFTER"


def _count(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number of files") from None


class Faults:
    """The faults asked for by the environment, fired by `after(finished, busy)`."""

    def __init__(self) -> None:
        self.kill_worker_after = _count(KILL_WORKER_ENV)
        self.kill_driver_after = _count(KILL_DRIVER_ENV)
        self.killed: str | None = None

    def after(self, finished: int, busy: Callable[[], list[tuple[Any, Any]]]) -> None:
        """Called when `finished` files are done; `busy` lists (actor, WorkerInfo) of the
        workers restoring a file now."""
        if self.kill_driver_after is not None and finished >= self.kill_driver_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.kill_worker_after is not None and self.killed is None \
                and finished >= self.kill_worker_after:
            for actor, info in busy()[:1]:
                if info.node == socket.gethostname():
                    os.kill(info.pid, signal.SIGKILL)
                else:
                    import ray

                    ray.kill(actor, no_restart=False)
                self.killed = info.where
