"""The app's scheduler: it owns the `Session` (image, reference, engine, models, K, seed,
each engine's state and caches), changes it on the window's requests, runs one job at a time
on the `InferenceWorker` and tells the window what to show through signals.

No widgets and no model maths here. What to compute next, and whether a running job is still
wanted, is its `JobPlanner`'s answer (dtpm_app.job_planner); what the window is told, its
`ControllerViews`' (dtpm_app.controller_views). A request that makes the running job useless
(another K, seed, image, task, engine, ensemble, texture strength) sets that job's cancel flag;
results are cached under exact keys (dtpm_app.jobs.ResultKey), so a late result can never be
shown for the wrong settings, and signals from runs the controller no longer waits for are
dropped.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from dtpm_core.errors import WeightsError
from dtpm_core.files.imageio import LoadedImage, read_image
from dtpm_core.modelfiles.catalog import Catalog, load_catalog, user_models_dir
from dtpm_core.options import DTPM, ENGINE_LABELS, ENGINES, SINGLE_PASS

from .batch_runner import match_reference
from .controller_views import ControllerViews
from .formats import OUTPUT_CHOICES, write_options
from .job_planner import JobPlanner
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
from .model_store import InstallReport, install_models, scores_of_fitting_adapters
from .saving import ShownResult
from .session import Session
from .settings import AppSettings
from .single_pass_scores import single_pass_scores
from .state import ImageState, Progress
from .task_values import apply_to, forget, in_use, remember
from .texture_strength import checked_strength
from .workers import ErrorInfo, InferenceWorker, ThreadPool


class Controller(QObject):
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
    # TaskValues: K and strength moved here (task chosen, "Use recommended", a large new
    # photo) or set by the person (then only where they come from changes)
    taskValuesChanged = Signal(object)
    _submit = Signal(object)  # Job, to the worker thread

    def __init__(self, settings: AppSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.session = Session.from_settings(settings)
        self.planner = JobPlanner(self.session)
        self.views = ControllerViews(self.session, self.planner)
        self._ids = itertools.count(1)
        self._runs = itertools.count(1)
        self._inflight: Job | None = None
        self._started_at = 0.0
        self._eta_base: tuple[int, float] | None = None  # (passes, time) after the cheap ones
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
        s = self.session
        try:
            s.catalog = load_catalog()
        except WeightsError as exc:
            s.catalog = Catalog(None, {})
            self.message.emit("error", "Model manifest damaged", str(exc))
        s.dtpm.set_installed(s.catalog.base)
        s.single_pass.set_installed(s.catalog.singlepass)
        s.task_scores = scores_of_fitting_adapters(s.catalog.base, s.catalog.adapters)
        s.single_pass_scores = single_pass_scores(s.catalog.singlepass, s.catalog.adapters)
        s.task = self.planner.pick_task()
        self.taskValuesChanged.emit(apply_to(s, self.settings))
        self._emit_models()
        self._changed()

    @property
    def models_ready(self) -> bool:
        """DTPM's base and the current task's adapter are loaded."""
        return self.planner.models_ready

    @property
    def has_models(self) -> bool:
        """Some engine can restore something."""
        return self.planner.has_models

    @property
    def single_pass_ready(self) -> bool:
        """The single-pass network is loaded for the current device."""
        return self.session.single_pass.ready

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

    def _choose(self, name: str, value: object) -> bool:
        """Set one of the person's choices; a change resumes after a cancel. True if it
        changed."""
        if getattr(self.session, name) == value:
            return False
        setattr(self.session, name, value)
        self.session.user_stopped = False
        self._changed()
        return True

    def _remember(self, **values: float) -> None:
        """The person's K or strength: kept for the current task (dtpm_app.task_values)."""
        remember(self.settings, self.session.catalog, self.session.task, **values)
        self.taskValuesChanged.emit(in_use(self.session, self.settings))

    def set_steps(self, k: int) -> None:
        if self._choose("k", int(k)):
            self._remember(steps=int(k))

    def set_seed(self, seed: int) -> None:
        self._choose("seed", int(seed))

    def set_strength(self, strength: float) -> None:
        """DTPM texture strength (in steps of 0.1); each has its own cached results."""
        if self._choose("strength", checked_strength(strength)):
            self._remember(strength=self.session.strength)

    def use_recommended(self) -> None:
        """Forget the person's K and strength for the current task: back to the values
        measured for its adapter (or the defaults where none were)."""
        forget(self.settings, self.session.task)
        self.taskValuesChanged.emit(apply_to(self.session, self.settings))
        self.session.user_stopped = False
        self._changed()

    def set_ensemble(self, ensemble: bool) -> None:
        """Single-pass engine: one pass per tile, or the 8-way flip/rotate ensemble (8x the
        passes); each has its own cached result."""
        self._choose("ensemble", bool(ensemble))

    def set_sides(self, left: str, right: str) -> None:
        """What the split view shows: a result it shows is computed even for the engine
        not in use (e.g. the single-pass result beside the DTPM one)."""
        self._choose("sides", (left, right))

    def set_tile(self, tile: int) -> None:
        if tile != self.session.tile:
            self.session.tile = int(tile)
            self._changed()

    def set_device(self, device: str) -> None:
        s = self.session
        if device != s.device:
            for engine in ENGINES:
                state = s.engine_state(engine)
                state.device = device
                state.retry()
            s.user_stopped = False
            self._emit_models()
            self._changed()

    def set_task(self, task: str) -> None:
        s = self.session
        if task != s.task and task in self.planner.tasks():
            s.task = s.preferred_task = task
            s.dtpm.adapter_failed = None
            s.user_stopped = False
            self.taskValuesChanged.emit(apply_to(s, self.settings))
            self._emit_models()
            self._changed()
            self._warn_unavailable()

    def set_engine(self, engine: str) -> None:
        """Restore with DTPM (K steps, seed) or the single-pass network."""
        if engine in ENGINES and engine != self.session.engine:
            self.session.engine = engine
            self.session.user_stopped = False
            self.views.forget_warning()
            self._emit_models()
            self._changed()
            self._warn_unavailable()

    def restore_now(self) -> None:
        """Resume after a cancel, and retry what failed."""
        s = self.session
        s.user_stopped = False
        s.failed.clear()
        s.dtpm.retry()
        s.single_pass.retry()
        self._emit_models()
        self._changed()

    def set_batch_running(self, running: bool) -> None:
        """A batch started or ended: while it runs only the result on screen is computed
        here (curve points and the other engine wait), so both get the processor alike."""
        if running != self.session.batch_running:
            self.session.batch_running = bool(running)
            self._changed()

    def cancel(self) -> None:
        """Stop the running job and the queued ones until the next request."""
        self.session.user_stopped = True
        job = self._inflight
        if job is not None and job.cancellable:
            job.cancel.set()
        self._update_busy()
        self._emit_display()
        self.message.emit("info", "Cancelled", self.shown_text())

    def current_result(self) -> np.ndarray | None:
        """The restored image of the engine in use for the current settings (DTPM: exactly
        the current K), if ready."""
        engine = self.planner.active_engine
        key = self.planner.result_key(engine)
        return self.session.engine_state(engine).results.get(key) if key is not None else None

    def shown_result(self) -> ShownResult | None:
        return self.views.shown_result()

    def shown_text(self) -> str:
        return self.views.shown_text()

    def result_tag(self) -> str:
        """A file name part for the result on screen: "dtpm-K4", "single-pass" or
        "single-pass-ensemble" (empty while there is none)."""
        shown = self.shown_result()
        return shown.tag if shown is not None else ""

    def save_result(self, path: str | Path, format_key: str, quality: int,
                    shown: ShownResult | None = None) -> None:
        """Write `shown` (default: the result on screen) to `path`; the caller has made sure
        that no file is replaced without consent, and write_image refuses to write over the
        photo it came from."""
        shown, image = shown or self.shown_result(), self.session.image
        if shown is None or image is None:
            self.message.emit("warning", "Nothing to save",
                              "There is no result on screen yet.")
            return
        result, target = shown.image, Path(path)
        options = write_options(OUTPUT_CHOICES[format_key], quality, image.loaded.bit_depth,
                                target)

        def write() -> Path:
            from dtpm_core.files.imageio import write_image

            return write_image(target, result, like=image.loaded, **options)

        self._call(write, lambda saved: self._on_saved(saved, shown),
                   lambda err: self.message.emit("error", err.title, err.message))

    def add_models(self, paths: list[str | Path]) -> None:
        """Verify and install model files, then reload the catalog."""
        loaded = self.session.dtpm.loaded
        base = loaded.base_identities if loaded is not None else frozenset()
        self._call(lambda: install_models(list(paths), base), self._on_installed,
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
        s = self.session
        s.image = ImageState(next(self._ids), path, loaded)
        self.settings.add_recent(path)
        cheap = self.planner.cheap_k()
        if cheap is not None:  # never an expensive K kept from the last photo on a large one
            s.k = cheap[0]  # for this photo: the task's values stay as they were
            self.taskValuesChanged.emit(in_use(s, self.settings))
        s.user_stopped = False
        s.failed.clear()
        s.reference, s.reference_path = None, None
        self.imageChanged.emit(s.image)  # (the window drops notes about the last photo)
        if cheap is not None:
            self.message.emit("notice", *cheap[1:])
        self.referenceChanged.emit(None)
        self._changed()
        match = reference or match_reference(path, self.settings.reference_dir)
        if match is not None:
            self.set_reference(match)

    def _set_reference(self, path: Path, loaded: LoadedImage) -> None:
        image = self.session.image
        if image is None:
            self.message.emit("warning", "No image open",
                              "Open the degraded image first, then set its reference.")
            return
        if loaded.rgb.shape != image.loaded.rgb.shape:
            h, w = loaded.rgb.shape[:2]
            ih, iw = image.loaded.rgb.shape[:2]
            self.message.emit("error", "Reference size differs",
                              f"The reference {path.name} is {w}x{h} pixels but the image is "
                              f"{iw}x{ih}; a reference must be the same photo, undegraded.")
            return
        self._apply_reference(path, loaded.rgb)

    def _apply_reference(self, path: Path | None, rgb: np.ndarray | None) -> None:
        s = self.session
        s.reference, s.reference_path = rgb, path
        s.reference_id += 1
        self.referenceChanged.emit(path)
        self._changed()

    def _on_saved(self, path: object, shown: ShownResult) -> None:
        self.message.emit("info", "Saved", f"{shown.label} to {path}")
        self.saved.emit(path)

    def _on_installed(self, report: object) -> None:
        assert isinstance(report, InstallReport)
        s = self.session
        for source, reason in report.failed:
            self.message.emit("error", f"Could not add {Path(source).name}", reason)
        if report.installed:
            names = ", ".join(m.display_name for m in report.installed)
            self.message.emit("info", "Models added", f"Added {names} to {user_models_dir()}")
            added = [m.task for m in report.installed if m.kind == "adapter"]
            if added and (s.task is None or s.task not in s.catalog.adapters):
                s.task = added[0]
        self.reload_catalog()

    def _changed(self) -> None:
        """Settings changed: drop the running job if it became useless, show what we have."""
        job = self._inflight
        if job is not None and job.cancellable and not self.planner.wanted(job):
            job.cancel.set()
        self._emit_display()
        self._emit_curve()
        self._pump()

    def _emit_models(self, state: str | None = None) -> None:
        self.modelsChanged.emit(self.views.models(state))

    def _emit_display(self) -> None:
        self.displayChanged.emit(self.views.display())

    def _emit_curve(self, error: str = "") -> None:
        self.curveChanged.emit(self.views.curve(self._inflight, error))

    def _warn_unavailable(self) -> None:
        warning = self.views.unavailable_warning()
        if warning is not None:
            self.message.emit("warning", *warning)

    # ------------------------------------------------------------------ running jobs

    def _pump(self) -> None:
        if self._closed or self._inflight is not None:
            self._update_busy()
            return
        request = self.planner.next_request()
        if request is None:
            self.progressChanged.emit(None)
            self._update_busy()
            if self._pending_calls == 0:
                self.settled.emit()
            return
        job = Job(next(self._runs), request)
        self._inflight, self._started_at = job, time.monotonic()
        self._eta_base = None
        if isinstance(request, LoadEngine) and request.spec.engine == DTPM:
            self._emit_models("loading")
            self.progressChanged.emit(Progress("Loading model"))
        elif isinstance(request, SwitchAdapter):
            self.progressChanged.emit(Progress("Loading model"))
        elif isinstance(request, LoadEngine):
            self._emit_models()
            self.progressChanged.emit(Progress("Loading the single-pass model"))
        elif isinstance(request, Restore):
            self.progressChanged.emit(Progress(self._restoring(request)))
            self._emit_display()
        else:
            self.progressChanged.emit(self.planner.curve_progress(request))
            self._emit_curve()
        self._update_busy()
        self._submit.emit(job)

    def _restoring(self, request: Restore) -> str:
        """What a restoration is, for the status bar: the other engine's split-view side is
        named as such (status_line.BACKGROUND_WORDS), after what is shown."""
        active = self.planner.active_engine == request.engine
        if request.engine == SINGLE_PASS:
            label = ENGINE_LABELS[SINGLE_PASS]
            return f"Restoring ({label})" if active else f"{label} side"
        k = request.key.steps
        return f"Restoring K={k}" if active else f"DTPM side K={k}"

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
        if job is None or job.cancel.is_set() or not isinstance(job.request, Restore):
            return
        request, now = job.request, time.monotonic()
        eta = (now - self._started_at) * (total - done) / done if done > 0 else None
        if request.engine == DTPM:
            # The initial prediction's passes are cheaper than the denoising ones: the time
            # left is measured on denoising passes only (none is known during the first).
            if not stage.startswith("K="):
                self._eta_base, eta = (done, now), None
            elif self._eta_base is not None and done > self._eta_base[0]:
                base_done, base_time = self._eta_base
                eta = (now - base_time) / (done - base_done) * (total - done)
            stage = stage.split(": ", 1)[-1]  # "K=4: step 2/4" -> "step 2/4"
        else:  # stage: "single pass, t=50"
            # one network pass per tile (8 with the ensemble): say which tile, not "pass 1/2"
            per_tile = 8 if request.key.ensemble else 1
            stage = stage.replace("single pass", "one network pass per tile" if per_tile == 1
                                  else "8 passes per tile")
            stage = f"{stage}, tile {(done - 1) // per_tile + 1}/{max(1, total // per_tile)}"
        self.progressChanged.emit(Progress(self._restoring(request), done, total, stage, eta))

    @Slot(int, object)
    def _on_done(self, run_id: int, outcome: object) -> None:
        job = self._current(run_id)
        if job is None:
            return
        self._inflight = None
        s = self.session
        if isinstance(outcome, EngineLoaded):
            s.engine_state(outcome.spec.engine).on_loaded(outcome)
            if outcome.spec.engine == SINGLE_PASS:
                self._on_single_pass_loaded()
        elif isinstance(outcome, AdapterLoaded):
            s.dtpm.adapter, s.dtpm.error = outcome, ""
            self._emit_models()
            self._emit_display()
            self._emit_curve()
        elif isinstance(outcome, Restored):
            self._on_restored(job, outcome)
        elif isinstance(outcome, CurvePoint):
            s.engine_state(outcome.key.engine).add_point(outcome)
            self._emit_curve()
        self._pump()

    def _on_single_pass_loaded(self) -> None:
        task = self.session.task
        self.session.task = self.planner.pick_task()
        if self.session.task != task:
            self.taskValuesChanged.emit(apply_to(self.session, self.settings))
        self._emit_models()
        if self.session.task != task:  # the task chosen last is one of the network's
            self._changed()
        else:
            self._emit_display()
        self._warn_unavailable()

    def _on_restored(self, job: Job, outcome: Restored) -> None:
        s, key, result = self.session, outcome.key, outcome.result
        state = s.engine_state(key.engine)
        state.results.put(key, result.image)
        state.seconds[key] = result.seconds
        if key.engine == DTPM:
            assert result.initial is not None and s.dtpm.loaded is not None
            s.dtpm.initials.put(key.initial(), result.initial)
            h, w = result.image.shape[:2]
            s.dtpm.pass_rate[s.dtpm.loaded.device] = \
                result.seconds / (h * w / 1e6) / (key.steps + 1)
        for note in result.notes:
            self.message.emit("warning", "Restoration adjusted", note)
        self._emit_display()
        if self.planner.active_engine == key.engine and key == self.planner.result_key(key.engine):
            # (else a side of the split view, or a K the person has moved on from)
            self.message.emit("info", "Restored", self.shown_text())

    @Slot(int, object)
    def _on_failed(self, run_id: int, error: ErrorInfo) -> None:
        job = self._current(run_id)
        if job is None:
            return
        self._inflight = None
        request, s = job.request, self.session
        if isinstance(request, LoadEngine):
            s.engine_state(request.spec.engine).on_failed(request.spec, error.message)
            if request.spec.engine == DTPM:
                self._emit_models("error")
            else:
                self._emit_models()
                self._emit_display()
        elif isinstance(request, SwitchAdapter):
            assert request.spec.adapter is not None
            s.dtpm.on_adapter_failed(request.spec.adapter, error.message)
            self._emit_models("error")
        elif isinstance(request, Restore | CurvePointJob):
            s.failed.add(request.key)
            self._emit_display()
            self._emit_curve(error.message if isinstance(request, CurvePointJob) else "")
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
