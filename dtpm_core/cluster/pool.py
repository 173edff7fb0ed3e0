"""Handing planned files to a pool of Ray workers, one file per worker at a time, and giving
the file of a lost worker (its process killed, its node gone) to another.

A lost worker's file goes back to the front of the queue, unless the worker finished it
before it was lost (its result is there, marked as this photo's: `finished_already`); Ray
restarts the worker (up to `MAX_WORKER_RESTARTS` times), which loads its engine again and
rejoins once a ping answers. The name of every result is fixed by the plan and each write is
an atomic rename, so no file is lost, doubled or left half-written. A file whose worker is lost `MAX_ATTEMPTS` times
is listed as failed: it may be the cause (the kernel's out-of-memory killer), and one such
photo must not stall the batch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .results import FAILED, RESTORED
from .worker import FileResult, WorkerInfo

if TYPE_CHECKING:
    from ..files.output_plan import BatchItem

MAX_ATTEMPTS = 3
"""Times a file is started before the loss of its worker makes it a failure."""
MAX_WORKER_RESTARTS = 3
"""Times Ray restarts one worker's lost process (each restart reloads the engine)."""
WAIT_SECONDS = 0.5
"""Longest wait for a result before the progress line is refreshed (and Ctrl-C is seen)."""
SLOW_START_SECONDS = 60.0
"""After this long without a ready worker, say that the cluster may lack the resources."""
RESTART_PING_SECONDS = 1.0
"""Pause before asking again a worker that Ray says is restarting."""
MAX_RESTART_PINGS = 120
"""Times a restarting worker is asked before it is given up (about two minutes)."""


@dataclass
class Outcome:
    """What became of one file: RESTORED or FAILED, why, after how many starts, and the
    worker's result (None when no worker finished it)."""

    item: BatchItem
    status: str
    message: str
    attempts: int
    result: FileResult | None = None


@dataclass
class _Slot:
    """One actor and what the pool knows of it. States: starting -> idle <-> busy; a lost
    worker goes back to starting until its ping answers (restarting while Ray says it is
    being restarted, asked again at `ping_at`); gone for good."""

    actor: Any
    info: WorkerInfo | None = None
    state: str = "starting"
    item: BatchItem | None = None
    losses: int = 0
    restart_pings: int = 0
    ping_at: float = 0.0


class Pool:
    """The workers and the queue of one batch; `run` drives it to the end.

    Args:
        actors: Ray actor handles of `RestoreWorker`s (not yet known to be ready).
        probe: the driver's test file in the output folder; each worker must see it.
        log: prints one line without breaking the progress line.
        finished_already: whether a lost worker's file was written before it was lost.
    """

    def __init__(self, actors: list[Any], probe: str, log: Callable[[str], None],
                 finished_already: Callable[[BatchItem], bool] = lambda item: False) -> None:
        self.slots = [_Slot(actor) for actor in actors]
        self.probe = probe
        self.log = log
        self.finished_already = finished_already
        self.start_errors: list[str] = []
        self._shown_load_output = False
        self._queue: deque[BatchItem] = deque()
        self._attempts: dict[BatchItem, int] = {}
        self._pending: dict[Any, tuple[str, _Slot]] = {}  # ObjectRef -> (call, worker)

    @property
    def working(self) -> int:
        """Workers ready or restoring."""
        return sum(slot.state in ("idle", "busy") for slot in self.slots)

    def busy(self) -> list[tuple[Any, WorkerInfo]]:
        """(actor, info) of the workers restoring a file now."""
        return [(s.actor, s.info) for s in self.slots if s.state == "busy" and s.info]

    def run(self, items: list[BatchItem], on_outcome: Callable[[Outcome], None],
            on_tick: Callable[[], None] = lambda: None) -> list[BatchItem]:
        """Restore `items`; `on_outcome` is called once per file as it ends, `on_tick` each
        time the idle workers have been given a file (at least every WAIT_SECONDS). Returns
        the files left undone because no worker was left."""
        import ray

        self._queue.extend(items)
        for slot in self.slots:
            self._ping(slot)
        started = time.monotonic()
        warned_slow = False
        while self._queue or self._restoring():
            self._ping_restarted()
            self._hand_out()
            on_tick()
            if not self._pending:
                if not any(slot.state == "restarting" for slot in self.slots):
                    break  # every worker is gone
                time.sleep(RESTART_PING_SECONDS)
                continue
            done, _ = ray.wait(list(self._pending), num_returns=1, timeout=WAIT_SECONDS)
            for ref in done:
                call, slot = self._pending.pop(ref)
                if call == "ready":
                    self._on_ready(ref, slot)
                else:
                    self._on_restored(ref, slot, on_outcome)
            if not warned_slow and not self.working and \
                    time.monotonic() - started > SLOW_START_SECONDS:
                warned_slow = True
                self.log(f"no worker has started after {SLOW_START_SECONDS:.0f} s: the "
                         "cluster may lack the resources asked for (see `ray status`); "
                         "waiting (Ctrl-C stops)")
        return list(self._queue)

    def _restoring(self) -> bool:
        return any(call == "restore" for call, _ in self._pending.values())

    def _hand_out(self) -> None:
        for slot in self.slots:
            if slot.state == "idle" and self._queue:
                slot.item, slot.state = self._queue.popleft(), "busy"
                self._attempts[slot.item] = self._attempts.get(slot.item, 0) + 1
                self._pending[slot.actor.restore.remote(slot.item)] = ("restore", slot)

    def _ping_restarted(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.state == "restarting" and slot.ping_at <= now:
                self._ping(slot)

    def _ping(self, slot: _Slot) -> None:
        """Ask a (new or restarted) worker to load its engine and check the shared folder."""
        slot.state = "starting"
        self._pending[slot.actor.ready.remote(self.probe)] = ("ready", slot)

    def _on_ready(self, ref: Any, slot: _Slot) -> None:
        import ray

        try:
            info: WorkerInfo = ray.get(ref)
        except ray.exceptions.ActorUnavailableError as exc:  # being restarted by Ray
            slot.restart_pings += 1
            if slot.restart_pings <= MAX_RESTART_PINGS:
                slot.state, slot.ping_at = "restarting", time.monotonic() + RESTART_PING_SECONDS
                return
            self.log(f"a worker did not come back: {_first_line(exc)}")
            slot.state = "gone"
            return
        except ray.exceptions.RayError as exc:
            slot.state = "gone"
            self.log(f"a worker could not start or was lost for good: {_first_line(exc)}")
            return
        slot.info, slot.restart_pings = info, 0
        if info.output and not self._shown_load_output:  # the same on every worker: once
            self._shown_load_output = True
            for line in info.output.splitlines():
                self.log(line)
        if info.error is not None:
            slot.state = "gone"
            self.start_errors.append(info.error)
            self.log(f"worker {info.where} cannot work: {info.error}")
            return
        slot.state = "idle"

    def _on_restored(self, ref: Any, slot: _Slot, on_outcome: Callable[[Outcome], None]) -> None:
        import ray

        item, slot.item = slot.item, None
        assert item is not None
        attempts = self._attempts[item]
        try:
            result: FileResult = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # an exception raised by the worker's code
            slot.state = "idle"
            on_outcome(Outcome(item, FAILED, _first_line(exc.cause or exc), attempts))
            return
        except ray.exceptions.RayError as exc:  # the worker's process or node was lost
            self._lost(slot, item, exc, on_outcome)
            return
        slot.state = "idle"
        on_outcome(Outcome(item, result.status, result.message, attempts, result))

    def _lost(self, slot: _Slot, item: BatchItem, exc: Exception,
              on_outcome: Callable[[Outcome], None]) -> None:
        where = slot.info.where if slot.info else "a worker"
        attempts = self._attempts[item]
        if self.finished_already(item):
            self.log(f"worker {where} lost ({type(exc).__name__}) after writing the result "
                     f"of {item.source}")
            on_outcome(Outcome(item, RESTORED, "written by a worker lost before it reported",
                               attempts))
        elif attempts >= MAX_ATTEMPTS:
            on_outcome(Outcome(item, FAILED, f"its worker was lost {attempts} times while "
                               "restoring it (out of memory? see the Ray logs)", attempts))
        else:
            self._queue.appendleft(item)
            self.log(f"worker {where} lost ({type(exc).__name__}); {item.source} goes back "
                     "in the queue")
        slot.losses += 1
        if slot.losses > MAX_WORKER_RESTARTS:
            slot.state = "gone"
        else:
            self._ping(slot)  # Ray restarts the actor; it rejoins when the ping answers


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
