"""What the controller tells the window: models, the split view's images, the curve, and what
the result on screen is (to label it, save it and describe it in the status bar).

`ControllerViews` reads the controller's `Session` (through its `JobPlanner` for what is
derived) and builds the plain state objects the controller's signals carry; it decides
nothing and emits nothing.
"""

from __future__ import annotations

from dataclasses import replace

from dtpm_core.options import DTPM, ENGINE_LABELS, SINGLE_PASS

from .job_planner import COARSE_SIDE, PREVIEW_SIDE, JobPlanner
from .jobs import CurvePointJob, Job, ResultKey
from .saving import ShownResult
from .session import Session
from .state import CurveState, Display, ModelsState
from .texture_strength import strength_text

ENSEMBLE_LABEL = f"{ENGINE_LABELS[SINGLE_PASS]}, 8-way ensemble"


class ControllerViews:
    """State objects for the window (see the module docstring)."""

    def __init__(self, session: Session, planner: JobPlanner) -> None:
        self.s, self.planner = session, planner
        self._warned: tuple[str, str] | None = None  # (engine, task) said unavailable

    def models(self, state: str | None = None) -> ModelsState:
        from dtpm_core.catalog import user_models_dir

        s, planner = self.s, self.planner
        dtpm, single_pass = s.dtpm, s.single_pass
        tasks = single_pass.tasks()
        if state is None:
            if not planner.has_models:
                state = "none"
            elif planner.active_engine == SINGLE_PASS:
                state = "error" if single_pass.error else \
                    "ready" if tasks is not None else "loading"
            elif dtpm.error:
                state = "error"
            else:
                state = "ready" if planner.models_ready else "loading"
        loaded = dtpm.loaded or single_pass.loaded
        adapter = dtpm.adapter
        return ModelsState(
            state, tuple(planner.tasks().values()), s.task, s.catalog.base is not None,
            user_models_dir(), loaded.device if loaded is not None else "", dtpm.error,
            planner.active_engine, single_pass.installed is not None,
            tuple(sorted(tasks)) if tasks is not None else None,
            planner.problem(SINGLE_PASS),
            tuple(s.catalog.adapters) if planner.has_dtpm else (), planner.dtpm_problem(),
            scores=adapter.scores if adapter and adapter.task == s.task else None,
            task_scores=dict(s.task_scores))

    def forget_warning(self) -> None:
        self._warned = None

    def unavailable_warning(self) -> tuple[str, str] | None:
        """(title, text) the first time (per task and engine choice) that the engine in use
        cannot restore the current task; the other engine stays selectable."""
        engine = self.planner.active_engine
        if engine == SINGLE_PASS and self.s.single_pass.loaded is None:
            return None  # its tasks are not known yet
        problem = self.planner.problem(engine)
        if not problem or self.s.task is None or (engine, self.s.task) == self._warned:
            return None
        self._warned = (engine, self.s.task)
        other = ENGINE_LABELS[DTPM if engine == SINGLE_PASS else SINGLE_PASS]
        return (f"{ENGINE_LABELS[engine]}: task not available",
                f"{problem[0].upper()}{problem[1:]}. Pick another task, or switch the engine "
                f"to {other}.")

    def _dtpm_shown(self) -> tuple[ResultKey | None, int | None]:
        """The cache key and K of the DTPM result the view shows: the current K once it is
        restored, else the nearest K restored so far for the same image, task, seed, tile and
        texture strength (labelled as such), else (None, None)."""
        key, results = self.planner.result_key(DTPM), self.s.dtpm.results
        if key is None:
            return None, None
        if results.get(key) is not None:
            return key, self.s.k
        near = [c for c in results.keys() if replace(c, steps=key.steps) == key]
        if not near:
            return None, None
        best = min(near, key=lambda c: (abs(c.steps - self.s.k), c.steps))
        return best, best.steps

    def shown_result(self) -> ShownResult | None:
        """The result on screen for the engine in use (what Save and Copy take): for DTPM the
        K shown, which is the nearest one restored while the current K is not."""
        if self.s.image is None:
            return None
        if self.planner.active_engine == SINGLE_PASS:
            key = self.planner.result_key(SINGLE_PASS)
            result = self.s.single_pass.results.get(key) if key is not None else None
            if key is None or result is None:
                return None
            if key.ensemble:
                return ShownResult(result, f"{SINGLE_PASS}-ensemble", ENSEMBLE_LABEL, key)
            return ShownResult(result, SINGLE_PASS, ENGINE_LABELS[SINGLE_PASS], key)
        key, k = self._dtpm_shown()
        result = self.s.dtpm.results.get(key) if key is not None else None
        if key is None or result is None:
            return None
        return ShownResult(result, f"dtpm-K{k}", f"DTPM, K={k}{strength_text(key.strength)}",
                           key)

    def shown_text(self) -> str:
        """One line for the status bar: what the result side shows now, and why it is not
        what was asked for when it is not."""
        s, shown = self.s, self.shown_result()
        if s.image is None:
            return "Ready"
        if shown is None:
            if s.user_stopped:
                return "Cancelled: no result yet. Press Restore (F5) to restore."
            return "No result yet"
        seconds = s.engine_state(shown.key.engine).seconds.get(shown.key)
        took = f" (restored in {seconds:.1f} s)" if seconds is not None else ""
        text = f"Showing {shown.label}{took}"
        if self.planner.active_engine == DTPM and shown.tag != f"dtpm-K{s.k}":
            text += (f"; K={s.k} cancelled: press Restore (F5) to compute it"
                     if s.user_stopped else f"; K={s.k} not restored yet")
        return text

    def display(self) -> Display:
        s, planner = self.s, self.planner
        if s.image is None:
            return Display(wanted_k=s.k)
        key = planner.result_key(DTPM)
        shown_key, result_k = self._dtpm_shown()
        result = s.dtpm.results.get(shown_key) if shown_key is not None else None
        initial = s.dtpm.initials.get(key.initial()) if key is not None else None
        dtpm_problem = planner.dtpm_problem(short=True)
        if key is None:  # models still loading
            pending = not dtpm_problem and not s.dtpm.error and not s.user_stopped
        else:
            pending = result_k != s.k and key not in s.failed and not s.user_stopped
        single_key = planner.result_key(SINGLE_PASS)
        single = s.single_pass.results.get(single_key) if single_key is not None else None
        single_problem = planner.problem(SINGLE_PASS, short=True)
        single_pending = (single is None and not single_problem and not s.user_stopped
                          and single_key not in s.failed)
        return Display(
            s.image.loaded.rgb, initial, result, s.reference, result_k, s.k,
            pending and planner.shows(DTPM), planner.active_engine, single,
            single_pending and planner.shows(SINGLE_PASS), single_problem, dtpm_problem,
            s.strength)

    def curve(self, job: Job | None, error: str = "") -> CurveState:
        """The refined curve once complete, else the quick one from the small preview; `job`
        is the one running."""
        s, planner = self.s, self.planner
        key = planner.curve_key(DTPM)
        side = PREVIEW_SIDE if planner.curve_complete(PREVIEW_SIDE) else COARSE_SIDE
        points = s.dtpm.curve(key, side)
        running = job.request if job is not None and isinstance(job.request, CurvePointJob) \
            else None
        computing = running.steps if (running is not None and running.key == key
                                      and running.side == side) else None
        backbone = next((p.backbone for p in points.values()), "")
        against = "reference" if s.reference is not None else "initial prediction"
        single_key = planner.curve_key(SINGLE_PASS)
        single = s.single_pass.curve(single_key, side).get(None)
        single_computing = single is None and running is not None and running.key == single_key
        return CurveState(
            {k: p.psnr for k, p in points.items()}, {k: p.lpips for k, p in points.items()},
            against, backbone, computing, error, planner.active_engine,
            single.psnr if single is not None else None,
            single.lpips if single is not None else None, single_computing,
            planner.dtpm_problem(), preview_side=side)
