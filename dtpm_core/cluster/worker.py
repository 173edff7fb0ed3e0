"""The Ray actor of a cluster batch: one engine, loaded once and kept, restoring one planned
file per call with the CLI's own per-file function (read, restore, atomic write).

The worker writes the result itself, into the shared output folder, through the same atomic
writer as a single-process run, rather than sending the encoded bytes to the driver: results
can be hundreds of megabytes (16-bit TIFF), the inputs are read from the shared folder
anyway, and the driver stays a light coordinator. The target name is fixed by the driver's
plan and the write is a rename of a complete file, so a lost worker never doubles a file: lost
before its rename, it leaves only a hidden temporary file (swept at the end) and the file is
run again under the same name; lost after it, its result is recognised by the marker inside
(`driver.finished_already`). This module does not import ray: the driver wraps the class
with `ray.remote`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DTPMError
from .results import FAILED, RESTORED

if TYPE_CHECKING:
    from ..engines.engine import Engine, EngineSpec
    from ..files.output_plan import BatchItem, OutputPlan

RestoreOne = Callable[[argparse.Namespace, "OutputPlan", "BatchItem", "Engine", bool],
                      tuple[str, str]]
"""The CLI's per-file function (`dtpm_core.cli._restore_one`): read, restore, write and
record one item; ("done", "") or ("failed", reason). Handed in by the CLI, so this package
never imports it (no import cycle) and both paths run the very same code."""


@dataclass(frozen=True)
class WorkerInfo:
    """Where a worker runs and what it runs; `error` when it cannot work (its engine does not
    load, or it does not see the shared output folder)."""

    node: str
    pid: int
    device: str = ""
    precision: str = ""
    backend: str = ""
    threads: int = 0
    error: str | None = None
    output: str = ""  # what loading the engine printed (warnings): the driver shows it once

    @property
    def where(self) -> str:
        return f"{self.node}:{self.pid}"

    @property
    def runs(self) -> str:
        """Device, precision and backend, as the results table shows them."""
        return " ".join(part for part in (self.device, self.precision, self.backend) if part)


@dataclass(frozen=True)
class FileResult:
    """One file's result: RESTORED or FAILED, the reason, the seconds it took, what the
    per-file function printed (notes, warnings: the driver shows them) and the worker."""

    status: str
    message: str
    seconds: float
    output: str
    worker: WorkerInfo


class RestoreWorker:
    """One loaded engine restoring planned files one at a time (`restore`). The engine loads
    on the first call (`ready` or `restore`), so a worker that Ray restarts after losing its
    process loads it again by itself."""

    def __init__(self, args: argparse.Namespace, plan: OutputPlan, spec: EngineSpec,
                 restore_one: RestoreOne, threads: int, cwd: str) -> None:
        from ..backends.device import configure_threads
        from ..cli_warnings import plain_warnings

        plain_warnings("dtpm-restore")  # warnings as the CLI shows them (relayed by the driver)
        configure_threads(threads)  # the thread count can change the last bit of a pixel
        # quiet: no per-file progress bars in a worker; keeps_ledger off: the ledger of
        # results is one file, updated by the driver alone (workers would race on it)
        self._args = argparse.Namespace(**{**vars(args), "quiet": True})
        self._plan = replace(plan, keeps_ledger=False)
        self._spec = spec
        self._restore_one = restore_one
        self._threads = threads
        self._cwd = Path(cwd)  # the driver's: relative inputs and outputs mean the same here
        self._engine: Engine | None = None

    def ready(self, probe: str) -> WorkerInfo:
        """Load the engine and check that this node sees the driver's `probe` file in the
        output folder; the WorkerInfo says what is wrong if either fails."""
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                engine = self._loaded()
        except DTPMError as exc:
            return self._info(error=str(exc))
        if not Path(probe).is_file():
            return self._info(engine, error=(
                f"this node does not see {Path(probe).parent}: the driver's test file is not "
                "there. Inputs, outputs and model files must be on a folder every node mounts "
                "at the same path"))
        return replace(self._info(engine), output=printed.getvalue())

    def restore(self, item: BatchItem) -> FileResult:
        """Restore one planned item with the CLI's per-file function."""
        item = replace(item, source=self._cwd / item.source, target=self._cwd / item.target)
        started = time.perf_counter()
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            try:
                engine = self._loaded()  # again after Ray restarted a lost worker
            except DTPMError as exc:
                return FileResult(FAILED, str(exc), time.perf_counter() - started,
                                  printed.getvalue(), self._info())
            status, message = self._restore_one(self._args, self._plan, item, engine, False)
        return FileResult(RESTORED if status == "done" else FAILED, message,
                          time.perf_counter() - started, printed.getvalue(),
                          self._info(engine))

    def _loaded(self) -> Engine:
        if self._engine is None:
            from ..engines.engine import load_engine

            engine = load_engine(self._spec)
            engine.prepare()
            self._engine = engine
        return self._engine

    def _info(self, engine: Engine | None = None, error: str | None = None) -> WorkerInfo:
        if engine is None:
            return WorkerInfo(socket.gethostname(), os.getpid(), threads=self._threads,
                              error=error)
        return WorkerInfo(socket.gethostname(), os.getpid(), str(engine.device),
                          engine.precision, getattr(engine, "backend", ""), self._threads,
                          error)
