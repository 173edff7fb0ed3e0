"""The app's state and scheduler: image, reference, engine, models, K, seed, caches and jobs.

No widgets and no model maths here: the controller decides *what* to compute (its
`JobPlanner` half, in dtpm_app.job_planner, holds the keys and priorities), hands one job at
a time to the `InferenceWorker`, caches what comes back and tells the window what to show
through signals. A request that makes the running job useless (another K, seed, image, task,
engine, ensemble, texture strength) sets that job's cancel flag; results are cached by an
exact key (DTPM: image, adapter, seed, tile, texture strength, K; Fast: image, network, task,
tile, ensemble), so a late result can never be shown for the wrong settings, and signals
from runs the controller no longer waits for are dropped. What it reports to the window is in
its `ControllerViews` half (dtpm_app.controller_views); `set_strength` in dtpm_app.texture_strength.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from dtpm_core.catalog import Catalog, load_catalog, user_models_dir
from dtpm_core.errors import WeightsError
from dtpm_core.imageio import LoadedImage, read_image

from .batch_runner import match_reference
from .controller_views import ControllerViews
from .fast_engine import (
    DTPM,
    FAST,
    FastLoaded,
    FastModel,
    FastPoint,
    FastPointJob,
    FastRestored,
    LoadFast,
    RestoreFast,
)
from .formats import OUTPUT_CHOICES, write_options
from .job_planner import CURVE_KS, JobPlanner, best_task
from .model_store import InstallReport, install_models, scores_of_fitting_adapters
from .saving import ShownResult
from .settings import ENGINE_CHOICES, AppSettings
from .state import CACHE_BYTES, ArrayCache, ImageState, Progress
from .texture_strength import TextureStrength
from .workers import (
    AdapterLoaded,
    BaseLoaded,
    CurvePoint,
    CurvePointJob,
    ErrorInfo,
    InferenceWorker,
    Job,
    LoadBase,
    Restored,
    RestoreImage,
    SwitchAdapter,
    ThreadPool,
)

__all__ = ["CURVE_KS", "Controller"]


class Controller(JobPlanner, ControllerViews, TextureStrength, QObject):
    modelsChanged = Signal(object)  # ModelsState
    imageChanged = Signal(object)  # ImageState | None
    referenceChanged = Signal(object)  # Path | None
    displayChanged = Signal(object)  # Display
    curveChanged = Signal(object)  # CurveState
    progressChanged = Signal(object)  # Progress | None
    busyChanged = Signal(bool)
    message = Signal(str, str, str)  # level ("info", "warning", "error"), title, text
    saved = Signal(object)  # Path
    settled = Signal()  # nothing left to compute for the current settings
    jobCancelled = Signal(int)  # the worker's `cancelled`, relayed in the GUI thread
    stepsReset = Signal(int)  # K was changed by the controller (a large new photo)
    _submit = Signal(object)  # Job, to the worker thread

    def __init__(self, settings: AppSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.k, self.seed, self.tile = settings.default_k, settings.seed, settings.tile
        self.strength = settings.strength  # DTPM texture strength: set_strength
        self.device = settings.device
        self.engine = settings.engine  # as chosen; see `active_engine`
        self.fast_ensemble = settings.fast_ensemble  # Fast: average 8 flips/rotations
        self.sides = (settings.left_side, settings.right_side)  # what the split view shows
        self.fast = FastModel()
        self._preferred_task = settings.task  # the last task chosen, until it is installed
        self._task_scores: dict = {}  # task -> HeldOutScores stored in its adapter file
        self.batch_running = False  # a batch has the processor: no background work here
        self._seconds: dict[tuple, float] = {}  # result key -> seconds it took
        self._pass_rate: dict[str, float] = {}  # device -> seconds per megapixel and pass
        self._warned: tuple | None = None
        self.catalog = Catalog(None, {})
        self.task: str | None = None
        self.image: ImageState | None = None
        self.reference: np.ndarray | None = None
        self.reference_path: Path | None = None
        self._ids = itertools.count(1)
        self._runs = itertools.count(1)
        self._ref_id = 0
        self._base: BaseLoaded | None = None
        self._base_for: tuple[Path, str] | None = None  # (file, device asked for)
        self._adapter: AdapterLoaded | None = None
        self._base_failed: tuple | None = None
        self._adapter_failed: Path | None = None
        self._model_error = ""
        self._inflight: Job | None = None
        self._started_at = 0.0
        self._eta_base: tuple[int, float] | None = None  # (passes, time) after the cheap ones
        self._user_stopped = False
        self._failed_keys: set[tuple] = set()
        self._results = ArrayCache()
        self._initials = ArrayCache(CACHE_BYTES // 4)
        self._curves: dict[tuple, dict[int, CurvePoint]] = {}
        self._pending_calls = 0
        self._busy = False
        self._closed = False
        self.calls = ThreadPool()
        self._thread = QThread()
        self._thread.setObjectName("dtpm-inference")
        self.worker = InferenceWorker()
        self.worker.moveToThread(self._thread)
        self._submit.connect(self.worker.run)
        self.worker.progress.connect(self._on_progress)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self._thread.finished.connect(self.worker.deleteLater)
        self._thread.start()

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        """Read the installed models and start loading the default one."""
        self.reload_catalog()

    def reload_catalog(self) -> None:
        try:
            self.catalog = load_catalog()
        except WeightsError as exc:
            self.catalog = Catalog(None, {})
            self.message.emit("error", "Model manifest damaged", str(exc))
        self._base_failed, self._adapter_failed = None, None
        self.fast.set_installed(self.catalog.singlepass)
        self._task_scores = scores_of_fitting_adapters(self.catalog.base, self.catalog.adapters)
        self._pick_task()
        self._emit_models()
        self._changed()

    def _pick_task(self) -> None:
        """The task chosen last if it is installed (the single-pass network's tasks are known
        once it is loaded), else keep the current one, else the one whose model does best on
        its held-out images (stored in the adapter files), else the first by name."""
        tasks = self.tasks()
        if self._preferred_task in tasks:
            self.task = self._preferred_task
        elif self.task not in tasks:
            self.task = best_task(self._task_scores, list(tasks)) or \
                next(iter(sorted(tasks)), None)

    @property
    def models_ready(self) -> bool:
        return self._adapter is not None and self._adapter_matches()

    @property
    def has_models(self) -> bool:
        """Some engine can restore something."""
        return self.has_dtpm or self.fast.installed

    @property
    def fast_ready(self) -> bool:
        """The single-pass network is loaded for the current device."""
        return self.fast.ready(self.device)

    def open_image(self, path: str | Path, reference: str | Path | None = None) -> None:
        """Read an image in the background; it replaces the current one. Its reference is
        `reference`, else a file of the same name in the reference folder, if any."""
        path = Path(path).absolute()  # recent files and save folders work from anywhere
        self._call(lambda: read_image(path),
                   lambda loaded: self._set_image(path, loaded, reference),
                   lambda err: self.message.emit("error", err.title, err.message))

    def set_reference(self, path: str | Path) -> None:
        """Use `path` as the ground truth of the current image (same size)."""
        path = Path(path)
        self._call(lambda: read_image(path), lambda loaded: self._set_reference(path, loaded),
                   lambda err: self.message.emit("error", err.title, err.message))

    def clear_reference(self) -> None:
        self._apply_reference(None, None)

    def set_steps(self, k: int) -> None:
        if k != self.k:
            self.k = int(k)
            self._user_stopped = False
            self._changed()

    def set_seed(self, seed: int) -> None:
        if seed != self.seed:
            self.seed = int(seed)
            self._user_stopped = False
            self._changed()

    def set_tile(self, tile: int) -> None:
        if tile != self.tile:
            self.tile = int(tile)
            self._changed()

    def set_device(self, device: str) -> None:
        if device != self.device:
            self.device = device
            self._base_failed = None
            self.fast.retry()
            self._user_stopped = False
            self._emit_models()
            self._changed()

    def set_task(self, task: str) -> None:
        if task != self.task and task in self.tasks():
            self.task = self._preferred_task = task
            self._adapter_failed = None
            self._user_stopped = False
            self._emit_models()
            self._changed()
            self._warn_unavailable()

    def set_engine(self, engine: str) -> None:
        """Restore with "dtpm" (K steps, seed) or "fast" (the single-pass network)."""
        if engine in ENGINE_CHOICES and engine != self.engine:
            self.engine = engine
            self._user_stopped = False
            self._warned = None
            self._emit_models()
            self._changed()
            self._warn_unavailable()

    def set_fast_ensemble(self, ensemble: bool) -> None:
        """Fast engine: one pass per tile, or the 8-way flip/rotate ensemble (8x the
        passes); each has its own cached result."""
        if ensemble != self.fast_ensemble:
            self.fast_ensemble = bool(ensemble)
            self._user_stopped = False
            self._changed()

    def set_sides(self, left: str, right: str) -> None:
        """What the split view shows: a result it shows is computed even for the engine
        not in use (e.g. the Fast result beside the DTPM one)."""
        if (left, right) != self.sides:
            self.sides = (left, right)
            self._user_stopped = False
            self._changed()

    def restore_now(self) -> None:
        """Resume after a cancel, and retry what failed."""
        self._user_stopped = False
        self._failed_keys.clear()
        self._base_failed, self._adapter_failed = None, None
        self.fast.retry()
        self._emit_models()
        self._changed()

    def set_batch_running(self, running: bool) -> None:
        """A batch started or ended: while it runs only the result on screen is computed
        here (curve points and the other engine wait), so both get the processor alike."""
        if running != self.batch_running:
            self.batch_running = bool(running)
            self._changed()

    def cancel(self) -> None:
        """Stop the running job and the queued ones until the next request."""
        self._user_stopped = True
        job = self._inflight
        if job is not None and job.cancellable:
            job.cancel.set()
        self._update_busy()
        self._emit_display()
        self.message.emit("info", "Cancelled", self.shown_text())

    def current_result(self) -> np.ndarray | None:
        """The restored image of the engine in use for the current settings (DTPM: exactly
        the current K), if ready."""
        if self.active_engine == FAST:
            key = self._fast_key()
            return self.fast.results.get(key) if key is not None else None
        key = self._display_key()
        return self._results.get(key) if key is not None else None

    def result_tag(self) -> str:
        """A file name part for the result on screen: "dtpm-K4", "fast" or "fast-ensemble"
        (empty while there is none)."""
        shown = self.shown_result()
        return shown.tag if shown is not None else ""

    def save_result(self, path: str | Path, format_key: str, quality: int,
                    shown: ShownResult | None = None) -> None:
        """Write `shown` (default: the result on screen) to `path`; the caller has made sure
        that no file is replaced without consent, and write_image refuses to write over the
        photo it came from."""
        shown, image = shown or self.shown_result(), self.image
        if shown is None or image is None:
            self.message.emit("warning", "Nothing to save",
                              "There is no result on screen yet.")
            return
        result, target = shown.image, Path(path)
        options = write_options(OUTPUT_CHOICES[format_key], quality, image.loaded.bit_depth,
                                target)

        def write() -> Path:
            from dtpm_core.imageio import write_image

            return write_image(target, result, like=image.loaded, **options)

        self._call(write, lambda saved: self._on_saved(saved, shown),
                   lambda err: self.message.emit("error", err.title, err.message))

    def add_models(self, paths: list[str | Path]) -> None:
        """Verify and install model files, then reload the catalog."""
        base_sha = self._base.sha256 if self._base is not None else None
        self._call(lambda: install_models(list(paths), base_sha), self._on_installed,
                   lambda err: self.message.emit("error", err.title, err.message))

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def idle(self) -> bool:
        """No job running and no file being read or written."""
        return self._inflight is None and self._pending_calls == 0

    def shutdown(self) -> None:
        """Cancel everything and stop the threads (the window is closing)."""
        if self._closed:
            return
        self._closed = True
        if self._inflight is not None:
            self._inflight.cancel.set()
        self._thread.quit()
        self._thread.wait()
        self.calls.wait_all()

    # ------------------------------------------------------------------ state changes

    def _call(self, fn, on_done, on_failed) -> None:
        self._pending_calls += 1

        def finish(callback):
            def run(value) -> None:
                self._pending_calls -= 1
                if not self._closed:
                    callback(value)
                    self._pump()
            return run

        self.calls.call(fn, finish(on_done), finish(on_failed))
        self._update_busy()

    def _set_image(self, path: Path, loaded: LoadedImage,
                   reference: str | Path | None = None) -> None:
        self.image = ImageState(next(self._ids), path, loaded)
        self.settings.add_recent(path)
        cheap = self._cheap_k()
        if cheap is not None:  # never an expensive K kept from the last photo on a large one
            self.k, (title, text) = cheap[0], cheap[1:]
            self.stepsReset.emit(self.k)
            self.message.emit("notice", title, text)
        self._user_stopped = False
        self._failed_keys.clear()
        self.reference, self.reference_path = None, None
        self.imageChanged.emit(self.image)
        self.referenceChanged.emit(None)
        self._changed()
        match = reference or match_reference(path, self.settings.reference_dir)
        if match is not None:
            self.set_reference(match)

    def _set_reference(self, path: Path, loaded: LoadedImage) -> None:
        if self.image is None:
            self.message.emit("warning", "No image open",
                              "Open the degraded image first, then set its reference.")
            return
        if loaded.rgb.shape != self.image.loaded.rgb.shape:
            h, w = loaded.rgb.shape[:2]
            ih, iw = self.image.loaded.rgb.shape[:2]
            self.message.emit("error", "Reference size differs",
                              f"The reference {path.name} is {w}x{h} pixels but the image is "
                              f"{iw}x{ih}; a reference must be the same photo, undegraded.")
            return
        self._apply_reference(path, loaded.rgb)

    def _apply_reference(self, path: Path | None, rgb: np.ndarray | None) -> None:
        self.reference, self.reference_path = rgb, path
        self._ref_id += 1
        self.referenceChanged.emit(path)
        self._changed()

    def _on_saved(self, path: object, shown: ShownResult) -> None:
        self.message.emit("info", "Saved", f"{shown.label} to {path}")
        self.saved.emit(path)

    def _on_installed(self, report: object) -> None:
        assert isinstance(report, InstallReport)
        for source, reason in report.failed:
            self.message.emit("error", f"Could not add {Path(source).name}", reason)
        if report.installed:
            names = ", ".join(m.display_name for m in report.installed)
            self.message.emit("info", "Models added", f"Added {names} to {user_models_dir()}")
            added = [m.task for m in report.installed if m.kind == "adapter"]
            if added and (self.task is None or self.task not in self.catalog.adapters):
                self.task = added[0]
        self.reload_catalog()

    def _changed(self) -> None:
        """Settings changed: drop the running job if it became useless, show what we have."""
        job = self._inflight
        if job is not None and job.cancellable and not self._wanted(job):
            job.cancel.set()
        self._emit_display()
        self._emit_curve()
        self._pump()

    # ------------------------------------------------------------------ running jobs

    def _pump(self) -> None:
        if self._closed or self._inflight is not None:
            self._update_busy()
            return
        request = self._next_request()
        if request is None:
            self.progressChanged.emit(None)
            self._update_busy()
            if self._pending_calls == 0:
                self.settled.emit()
            return
        job = Job(next(self._runs), request)
        self._inflight, self._started_at = job, time.monotonic()
        self._eta_base = None
        if isinstance(request, LoadBase):
            self._emit_models("loading")
            self.progressChanged.emit(Progress("Loading model"))
        elif isinstance(request, SwitchAdapter):
            self.progressChanged.emit(Progress("Loading model"))
        elif isinstance(request, LoadFast):
            self._emit_models()
            self.progressChanged.emit(Progress("Loading the single-pass model"))
        elif isinstance(request, RestoreImage):
            self.progressChanged.emit(Progress(self._restoring(request)))
            self._emit_display()
        elif isinstance(request, RestoreFast):
            self.progressChanged.emit(Progress(self._restoring(request)))
            self._emit_display()
        else:
            self.progressChanged.emit(self._curve_progress(request))
            self._emit_curve()
        self._update_busy()
        self._submit.emit(job)

    def _restoring(self, request: RestoreImage | RestoreFast) -> str:
        """What a restoration is, for the status bar: the other engine's split-view side is
        named as such (window.BACKGROUND_WORDS), after what is shown."""
        if isinstance(request, RestoreFast):
            return "Restoring (Fast)" if self.active_engine == FAST else "Fast side"
        return f"Restoring K={request.k}" if self.active_engine == DTPM else \
            f"DTPM side K={request.k}"

    def _update_busy(self) -> None:
        busy = (self._inflight is not None and not self._inflight.cancel.is_set()) or \
            self._pending_calls > 0
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    # ------------------------------------------------------------------ worker results

    def _current(self, run_id: int) -> Job | None:
        job = self._inflight
        return job if job is not None and job.run_id == run_id else None

    @Slot(int, int, int, str)
    def _on_progress(self, run_id: int, done: int, total: int, stage: str) -> None:
        job = self._current(run_id)
        if job is None or job.cancel.is_set() or \
                not isinstance(job.request, RestoreImage | RestoreFast):
            return
        now = time.monotonic()
        eta = (now - self._started_at) * (total - done) / done if done > 0 else None
        if isinstance(job.request, RestoreImage):
            # The initial prediction's passes are cheaper than the denoising ones: the time
            # left is measured on denoising passes only (none is known during the first).
            if not stage.startswith("K="):
                self._eta_base, eta = (done, now), None
            elif self._eta_base is not None and done > self._eta_base[0]:
                base_done, base_time = self._eta_base
                eta = (now - base_time) / (done - base_done) * (total - done)
        if isinstance(job.request, RestoreFast):  # stage: "single pass, t=50"
            # one network pass per tile (8 with the ensemble): say which tile, not "pass 1/2"
            per_tile = 8 if job.request.ensemble else 1
            stage = stage.replace("single pass", "one network pass per tile" if per_tile == 1
                                  else "8 passes per tile")
            what = self._restoring(job.request)
            stage = f"{stage}, tile {(done - 1) // per_tile + 1}/{max(1, total // per_tile)}"
        else:
            what = self._restoring(job.request)
            stage = stage.split(": ", 1)[-1]  # "K=4: step 2/4" -> "step 2/4"
        self.progressChanged.emit(Progress(what, done, total, stage, eta))

    @Slot(int, object)
    def _on_done(self, run_id: int, outcome: object) -> None:
        job = self._current(run_id)
        if job is None:
            return
        self._inflight = None
        if isinstance(outcome, BaseLoaded):
            assert isinstance(job.request, LoadBase)
            self._base, self._adapter, self._model_error = outcome, None, ""
            self._base_for = (job.request.path, job.request.device)
        elif isinstance(outcome, AdapterLoaded):
            self._adapter, self._model_error = outcome, ""
            self._emit_models()
            self._emit_display()
            self._emit_curve()
        elif isinstance(outcome, Restored):
            self._results.put(outcome.key, outcome.result)
            self._initials.put(outcome.key[:2] + (outcome.key[3],), outcome.initial)
            self._seconds[outcome.key] = outcome.seconds
            assert self._base is not None
            h, w = job.request.image.shape[:2]
            self._pass_rate[self._base.device] = outcome.seconds / (h * w / 1e6) / (outcome.k + 1)
            for note in outcome.notes:
                self.message.emit("warning", "Restoration adjusted", note)
            self._emit_display()
            if self.active_engine == DTPM and outcome.key == self._display_key():
                # (else a side of the split view, or a K the person has moved on from)
                self.message.emit("info", "Restored", self.shown_text())
        elif isinstance(outcome, CurvePoint):
            side = job.request.side if isinstance(job.request, CurvePointJob) else 0
            self._curves.setdefault((*outcome.key, side), {})[outcome.k] = outcome
            self._emit_curve()
        elif isinstance(outcome, FastLoaded):
            assert isinstance(job.request, LoadFast)
            self.fast.on_loaded(outcome, job.request)
            task = self.task
            self._pick_task()
            self._emit_models()
            if self.task != task:  # the task chosen last is one of the network's
                self._changed()
            else:
                self._emit_display()
            self._warn_unavailable()
        elif isinstance(outcome, FastRestored):
            self.fast.results.put(outcome.key, outcome.result)
            self._seconds[outcome.key] = outcome.seconds
            for note in outcome.notes:
                self.message.emit("warning", "Restoration adjusted", note)
            self._emit_display()
            if self.active_engine == FAST and outcome.key == self._fast_key():
                self.message.emit("info", "Restored", self.shown_text())
        elif isinstance(outcome, FastPoint):
            self.fast.points[(*outcome.key, outcome.side)] = outcome
            self._emit_curve()
        self._pump()

    @Slot(int, object)
    def _on_failed(self, run_id: int, error: ErrorInfo) -> None:
        job = self._current(run_id)
        if job is None:
            return
        self._inflight = None
        request = job.request
        if isinstance(request, LoadBase):
            self._base_failed, self._base, self._adapter = (request.path, request.device), None, None
            self._model_error = error.message
            self._emit_models("error")
        elif isinstance(request, SwitchAdapter):
            self._adapter_failed, self._model_error = request.path, error.message
            self._emit_models("error")
        elif isinstance(request, LoadFast):
            self.fast.on_failed(request, error.message)
            self._emit_models()
            self._emit_display()
        elif isinstance(request, RestoreImage | CurvePointJob | RestoreFast | FastPointJob):
            self._failed_keys.add(request.key)
            self._emit_display()
            self._emit_curve(error.message if isinstance(request, CurvePointJob | FastPointJob)
                             else "")
        self.message.emit("error", error.title, error.message)
        self._pump()

    @Slot(int)
    def _on_cancelled(self, run_id: int) -> None:
        self.jobCancelled.emit(run_id)
        if self._current(run_id) is None:
            return
        self._inflight = None
        self._emit_display()
        self._emit_curve()
        self._pump()
