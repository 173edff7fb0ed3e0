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
from .texture_strength import strength_tag, strength_text

ENSEMBLE_LABEL = f"{ENGINE_LABELS[SINGLE_PASS]}, 8-way ensemble"


class ControllerViews:
    """State objects for the window (see the module docstring)."""

    def __init__(self, session: Session, planner: JobPlanner) -> None:
        self.s, self.planner = session, planner
        self._warned: tuple[str, str] | None = None  # (engine, task) said unavailable
        self._last_dtpm: ResultKey | None = None  # the DTPM result shown last
        self._backbone = ""  # the perceptual distance the worker measures, once known

    def models(self, state: str | None = None) -> ModelsState:
        from dtpm_core.modelfiles.catalog import user_models_dir

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
            task_scores=dict(s.task_scores), single_pass_scores=dict(s.single_pass_scores))

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
        texture strength; after a new seed, the result shown before (another seed) until the
        new one's arrives; each labelled as what it is. Else (None, None). A result of
        another texture strength or tile is never shown for the current one."""
        key, results = self.planner.result_key(DTPM), self.s.dtpm.results
        if key is None:
            return None, None
        if results.get(key) is not None:
            self._last_dtpm = key
            return key, self.s.k
        cached = results.keys()
        near = [c for c in cached if replace(c, steps=key.steps) == key]
        if not near:  # a new seed: what was on screen stays there while it is computed
            last = self._last_dtpm
            if last is None or last not in cached or \
                    replace(last, steps=key.steps, seed=key.seed) != key:
                return None, None
            near = [last]
        best = min(near, key=lambda c: (abs(c.steps - self.s.k), c.steps))
        self._last_dtpm = best
        return best, best.steps

    def _unlike(self, shown: ResultKey) -> str:
        """How the settings differ from the DTPM result `shown` ("K=9", "seed 7", ...)."""
        parts = [f"K={self.s.k}"] if shown.steps != self.s.k else []
        if shown.seed != self.s.seed:
            parts.append(f"seed {self.s.seed}")
        return ", ".join(parts) or f"K={self.s.k}"

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
        seed = f", seed {key.seed}" if key.seed != self.s.seed else ""
        return ShownResult(result, f"dtpm-K{k}{strength_tag(key.strength)}",
                           f"DTPM, K={k}{strength_text(key.strength)}{seed}", key)

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
        wanted = self.planner.result_key(DTPM)
        if self.planner.active_engine == DTPM and shown.key != wanted:
            what = self._unlike(shown.key)
            text += (f"; {what} cancelled: press Restore (F5) to compute it"
                     if s.user_stopped else f"; {what} not restored yet")
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
            pending = shown_key != key and key not in s.failed and not s.user_stopped
        other_seed = shown_key.seed if shown_key is not None and shown_key.seed != s.seed \
            else None
        single_key = planner.result_key(SINGLE_PASS)
        single = s.single_pass.results.get(single_key) if single_key is not None else None
        single_problem = planner.problem(SINGLE_PASS, short=True)
        single_pending = (single is None and not single_problem and not s.user_stopped
                          and single_key not in s.failed)
        return Display(
            s.image.loaded.rgb, initial, result, s.reference, result_k, s.k,
            pending and planner.shows(DTPM), planner.active_engine, single,
            single_pending and planner.shows(SINGLE_PASS), single_problem, dtpm_problem,
            s.strength, result_seed=other_seed, wanted_seed=s.seed)

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
        against = "reference" if s.reference is not None else "initial prediction"
        single_key = planner.curve_key(SINGLE_PASS)
        single = s.single_pass.curve(single_key, side).get(None)
        # one metric for the session (the worker's): its name stays when a new curve starts,
        # so the single-pass number is never relabelled
        measured = [*points.values(), *([single] if single is not None else [])]
        self._backbone = next((p.backbone for p in measured if p.backbone), self._backbone)
        backbone = self._backbone
        single_computing = single is None and running is not None and running.key == single_key
        return CurveState(
            {k: p.psnr for k, p in points.items()}, {k: p.lpips for k, p in points.items()},
            against, backbone, computing, error, planner.active_engine,
            single.psnr if single is not None else None,
            single.lpips if single is not None else None, single_computing,
            planner.dtpm_problem(), preview_side=side)
