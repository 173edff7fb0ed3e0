"""Which job the controller runs next: which engine can restore which task, cache keys,
priorities, and whether a running job is still wanted.

`JobPlanner` reads the controller's `Session` and never changes it or emits anything: the
engine in use comes first (DTPM: load the base, switch the adapter, restore at the current K;
single-pass: load the network, restore in one pass per tile, or eight with the ensemble), then
the other engine's model (an installed single-pass network is always loaded: the task list
shows its tasks) and what the split view shows of that engine, then the PSNR/LPIPS trade-off
curve one K at a time with the single-pass point on that plot (always one pass): first on a
small preview, so that it appears in seconds, then refined on a larger one.

The job for what the person looks at comes first: while the engine in use still lacks its
model or its result, a running job for anything else (the other engine's side of the split
view, a curve point) is cancelled and runs again later; while a batch runs, nothing but that
result is computed here, so that the two never share the processor for background work.
Every result is cached under an exact key, so nothing is computed twice and a late result is
never shown for other settings.
"""

from __future__ import annotations

from dataclasses import replace

from dtpm_core.engines.engine import DTPMSpec, EngineSpec
from dtpm_core.modelfiles.catalog import ModelEntry
from dtpm_core.options import DTPM, ENGINE_LABELS, ENGINES, SINGLE_PASS, task_display_name

from .batch_worker import BatchModels
from .jobs import (
    CurveKey,
    CurvePointJob,
    Job,
    JobRequest,
    LoadEngine,
    Restore,
    ResultKey,
    SwitchAdapter,
)
from .session import Session
from .state import PREVIEW_SIDE, Progress

CURVE_KS = (1, 2, 4, 10, 20, 50)
"""The step counts of the trade-off curve (4, 10 and 50 are the paper's reference points)."""
COARSE_SIDE = 96
"""Longest side of the quick preview the curve is first computed on (~7x fewer pixels than
PREVIEW_SIDE, on which it is then refined)."""
CURVE_SIDES = (COARSE_SIDE, PREVIEW_SIDE)
LARGE_PHOTO_PIXELS = 1_000_000
"""A new photo this large is not restored at an expensive K carried over from the last one."""
CHEAP_K = 4
"""The K a large new photo starts at when the K in use was higher (a paper reference point)."""


def best_task(scores: dict, tasks: list[str]) -> str | None:
    """The task whose model improves its held-out images most (its best evaluated K against the
    degraded input), among `tasks`; None when no model stores scores."""
    gains = {t: max(scores[t].psnr_at.values()) - scores[t].input_psnr
             for t in tasks if t in scores and scores[t].psnr_at}
    return max(sorted(gains), key=gains.__getitem__) if gains else None


class JobPlanner:
    """Keys and scheduling of the controller's jobs (see the module docstring)."""

    def __init__(self, session: Session) -> None:
        self.s = session

    # ------------------------------------------------------------------ engines and tasks

    @property
    def has_dtpm(self) -> bool:
        """A DTPM base and at least one task adapter are installed."""
        return self.s.catalog.base is not None and bool(self.s.catalog.adapters)

    @property
    def has_models(self) -> bool:
        """Some engine can restore something."""
        return self.has_dtpm or self.s.single_pass.installed is not None

    @property
    def active_engine(self) -> str:
        """The engine that restores: the one chosen while both are installed, else the one
        that is (the choice itself is kept for when both are)."""
        if self.s.single_pass.installed is None:
            return DTPM
        return SINGLE_PASS if self.s.engine == SINGLE_PASS or not self.has_dtpm else DTPM

    def tasks(self) -> dict[str, ModelEntry]:
        """Every task one of the engines restores: the DTPM adapters, then the tasks only the
        single-pass network knows (once it is loaded), under their usual names."""
        catalog, single_pass = self.s.catalog, self.s.single_pass
        tasks = dict(catalog.adapters) if catalog.base is not None else {}
        for task in sorted(single_pass.tasks() or ()):
            if task not in tasks and single_pass.installed is not None:
                tasks[task] = ModelEntry(task, task_display_name(task), single_pass.installed)
        return tasks

    def pick_task(self) -> str | None:
        """The task chosen last if it is installed (the single-pass network's tasks are known
        once it is loaded), else keep the current one, else the one whose model does best on
        its held-out images (stored in the adapter files), else the first by name."""
        tasks = self.tasks()
        if self.s.preferred_task in tasks:
            return self.s.preferred_task
        if self.s.task in tasks:
            return self.s.task
        return best_task(self.s.task_scores, list(tasks)) or next(iter(sorted(tasks)), None)

    def dtpm_problem(self, short: bool = False) -> str:
        """Why DTPM cannot restore the current task ("" when it can)."""
        task, adapters = self.s.task, self.s.catalog.adapters
        if not self.has_dtpm:
            return "no DTPM model" if short else "no DTPM model is installed"
        if task not in adapters:
            if short:
                return f"no DTPM model for {task}"
            return (f"there is no DTPM adapter for the {task!r} task (DTPM restores "
                    f"{', '.join(sorted(adapters))})")
        return ""

    def problem(self, engine: str, short: bool = False) -> str:
        """Why `engine` cannot restore the current task ("" when it can, or may once loaded)."""
        if engine == DTPM:
            return self.dtpm_problem(short)
        return self.s.single_pass.unavailable(self.s.task, short)

    def batch_models(self) -> tuple[BatchModels | None, str]:
        """The models a batch of the current task runs with, for the engine in use; or None
        and why not."""
        s, engine = self.s, self.active_engine
        if s.task is None:
            return None, "Add a model before running a batch."
        problem = self.problem(engine)
        if problem:
            return None, f"{ENGINE_LABELS[engine]} cannot run this batch: {problem}."
        if engine == SINGLE_PASS:
            return BatchModels(SINGLE_PASS, s.task, singlepass=s.single_pass.installed,
                               ensemble=s.ensemble), ""
        return BatchModels(DTPM, s.task, s.catalog.base, s.catalog.adapters[s.task].path), ""

    @property
    def models_ready(self) -> bool:
        """DTPM's base and the adapter of the current task are loaded."""
        entry = self.s.catalog.adapters.get(self.s.task or "")
        adapter = self.s.dtpm.adapter
        return adapter is not None and entry is not None and adapter.path == entry.path

    # ------------------------------------------------------------------ keys

    def result_key(self, engine: str, k: int | None = None) -> ResultKey | None:
        """Cache key of `engine`'s result for the current settings (DTPM: at K `k`, default
        the current K), once the models it needs are loaded."""
        s = self.s
        if s.image is None or s.task is None:
            return None
        if engine == DTPM:
            adapter = s.dtpm.adapter
            if adapter is None or not self.models_ready:
                return None
            return ResultKey(s.image.id, DTPM, adapter.sha256, adapter.task, s.tile,
                             s.k if k is None else k, s.seed, s.strength)
        tasks, loaded = s.single_pass.tasks(), s.single_pass.loaded
        if tasks is None or s.task not in tasks or loaded is None:
            return None
        return ResultKey(s.image.id, SINGLE_PASS, loaded.sha256, s.task, s.tile,
                         ensemble=s.ensemble)

    def curve_key(self, engine: str) -> CurveKey | None:
        """Key of `engine`'s points on the trade-off plot: the image, the reference (or the
        initial prediction of the task's DTPM adapter) and the model; DTPM's seed too."""
        s, dtpm = self.s, self.result_key(DTPM)
        if dtpm is None or s.image is None:
            return None
        reference_id = s.reference_id if s.reference is not None else 0
        if engine == DTPM:
            return CurveKey(DTPM, s.image.id, reference_id, dtpm.model, seed=s.seed)
        single_pass = self.result_key(SINGLE_PASS)
        if single_pass is None:
            return None
        return CurveKey(SINGLE_PASS, s.image.id, reference_id, dtpm.model, single_pass.model)

    def _spec(self, key: ResultKey) -> EngineSpec:
        """What restores the result `key` names, on the weights the worker holds."""
        state = self.s.engine_state(key.engine)
        assert state.loaded is not None
        if key.engine == DTPM:
            assert self.s.dtpm.adapter is not None and key.steps is not None
            return replace(state.loaded.spec, adapter=self.s.dtpm.adapter.path,
                           steps=(key.steps,), seed=key.seed, strength=key.strength,
                           tile=key.tile)
        return replace(state.loaded.spec, task=key.task, ensemble=key.ensemble, tile=key.tile)

    # ------------------------------------------------------------------ what is wanted

    def shows(self, engine: str) -> bool:
        """The full-size result of `engine` is wanted: it is the engine in use, or the split
        view shows it (the initial prediction comes with the DTPM result)."""
        if self.s.image is None:
            return False
        if engine == DTPM:
            return self.active_engine == DTPM or bool({DTPM, "initial"} & set(self.s.sides))
        return self.active_engine == SINGLE_PASS or SINGLE_PASS in self.s.sides

    def display_missing(self) -> bool:
        """A result the window shows is neither computed nor failed."""
        for engine in ENGINES:
            key = self.result_key(engine)
            if (self.shows(engine) and key is not None
                    and self.s.engine_state(engine).results.get(key) is None
                    and key not in self.s.failed):
                return True
        return False

    def _active_pending(self) -> bool:
        """The engine in use still needs a job (its model or the result for the current
        settings): that job goes before anything else."""
        engine = self.active_engine
        return (self._model_request(engine) or self._display_request(engine)) is not None

    def _background_allowed(self) -> bool:
        """Curve points and the other engine's side may run (no batch is running and what
        the engine in use shows is done)."""
        return not self.s.batch_running and not self._active_pending()

    def wanted(self, job: Job) -> bool:
        if self.s.user_stopped:
            return False
        request = job.request
        if isinstance(request, Restore):
            engine = request.engine
            if self.active_engine != engine and not self._background_allowed():
                return False
            return self.shows(engine) and request.key == self.result_key(engine)
        if isinstance(request, CurvePointJob):
            if self.display_missing() or not self._background_allowed():
                return False
            return request.key == self.curve_key(request.key.engine)
        return True

    def cheap_k(self) -> tuple[int, str, str] | None:
        """For a new photo: (CHEAP_K, title, text) when it is large and the K in use is more
        expensive (with the time that K would take here, once a restoration measured it);
        None to keep K."""
        s = self.s
        assert s.image is not None
        height, width = s.image.loaded.rgb.shape[:2]
        if height * width < LARGE_PHOTO_PIXELS or s.k <= CHEAP_K \
                or self.active_engine == SINGLE_PASS:
            return None
        megapixels, kept = height * width / 1e6, s.k
        rate = s.dtpm.pass_rate.get(s.dtpm.loaded.device if s.dtpm.loaded is not None else "")
        minutes = rate * megapixels * (kept + 1) / 60 if rate is not None else 0.0
        cost = f" (about {minutes:.0f} min here)" if minutes >= 1 else ""
        return (CHEAP_K, f"Steps set to K={CHEAP_K}",
                f"{s.image.path.name} has {megapixels:.1f} megapixels: it starts at "
                f"K={CHEAP_K} instead of K={kept}{cost}. Move the step slider for more "
                "texture.")

    def curve_complete(self, side: int) -> bool:
        points = self.s.dtpm.curve(self.curve_key(DTPM), side)
        return all(k in points for k in CURVE_KS)

    def curve_progress(self, request: CurvePointJob) -> Progress:
        """Where the trade-off curve is: points done of both previews (quick, then refined)."""
        key = self.curve_key(DTPM)
        done = sum(len(self.s.dtpm.curve(key, side)) for side in CURVE_SIDES)
        side = request.side
        what = "Trade-off curve" if side == CURVE_SIDES[0] else "Refining the trade-off curve"
        point = f"K={request.steps}" if request.steps is not None else "single-pass point"
        return Progress(what, done, 2 * len(CURVE_KS), f"{point} on a {side} px preview")

    # ------------------------------------------------------------------ scheduling

    def next_request(self) -> JobRequest | None:
        """The most useful job now, in the order of the module docstring."""
        active = self.active_engine
        other = SINGLE_PASS if active == DTPM else DTPM
        steps = [lambda: self._model_request(active), lambda: self._display_request(active)]
        if not self.s.batch_running:
            steps += [lambda: self._model_request(other), lambda: self._display_request(other),
                      *(lambda side=side: self._curve_request(side) for side in CURVE_SIDES)]
        for step in steps:
            request = step()
            if request is not None:
                return request
        return None

    def _model_request(self, engine: str) -> LoadEngine | SwitchAdapter | None:
        """Load what `engine` needs: the installed single-pass network (the task list shows
        its tasks too, so it loads even in DTPM mode); DTPM's base, then the task's adapter."""
        s = self.s
        if engine == SINGLE_PASS:
            return s.single_pass.load_request()
        if s.catalog.base is None or s.task not in s.catalog.adapters:
            return None
        dtpm = s.dtpm
        if not dtpm.ready:
            return dtpm.load_request()
        entry = s.catalog.adapters[s.task]
        if self.models_ready or dtpm.adapter_failed == entry.path:
            return None
        assert dtpm.loaded is not None and isinstance(dtpm.loaded.spec, DTPMSpec)
        return SwitchAdapter(replace(dtpm.loaded.spec, adapter=entry.path))

    def _display_request(self, engine: str) -> Restore | None:
        s, key = self.s, self.result_key(engine)
        if (s.image is None or s.user_stopped or key is None or not self.shows(engine)
                or s.engine_state(engine).results.get(key) is not None or key in s.failed):
            return None
        return Restore(key, s.image.loaded.rgb, self._spec(key))

    def _next_curve_k(self, side: int) -> int | None:
        """The next K the trade-off curve on the `side` preview lacks (None: complete, failed
        or impossible)."""
        key = self.curve_key(DTPM)
        if key is None or key in self.s.failed:
            return None
        points = self.s.dtpm.curve(key, side)
        return next((k for k in CURVE_KS if k not in points), None)

    def _curve_request(self, side: int) -> CurvePointJob | None:
        """The next point of the curve on the `side` preview, then its single-pass point."""
        s = self.s
        dtpm_key = self.result_key(DTPM)
        if s.image is None or s.user_stopped or dtpm_key is None:
            return None
        initial = self._spec(replace(dtpm_key, steps=1, seed=0, strength=1.0, tile=0))
        k = self._next_curve_k(side)
        if k is not None:
            spec = replace(initial, steps=(k,), seed=s.seed)
            return CurvePointJob(self.curve_key(DTPM), s.image.loaded.rgb, s.reference, spec,
                                 initial, side)
        key, single_pass = self.curve_key(SINGLE_PASS), self.result_key(SINGLE_PASS)
        if (key is None or single_pass is None or s.single_pass.curve(key, side)
                or key in s.failed or self.curve_key(DTPM) in s.failed):
            return None  # (a failed DTPM curve would fail the same way)
        spec = self._spec(replace(single_pass, ensemble=False, tile=0))
        return CurvePointJob(key, s.image.loaded.rgb, s.reference, spec, initial, side)
