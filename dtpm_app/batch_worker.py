"""`BatchWorker`: restores a list of files in its own thread with its own engine (DTPM or the
single-pass network, loaded with `dtpm_core.engines.engine.load_engine`), so the interactive session
(task and engine switches included) never changes a running batch. Pause, resume and cancel are
thread-safe; one file that fails is reported and the batch goes on.

Every result carries an output marker naming its input (`dtpm_core.files.output_marker`: the
sha256 of the input's bytes), so a result already in the output folder counts as done only
for the photo it was made from; the planner (`dtpm_core.files.output_plan`) gives any other file of
that name a wide berth (the result takes a free name) and the worker never writes over a file
that appeared after planning. An item's time excludes the time the batch was paused."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal, Slot

from dtpm_core.errors import (
    Cancelled,
    ConfigError,
    DTPMError,
    ImageReadError,
    ImageWriteError,
    ModelOutputError,
    OutOfMemory,
)
from dtpm_core.options import DTPM, SINGLE_PASS

from .workers import describe_error, load_engine

if TYPE_CHECKING:
    from dtpm_core.engines.engine import Engine, EngineSpec

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class BatchModels:
    """What a batch restores with: the DTPM base and task adapter, or (engine "single-pass")
    the single-pass network with its t_mat for `task`, in one pass per tile or (`ensemble`)
    the average of the 8 flip/rotate variants."""

    engine: str  # DTPM or SINGLE_PASS
    task: str
    base: Path | None = None
    adapter: Path | None = None
    singlepass: Path | None = None
    ensemble: bool = False


@dataclass(frozen=True)
class BatchSettings:
    models: BatchModels
    device: str
    k: int
    seed: int
    tile: int
    format_key: str  # a key of dtpm_app.formats.OUTPUT_CHOICES
    quality: int
    strength: float = 1.0  # DTPM texture strength (the single-pass engine has none)

    def engine_spec(self) -> EngineSpec:
        """The engine spec of these settings: DTPM at K, seed and strength, or the single-pass
        network for the task; precision None is the app's setting (the process preference)."""
        from dtpm_core.engines.engine import DTPMSpec, SinglePassSpec

        m = self.models
        if m.engine == SINGLE_PASS:
            if m.singlepass is None:
                raise ConfigError("no single-pass model is installed for the single-pass "
                                  "engine")
            return SinglePassSpec(m.singlepass, m.task, ensemble=m.ensemble, tile=self.tile,
                                  device=self.device, precision=None)
        if m.engine != DTPM or m.base is None or m.adapter is None:
            raise ConfigError(f"the batch needs a DTPM base and task adapter, got {m!r}")
        return DTPMSpec(m.base, m.adapter, steps=(self.k,), seed=self.seed,
                        strength=self.strength, tile=self.tile, device=self.device,
                        precision=None)


@dataclass(frozen=True)
class BatchEntry:
    source: Path
    target: Path
    reference: Path | None = None


@dataclass(frozen=True)
class BatchSummary:
    done: int
    skipped: int
    failed: int
    remaining: int  # not processed because the batch was cancelled
    failures: tuple[tuple[str, str], ...]  # (file, reason)
    error: str = ""  # the whole batch could not run (e.g. the model failed to load)
    cancelled: bool = False  # the person cancelled it (`remaining` were not processed)


class BatchWorker(QObject):
    """Restores a list of files to their targets; pause, resume and cancel are thread-safe."""

    item_started = Signal(int)
    item_progress = Signal(int, int, int)  # index, passes done, passes in all
    # index, "done" | "failed" | "skipped", message, the result's path ("" when none)
    item_finished = Signal(int, str, str, str)
    finished = Signal(object)  # BatchSummary

    def __init__(self, entries: list[BatchEntry], settings: BatchSettings,
                 record: Callable[[Path], None] | None = None) -> None:
        """`record(target)` is called after each result is written (the output ledger)."""
        super().__init__()
        self._entries = list(entries)
        self._settings = settings
        self._record = record
        self._cancel = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._paused_s = 0.0  # time the current item spent paused

    def cancel(self) -> None:
        self._cancel.set()
        self._resume.set()

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def _wait_if_paused(self) -> None:
        if not self._resume.is_set():
            start = time.monotonic()
            while not self._resume.wait(0.05):
                pass
            self._paused_s += time.monotonic() - start
        if self._cancel.is_set():
            raise Cancelled("batch cancelled")

    @Slot()
    def run(self) -> None:
        counts = {"done": 0, "skipped": 0, "failed": 0}
        failures: list[tuple[str, str]] = []
        index = 0
        error = ""
        cancelled = False
        try:
            engine = load_batch_engine(self._settings)
            for index, entry in enumerate(self._entries):
                self._wait_if_paused()
                self.item_started.emit(index)
                self._paused_s = 0.0
                status, message, output = self._one(engine, index, entry)
                counts[status] += 1
                if status == "failed":
                    failures.append((str(entry.source), message))
                self.item_finished.emit(index, status, message, str(output or ""))
            index = len(self._entries)
        except Cancelled:
            cancelled = True
        # The thread's top level: report instead of dying silently.
        except Exception as exc:  # noqa: BLE001
            if not isinstance(exc, DTPMError):
                log.exception("batch failed")
            error = describe_error(exc).message
        self.finished.emit(BatchSummary(counts["done"], counts["skipped"], counts["failed"],
                                        len(self._entries) - index, tuple(failures), error,
                                        cancelled))

    def _one(self, engine: Engine, index: int,
             entry: BatchEntry) -> tuple[str, str, Path | None]:
        """Restore one file; returns (status, message, the result's path). Cancelled
        propagates."""
        from dtpm_core.evaluation.metrics import psnr
        from dtpm_core.files.imageio import read_image, write_image
        from dtpm_core.files.output_marker import OutputMarker

        from .formats import OUTPUT_CHOICES, write_options

        target = entry.target
        if os.path.lexists(target):
            if _result_of(target, entry.source):
                return "skipped", "output exists: restored from this photo before", target
            return "failed", (f"{target} is not a result of this photo and appeared after the "
                              "batch was planned; it was kept (start the batch again to "
                              "write under a free name)"), None
        s = self._settings

        def on_progress(p: Any) -> None:
            self.item_progress.emit(index, p.done, p.total)
            self._wait_if_paused()

        try:
            loaded = read_image(entry.source)
            restored = engine.restore(loaded.rgb, progress=on_progress,
                                      should_stop=self._cancel.is_set)
            result = restored.image
            options = write_options(OUTPUT_CHOICES[s.format_key], s.quality, loaded.bit_depth,
                                    target)
            # the marker names this input: a rerun finds the result again, and another
            # photo's batch never takes it for its own; a file that appeared meanwhile is kept
            write_image(target, result, like=loaded, marker=OutputMarker.for_input(loaded),
                        replace=False, **options)
        except (ImageReadError, ImageWriteError, OutOfMemory, ConfigError,
                ModelOutputError) as exc:  # a NaN result is never written
            return "failed", str(exc), None
        message = f"{max(0.0, restored.seconds - self._paused_s):.1f} s"
        if self._record is not None:
            try:
                self._record(target)
            except OSError as exc:
                log.warning("%s: the output ledger could not be updated: %s", target, exc)
        if entry.reference is not None:
            try:
                ref = read_image(entry.reference).rgb
                if ref.shape == result.shape:
                    message += f", PSNR {psnr(result, ref):.2f} dB vs reference"
            except ImageReadError as exc:
                message += f" (reference unreadable: {exc})"
        return "done", "; ".join((message, *restored.notes)), target


def _result_of(target: Path, source: Path) -> bool:
    """`target`'s output marker names `source` (the sha256 of its bytes)."""
    from dtpm_core.files.output_marker import file_sha256, read_output_marker

    try:
        marker = read_output_marker(target)
        return marker is not None and marker.input_sha256 == file_sha256(source)
    except OSError:
        return False


def load_batch_engine(s: BatchSettings) -> Engine:
    """Load the batch's engine once, in the calling thread; what would fail every file (a task
    the single-pass network lacks) fails here, before the first, like `dtpm-restore`."""
    engine = load_engine(s.engine_spec())
    engine.prepare()
    return engine
