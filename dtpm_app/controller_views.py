"""What the controller tells the window: models, the split view's images, the curve, and what
the result on screen is (to label it, save it and describe it in the status bar).

`ControllerViews` is the reporting half of `dtpm_app.controller.Controller` (a mixin like
`JobPlanner`): it reads the controller's state and emits its signals, and decides nothing.
"""

from __future__ import annotations

from .fast_engine import DTPM, ENGINE_LABELS, FAST, FastPointJob
from .job_planner import COARSE_SIDE, CURVE_KS, PREVIEW_SIDE
from .saving import ShownResult
from .state import CurveState, Display, ModelsState
from .texture_strength import strength_text
from .workers import CurvePointJob


class ControllerViews:
    """Signals to the window (see the module docstring); mixed into `Controller`."""

    def _emit_models(self, state: str | None = None) -> None:
        from dtpm_core.catalog import user_models_dir

        fast_tasks = self.fast.tasks(self.device)
        if state is None:
            if not self.has_models:
                state = "none"
            elif self.active_engine == FAST:
                state = "error" if self.fast.error else \
                    "ready" if fast_tasks is not None else "loading"
            elif self._model_error:
                state = "error"
            else:
                state = "ready" if self.models_ready else "loading"
        device = self._base.device if self._base is not None else \
            self.fast.loaded.device if self.fast.loaded is not None else ""
        self.modelsChanged.emit(ModelsState(
            state, tuple(self.tasks().values()), self.task,
            self.catalog.base is not None, user_models_dir(), device, self._model_error,
            self.active_engine, self.fast.installed,
            tuple(sorted(fast_tasks)) if fast_tasks is not None else None,
            self.fast.unavailable(self.task, self.device),
            tuple(self.catalog.adapters) if self.has_dtpm else (), self._dtpm_problem(),
            scores=self._adapter.scores if self._adapter and self._adapter.task == self.task
            else None, task_scores=dict(self._task_scores)))

    def _warn_unavailable(self) -> None:
        """Say once (per task and engine choice) that the engine in use cannot restore the
        current task; the other engine stays selectable."""
        if self.active_engine == FAST:
            if self.fast.loaded is None:
                return  # its tasks are not known yet
            problem, other = self.fast.unavailable(self.task, self.device), "DTPM"
        else:
            problem, other = self._dtpm_problem(), "Fast"
        if not problem or self.task is None:
            return
        warned = (self.active_engine, self.task)
        if warned != self._warned:
            self._warned = warned
            self.message.emit("warning", f"{ENGINE_LABELS[self.active_engine]}: task not "
                              "available", f"{problem[0].upper()}{problem[1:]}. Pick another "
                              f"task, or switch the engine to {other}.")

    def _dtpm_shown(self) -> tuple[tuple | None, int | None]:
        """The cache key and K of the DTPM result the view shows: the current K once it is
        restored, else the nearest K restored so far for the same image, task, seed, tile and
        texture strength (labelled as such), else (None, None)."""
        key = self._display_key()
        if key is None:
            return None, None
        if self._results.get(key) is not None:
            return key, self.k
        near = [c for c in self._results.keys() if c[:-1] == key[:-1]]  # K comes last
        if not near:
            return None, None
        best = min(near, key=lambda c: (abs(c[-1] - self.k), c[-1]))
        return best, best[-1]

    def shown_result(self) -> ShownResult | None:
        """The result on screen for the engine in use (what Save and Copy take): for DTPM the
        K shown, which is the nearest one restored while the current K is not."""
        if self.image is None:
            return None
        if self.active_engine == FAST:
            key = self._fast_key()
            result = self.fast.results.get(key) if key is not None else None
            if result is None:
                return None
            ensemble = bool(key[-1])
            return ShownResult(result, "fast-ensemble" if ensemble else "fast",
                               "Fast, 8-way ensemble" if ensemble else "Fast (single-pass)",
                               key)
        key, k = self._dtpm_shown()
        result = self._results.get(key) if key is not None else None
        if result is None:
            return None
        return ShownResult(result, f"dtpm-K{k}", f"DTPM, K={k}{strength_text(key[-2])}", key)

    def shown_text(self) -> str:
        """One line for the status bar: what the result side shows now, and why it is not
        what was asked for when it is not."""
        shown = self.shown_result()
        if self.image is None:
            return "Ready"
        if shown is None:
            if self._user_stopped:
                return "Cancelled: no result yet. Press Restore (F5) to restore."
            return "No result yet"
        seconds = self._seconds.get(shown.key)
        took = f" (restored in {seconds:.1f} s)" if seconds is not None else ""
        text = f"Showing {shown.label}{took}"
        if self.active_engine == DTPM and shown.tag != f"dtpm-K{self.k}":
            text += (f"; K={self.k} cancelled: press Restore (F5) to compute it"
                     if self._user_stopped else f"; K={self.k} not restored yet")
        return text

    def _emit_display(self) -> None:
        if self.image is None:
            self.displayChanged.emit(Display(wanted_k=self.k))
            return
        key = self._display_key()
        shown_key, result_k = self._dtpm_shown()
        result = self._results.get(shown_key) if shown_key is not None else None
        initial = self._initials.get(key[:2] + (key[3],)) if key is not None else None
        dtpm_problem = self._dtpm_problem(short=True)
        if key is None:  # models still loading
            pending = not dtpm_problem and not self._model_error and not self._user_stopped
        else:
            pending = (result_k != self.k and key not in self._failed_keys
                       and not self._user_stopped)
        fast_key = self._fast_key()
        fast = self.fast.results.get(fast_key) if fast_key is not None else None
        fast_problem = self.fast.unavailable(self.task, self.device, short=True)
        fast_pending = (fast is None and not fast_problem and not self._user_stopped
                        and fast_key not in self._failed_keys)
        self.displayChanged.emit(Display(
            self.image.loaded.rgb, initial, result, self.reference, result_k, self.k,
            pending and self._shows(DTPM), self.active_engine, fast,
            fast_pending and self._shows(FAST), fast_problem, dtpm_problem, self.strength))

    def _emit_curve(self, error: str = "") -> None:
        """The refined curve once complete, else the quick one from the small preview."""
        key = self._curve_key()
        side = PREVIEW_SIDE if self._curve_complete(PREVIEW_SIDE) else COARSE_SIDE
        points = self._curves.get((*key, side), {}) if key is not None else {}
        job = self._inflight
        computing = job.request.k if (
            job is not None and isinstance(job.request, CurvePointJob)
            and job.request.key == key and job.request.side == side) else None
        backbone = next((p.backbone for p in points.values()), "")
        against = "reference" if self.reference is not None else "initial prediction"
        fast_key = self._fast_point_key()
        fast = self.fast.points.get((*fast_key, side)) if fast_key is not None else None
        fast_computing = fast is None and (
            job is not None and isinstance(job.request, FastPointJob)
            and job.request.key == fast_key)
        self.curveChanged.emit(CurveState(
            {k: p.psnr for k, p in points.items()}, {k: p.lpips for k, p in points.items()},
            against, backbone, computing, error, self.active_engine,
            fast.psnr if fast is not None else None, fast.lpips if fast is not None else None,
            fast_computing, self._dtpm_problem(), preview_side=side))

    def _curve_complete(self, side: int) -> bool:
        key = self._curve_key()
        points = self._curves.get((*key, side), {}) if key is not None else {}
        return all(k in points for k in CURVE_KS)

