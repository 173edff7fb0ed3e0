"""Workers: QObjects moved to QThreads that run the model and file work off the GUI thread.

They emit arrays and dataclasses and never touch widgets (STYLE habit 7). Every job carries a
run number and a cancel flag (`threading.Event`); `Engine.restore` polls the flag after each
network pass, so a cancelled or superseded job stops within one step. The controller drops
whatever comes back tagged with a run number it no longer waits for.

- `InferenceWorker` lives for the whole session in one thread and holds one loaded
  `dtpm_core.engines.engine.Engine` per engine (DTPM, and the single-pass engine once installed);
  the controller hands it one job at a time (dtpm_app.jobs).
- `dtpm_app.batch_worker.BatchWorker` runs one batch in its own thread with its own model.
- `CallWorker` runs one plain function (read or write a file, install a model).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from dtpm_core.engines.engine import EngineSpec
from dtpm_core.errors import (
    BaseMismatchError,
    Cancelled,
    ConfigError,
    DTPMError,
    ImageReadError,
    ImageWriteError,
    OutOfMemory,
    WeightsError,
)
from dtpm_core.evaluation.model_scores import held_out_scores
from dtpm_core.options import DTPM

from .jobs import (
    AdapterLoaded,
    CurvePoint,
    CurvePointJob,
    EngineLoaded,
    Job,
    LoadEngine,
    Restore,
    Restored,
    SwitchAdapter,
)
from .state import PREVIEW_SIDE

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.05
"""Least time between two progress signals of one job (the first and last pass always
report): a progress bar needs no more, and a tiled 24 MP photo makes thousands of passes.
Every signal PySide6 6.12.0 delivers to a Python slot also drops a reference to True (a
bug: after about as many signals as True has references, Python aborts in bool_dealloc), so
fewer signals also keep a long session alive longer."""
_IMPORT_LOCK = threading.Lock()  # the first torch import may come from two threads at once


def load_engine(spec: EngineSpec) -> Any:
    """`dtpm_core.engines.engine.load_engine`, with torch imported on first use (and the CPU thread
    count set once per process: interactive and batch run alike)."""
    with _IMPORT_LOCK:
        from dtpm_core.backends.device import configure_threads

        configure_threads()
    from dtpm_core.engines.engine import load_engine as load

    return load(spec)


@dataclass(frozen=True)
class ErrorInfo:
    """A failure worded for a person: a short title and the core's message."""

    kind: str  # "image", "memory", "model", "setting", "write", "internal"
    title: str
    message: str


def describe_error(exc: BaseException) -> ErrorInfo:
    """Map an exception onto what the window shows (the core's messages name the file)."""
    if isinstance(exc, ImageReadError):
        return ErrorInfo("image", "Cannot read the image", str(exc))
    if isinstance(exc, ImageWriteError):
        return ErrorInfo("write", "Cannot write the image", str(exc))
    if isinstance(exc, OutOfMemory):
        return ErrorInfo("memory", "Out of memory", str(exc))
    if isinstance(exc, BaseMismatchError):
        return ErrorInfo("model", "The model does not fit the base model", str(exc))
    if isinstance(exc, WeightsError):
        return ErrorInfo("model", "Bad model file", str(exc))
    if isinstance(exc, ConfigError):
        return ErrorInfo("setting", "Invalid setting", str(exc))
    if isinstance(exc, DTPMError | OSError):
        return ErrorInfo("internal", "Operation failed", str(exc))
    return ErrorInfo("internal", "Unexpected error",
                     f"{type(exc).__name__}: {exc} (details in the log)")


def preview(image: np.ndarray, side: int = PREVIEW_SIDE) -> np.ndarray:
    """Downscale (area average) so that the longest side is at most `side` pixels."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1.0:
        return np.ascontiguousarray(image, dtype=np.float32)
    import cv2

    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA),
                                dtype=np.float32)


# ----------------------------------------------------------------------------- inference


class InferenceWorker(QObject):
    """Holds one loaded engine per engine id (`engines`); runs the jobs the controller hands
    it, one at a time."""

    progress = Signal(int, int, int, str)  # run id, passes done, passes in all, stage
    done = Signal(int, object)  # run id, EngineLoaded | AdapterLoaded | Restored | CurvePoint
    failed = Signal(int, object)  # run id, ErrorInfo
    cancelled = Signal(int)  # run id

    def __init__(self) -> None:
        super().__init__()
        self.engines: dict[str, Any] = {}  # engine id -> dtpm_core.engines.engine.Engine
        self._lpips: tuple[str, Any] | None = None  # (backend setting, its metric)

    @Slot(object)
    def run(self, job: Job) -> None:
        """Run one job; exactly one of done / failed / cancelled is emitted for it."""
        if job.cancel.is_set():
            self.cancelled.emit(job.run_id)
            return
        try:
            outcome = self._dispatch(job)
        except Cancelled:
            self.cancelled.emit(job.run_id)
        # The thread's top level: anything escaping would leave the window waiting forever.
        except Exception as exc:  # noqa: BLE001
            if not isinstance(exc, DTPMError):
                log.exception("job %d (%s) failed", job.run_id, type(job.request).__name__)
            self.failed.emit(job.run_id, describe_error(exc))
        else:
            self.done.emit(job.run_id, outcome)

    def _dispatch(self, job: Job) -> object:
        request = job.request
        if isinstance(request, LoadEngine):
            spec = request.spec
            self.engines.pop(spec.engine, None)  # the old weights go before the new load
            engine = load_engine(spec)
            self.engines[spec.engine] = engine
            identities = engine.info.identities if spec.engine == DTPM else frozenset()
            return EngineLoaded(spec, str(engine.device), engine.info.sha256, engine.tasks,
                                identities)
        if isinstance(request, SwitchAdapter):
            engine = self._engine(DTPM, "no base model is loaded")
            engine.prepare(request.spec)
            info = engine.adapter_info
            return AdapterLoaded(info.task, info.display_name or info.task, info.sha256,
                                 request.spec.adapter, held_out_scores(info.metrics))
        if isinstance(request, Restore):
            last = [0.0]

            def on_progress(p: Any) -> None:
                now = time.monotonic()
                if p.done in (1, p.total) or now - last[0] >= PROGRESS_INTERVAL_S:
                    last[0] = now
                    self.progress.emit(job.run_id, p.done, p.total, p.stage)

            engine = self._engine(request.engine)
            result = engine.restore(request.image, request.spec, progress=on_progress,
                                    should_stop=job.cancel.is_set)
            return Restored(request.key, result)
        if isinstance(request, CurvePointJob):
            return self._curve_point(request, job.cancel)
        raise ConfigError(f"unknown job {request!r}")

    def _engine(self, engine: str, missing: str = "") -> Any:
        if engine not in self.engines:
            raise ConfigError(missing or f"no {engine} model is loaded")
        return self.engines[engine]

    def _curve_point(self, request: CurvePointJob, cancel: threading.Event) -> CurvePoint:
        """The preview restored with the request's spec, measured against the reference or
        the DTPM initial prediction of the preview."""
        small = preview(request.image, request.side)
        engine = self._engine(request.spec.engine,
                              "no single-pass model is loaded" if request.steps is None
                              else "no base model is loaded")
        res = engine.restore(small, request.spec, should_stop=cancel.is_set)
        target = self._curve_target(request, res.initial, cancel)
        return CurvePoint(request.key, request.steps, *self._measure(res.image, target, cancel),
                          request.side)

    def _curve_target(self, request: CurvePointJob, initial: np.ndarray | None,
                      cancel: threading.Event) -> np.ndarray:
        """What the trade-off plot measures against, at preview size: the reference, or the
        DTPM initial prediction of the preview (deterministic: K and seed do not change it)."""
        image, reference, side = request.image, request.target, request.side
        if reference is not None:
            target = preview(reference, side)
            if target.shape[:2] != preview(image, side).shape[:2]:
                raise ConfigError(f"the reference is {reference.shape[1]}x{reference.shape[0]},"
                                  f" the image {image.shape[1]}x{image.shape[0]}")
            return target
        if initial is not None:
            return initial
        engine = self.engines.get(DTPM)
        if engine is None or engine.adapter_info is None:
            raise ConfigError("the DTPM model is not loaded: without a reference the "
                              "trade-off plot measures against its initial prediction")
        return engine.restore(preview(image, side), request.initial_spec,
                              should_stop=cancel.is_set).initial

    def _measure(self, result: np.ndarray, target: np.ndarray,
                 cancel: threading.Event) -> tuple[float, float, str]:
        """(PSNR, perceptual distance, "<its name>: <its backbone>") of `result` against
        `target`: LPIPS, or the EffNet-Lite0 feature distance where LPIPS would have a random
        trunk or cannot run (without torch; `perceptual_metric`), on the backend setting."""
        with _IMPORT_LOCK:
            from dtpm_core.backends import backend_preference
            from dtpm_core.evaluation.metrics import perceptual_metric, psnr

        if cancel.is_set():
            raise Cancelled("trade-off point cancelled")
        backend = backend_preference()
        if self._lpips is None or self._lpips[0] != backend:
            # Never download here: a 200+ MB fetch would hold up every restoration queued
            # behind it. Cached ImageNet weights are used; the plot names the metric.
            self._lpips = (backend, perceptual_metric(device="cpu", allow_download=False,
                                                      backend=backend))
        metric = self._lpips[1]
        return psnr(result, target), metric(result, target), f"{metric.name}: {metric.backbone}"


# ----------------------------------------------------------------------------- plain calls


class CallWorker(QObject):
    """Runs one function in a thread; emits its return value or an ErrorInfo."""

    done = Signal(object)
    failed = Signal(object)
    finished = Signal()

    def __init__(self, fn: Callable[[], object]) -> None:
        super().__init__()
        self._fn = fn

    @Slot()
    def run(self) -> None:
        try:
            value = self._fn()
        # The thread's top level: report instead of dying silently.
        except Exception as exc:  # noqa: BLE001
            if not isinstance(exc, DTPMError | OSError):
                log.exception("background call failed")
            self.failed.emit(describe_error(exc))
        else:
            self.done.emit(value)
        finally:
            self.finished.emit()


class _Relay(QObject):
    """Lives in the GUI thread so that the callbacks run there (queued connections)."""

    def __init__(self, on_done: Callable[[object], None],
                 on_failed: Callable[[ErrorInfo], None]) -> None:
        super().__init__()
        self._on_done, self._on_failed = on_done, on_failed
        self.delivered = False

    @Slot(object)
    def deliver(self, value: object) -> None:
        self.delivered = True
        self._on_done(value)

    @Slot(object)
    def fail(self, error: object) -> None:
        self.delivered = True
        self._on_failed(error)  # type: ignore[arg-type]


class ThreadPool:
    """Starts one-shot workers in their own QThread and keeps them alive until they end.

    start -> run, finished -> quit -> deleteLater (STYLE habit 7). Finished threads are
    forgotten at the next start, once their result has been delivered.
    """

    def __init__(self) -> None:
        self._running: dict[QThread, tuple[QObject, _Relay | None]] = {}

    def _prune(self) -> None:
        for thread, (_, relay) in list(self._running.items()):
            if thread.isFinished() and (relay is None or relay.delivered):
                del self._running[thread]

    def start(self, worker: QObject, finished: Signal, relay: _Relay | None = None) -> QThread:
        self._prune()
        thread = QThread()
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        finished.connect(thread.quit)
        thread.finished.connect(worker.deleteLater)
        self._running[thread] = (worker, relay)
        thread.start()
        return thread

    def call(self, fn: Callable[[], object], on_done: Callable[[object], None],
             on_failed: Callable[[ErrorInfo], None]) -> QThread:
        """Run `fn()` in a thread; `on_done(value)` or `on_failed(ErrorInfo)` in this one."""
        relay = _Relay(on_done, on_failed)
        worker = CallWorker(fn)
        worker.done.connect(relay.deliver)
        worker.failed.connect(relay.fail)
        return self.start(worker, worker.finished, relay)

    @property
    def busy(self) -> bool:
        return any(not t.isFinished() for t in self._running)

    def wait_all(self, timeout_s: float = 30.0) -> None:
        """Wait for the running threads (on shutdown)."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._running):
            thread.quit()
            thread.wait(max(0, int((deadline - time.monotonic()) * 1000)))
        self._running.clear()
