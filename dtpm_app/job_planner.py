"""Which job the controller runs next: which engine can restore which task, cache keys,
priorities, and whether a running job is still wanted.

`JobPlanner` is the planning half of `dtpm_app.controller.Controller` (a mixin that only
reads the controller's state and never emits anything): the engine in use comes first (DTPM:
load the base, switch the adapter, restore at the current K; Fast: load the single-pass
network, restore in one pass per tile, or eight with the ensemble), then the other engine's
model (an installed single-pass network is always loaded: the task list shows its tasks) and
what the split view shows of that engine, then the PSNR/LPIPS trade-off curve one K at a
time with the single-pass point on that plot (always one pass): first on a small preview, so
that it appears in seconds, then refined on a larger one.

The job for what the person looks at comes first: while the engine in use still lacks its
model or its result, a running job for anything else (the other engine's side of the split
view, a curve point) is cancelled and runs again later; while a batch runs, nothing but that
result is computed here, so that the two never share the processor for background work.
Every result is cached under an exact key, so nothing is computed twice and a late result is
never shown for other settings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dtpm_core.catalog import Catalog, ModelEntry
from dtpm_core.options import task_display_name

from .batch_worker import BatchModels
from .fast_engine import (
    DTPM,
    FAST,
    FastModel,
    FastPointJob,
    LoadFast,
    RestoreFast,
)
from .state import PREVIEW_SIDE, ArrayCache, ImageState, Progress
from .workers import (
    AdapterLoaded,
    BaseLoaded,
    CurvePoint,
    CurvePointJob,
    Job,
    LoadBase,
    RestoreImage,
    SwitchAdapter,
)

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
    """Keys and scheduling of the `Controller` (see the module docstring)."""

    # the controller's state this reads
    catalog: Catalog
    task: str | None
    image: ImageState | None
    reference: np.ndarray | None
    k: int
    seed: int
    strength: float  # DTPM texture strength (dtpm_app.texture_strength)
    tile: int
    fast_ensemble: bool
    device: str
    sides: tuple[str, str]
    engine: str
    fast: FastModel
    _ref_id: int
    _base: BaseLoaded | None
    _base_for: tuple[Path, str] | None
    _base_failed: tuple | None
    _adapter: AdapterLoaded | None
    _adapter_failed: Path | None
    _user_stopped: bool
    batch_running: bool
    _failed_keys: set[tuple]
    _results: ArrayCache
    _curves: dict[tuple, dict[int, CurvePoint]]  # (*curve key, preview side) -> K -> point
    _pass_rate: dict[str, float]  # device -> seconds per megapixel and network pass

    @property
    def has_dtpm(self) -> bool:
        """A DTPM base and at least one task adapter are installed."""
        return self.catalog.base is not None and bool(self.catalog.adapters)

    @property
    def active_engine(self) -> str:
        """The engine that restores: the one chosen while both are installed, else the one
        that is (the choice itself is kept for when both are)."""
        if not self.fast.installed:
            return DTPM
        return FAST if self.engine == FAST or not self.has_dtpm else DTPM

    def tasks(self) -> dict[str, ModelEntry]:
        """Every task one of the engines restores: the DTPM adapters, then the tasks only the
        single-pass network knows (once it is loaded), under their usual names."""
        tasks = dict(self.catalog.adapters) if self.catalog.base is not None else {}
        fast_path = self.fast.path
        for task in sorted(self.fast.tasks(self.device) or {}):
            if task not in tasks and fast_path is not None:
                tasks[task] = ModelEntry(task, task_display_name(task), fast_path)
        return tasks

    def _dtpm_problem(self, short: bool = False) -> str:
        """Why DTPM cannot restore the current task ("" when it can)."""
        if not self.has_dtpm:
            return "no DTPM model" if short else "no DTPM model is installed"
        if self.task not in self.catalog.adapters:
            if short:
                return f"no DTPM model for {self.task}"
            return (f"there is no DTPM adapter for the {self.task!r} task (DTPM restores "
                    f"{', '.join(sorted(self.catalog.adapters))})")
        return ""

    def batch_models(self) -> tuple[BatchModels | None, str]:
        """The models a batch of the current task runs with, for the engine in use; or None
        and why not."""
        if self.task is None:
            return None, "Add a model before running a batch."
        if self.active_engine == FAST:
            problem = self.fast.unavailable(self.task, self.device)
            if problem:
                return None, f"The Fast engine cannot run this batch: {problem}."
            return BatchModels(FAST, self.task, singlepass=self.fast.path,
                               ensemble=self.fast_ensemble), ""
        problem = self._dtpm_problem()
        if problem or self.catalog.base is None:
            return None, f"DTPM cannot run this batch: {problem}."
        return BatchModels(DTPM, self.task, self.catalog.base,
                           self.catalog.adapters[self.task].path), ""

    def _adapter_matches(self) -> bool:
        entry = self.catalog.adapters.get(self.task or "")
        return (self._adapter is not None and entry is not None
                and self._adapter.path == entry.path)

    def _context(self) -> tuple[int, str] | None:
        """(image id, adapter sha256) once both an image and the task's adapter are loaded."""
        if self.image is None or self._adapter is None or not self._adapter_matches():
            return None
        return self.image.id, self._adapter.sha256

    def _display_key(self, k: int | None = None) -> tuple | None:
        """Cache key of the DTPM result (image, adapter, seed, tile, texture strength, K):
        a result for another strength is never shown as this one."""
        context = self._context()
        if context is None:
            return None
        return (*context, self.seed, self.tile, self.strength, self.k if k is None else k)

    def _curve_key(self) -> tuple | None:
        """The trade-off curve is measured at texture strength 1 (as trained), whatever the
        strength of the result on screen: it is there to choose K, and at strength 0 against
        the initial prediction it would have no points at all. So no strength in its key."""
        context = self._context()
        if context is None:
            return None
        image_id, adapter = context
        return (image_id, self._ref_id if self.reference is not None else 0, adapter, self.seed)

    def _fast_key(self) -> tuple | None:
        """Cache key of the Fast result (image, network, task, tile, ensemble), once it can
        be made."""
        if self.image is None or self.task is None:
            return None
        return self.fast.key(self.image.id, self.task, self.tile, self.fast_ensemble,
                             self.device)

    def _fast_point_key(self) -> tuple | None:
        """The single-pass point is measured like the curve: same image, reference (or
        initial prediction of the task's adapter), plus the network (one pass: the ensemble
        choice does not change it)."""
        curve = self._curve_key()
        if curve is None or self._fast_key() is None or self.fast.loaded is None:
            return None
        return (*curve[:3], self.fast.loaded.sha256)

    def _shows(self, engine: str) -> bool:
        """The full-size result of `engine` is wanted: it is the engine in use, or the split
        view shows it (the initial prediction comes with the DTPM result)."""
        if self.image is None:
            return False
        if engine == DTPM:
            return self.active_engine == DTPM or bool({"dtpm", "initial"} & set(self.sides))
        return self.active_engine == FAST or "fast" in self.sides

    def _display_missing(self) -> bool:
        """A result the window shows is neither computed nor failed."""
        for engine, key, cache in ((DTPM, self._display_key(), self._results),
                                   (FAST, self._fast_key(), self.fast.results)):
            if (self._shows(engine) and key is not None and cache.get(key) is None
                    and key not in self._failed_keys):
                return True
        return False

    def _active_pending(self) -> bool:
        """The engine in use still needs a job (its model or the result for the current
        settings): that job goes before anything else."""
        if self.active_engine == FAST:
            return (self._fast_model_request() or self._fast_display_request()) is not None
        return (self._dtpm_model_request() or self._dtpm_display_request()) is not None

    def _background_allowed(self) -> bool:
        """Curve points and the other engine's side may run (no batch is running and what
        the engine in use shows is done)."""
        return not self.batch_running and not self._active_pending()

    def _wanted(self, job: Job) -> bool:
        if self._user_stopped:
            return False
        request = job.request
        if isinstance(request, RestoreImage):
            if self.active_engine != DTPM and not self._background_allowed():
                return False
            return self._shows(DTPM) and request.key == self._display_key()
        if isinstance(request, RestoreFast):
            if self.active_engine != FAST and not self._background_allowed():
                return False
            return self._shows(FAST) and request.key == self._fast_key()
        if isinstance(request, CurvePointJob | FastPointJob):
            if self._display_missing() or not self._background_allowed():
                return False
            if isinstance(request, CurvePointJob):
                return request.key == self._curve_key()
            return request.key == self._fast_point_key()
        return True

    def _cheap_k(self) -> tuple[int, str, str] | None:
        """For a new photo: (CHEAP_K, title, text) when it is large and the K in use is more
        expensive (with the time that K would take here, once a restoration measured it);
        None to keep K."""
        assert self.image is not None
        height, width = self.image.loaded.rgb.shape[:2]
        if height * width < LARGE_PHOTO_PIXELS or self.k <= CHEAP_K \
                or self.active_engine == FAST:
            return None
        megapixels, kept = height * width / 1e6, self.k
        rate = self._pass_rate.get(self._base.device if self._base is not None else "")
        minutes = rate * megapixels * (kept + 1) / 60 if rate is not None else 0.0
        cost = f" (about {minutes:.0f} min here)" if minutes >= 1 else ""
        return (CHEAP_K, f"Steps set to K={CHEAP_K}",
                f"{self.image.path.name} has {megapixels:.1f} megapixels: it starts at "
                f"K={CHEAP_K} instead of K={kept}{cost}. Move the step slider for more "
                "texture.")

    def _curve_progress(self, request: CurvePointJob | FastPointJob) -> Progress:
        """Where the trade-off curve is: points done of both previews (quick, then refined)."""
        key = self._curve_key()
        done = sum(len(self._curves.get((*key, side), {})) for side in CURVE_SIDES) \
            if key is not None else 0
        side = request.side
        what = "Trade-off curve" if side == CURVE_SIDES[0] else "Refining the trade-off curve"
        point = f"K={request.k}" if isinstance(request, CurvePointJob) else "single-pass point"
        return Progress(what, done, 2 * len(CURVE_KS), f"{point} on a {side} px preview")

    # ------------------------------------------------------------------ scheduling

    def _next_request(self):
        """The most useful job now, in the order of the module docstring."""
        if self.active_engine == FAST:
            active = (self._fast_model_request, self._fast_display_request)
            other = (self._dtpm_model_request, self._dtpm_display_request)
        else:
            active = (self._dtpm_model_request, self._dtpm_display_request)
            other = (self._fast_model_request, self._fast_display_request)
        steps = list(active)
        if not self.batch_running:
            steps += [*other, *(lambda side=side: self._curve_request(side)
                                for side in CURVE_SIDES)]
        for step in steps:
            request = step()
            if request is not None:
                return request
        return None

    def _dtpm_model_request(self) -> LoadBase | SwitchAdapter | None:
        base = self.catalog.base
        if base is None or self.task not in self.catalog.adapters:
            return None
        if self._base is None or self._base_for != (base, self.device):
            return None if self._base_failed == (base, self.device) else \
                LoadBase(base, self.device)
        entry = self.catalog.adapters[self.task]
        if not self._adapter_matches():
            return None if self._adapter_failed == entry.path else SwitchAdapter(entry.path)
        return None

    def _dtpm_display_request(self) -> RestoreImage | None:
        key = self._display_key()
        if (self.image is None or self._user_stopped or key is None or not self._shows(DTPM)
                or self._results.get(key) is not None or key in self._failed_keys):
            return None
        return RestoreImage(key, self.image.loaded.rgb, self.k, self.seed, self.tile,
                            self.strength)

    def _fast_model_request(self) -> LoadFast | None:
        """Load the installed single-pass network: the task list shows its tasks too (in
        DTPM mode after the DTPM result)."""
        return self.fast.load_request(self.device)

    def _fast_display_request(self) -> RestoreFast | None:
        key = self._fast_key()
        if (self.image is None or self._user_stopped or key is None or not self._shows(FAST)
                or self.fast.results.get(key) is not None or key in self._failed_keys):
            return None
        assert self.task is not None
        return RestoreFast(key, self.image.loaded.rgb, self.task, self.tile,
                           self.fast_ensemble)

    def _next_curve_k(self, side: int) -> int | None:
        """The next K the trade-off curve on the `side` preview lacks (None: complete, failed
        or impossible)."""
        curve_key = self._curve_key()
        if curve_key is None or curve_key in self._failed_keys:
            return None
        points = self._curves.get((*curve_key, side), {})
        return next((k for k in CURVE_KS if k not in points), None)

    def _curve_request(self, side: int) -> CurvePointJob | FastPointJob | None:
        """The next point of the curve on the `side` preview, then its single-pass point."""
        if self.image is None or self._user_stopped:
            return None
        k = self._next_curve_k(side)
        if k is not None:
            return CurvePointJob(self._curve_key(), self.image.loaded.rgb, self.reference, k,
                                 self.seed, side)
        key = self._fast_point_key()
        if (key is None or (*key, side) in self.fast.points or key in self._failed_keys
                or self._curve_key() in self._failed_keys):  # it would fail the same way
            return None
        assert self.task is not None
        return FastPointJob(key, self.image.loaded.rgb, self.reference, self.task, side)
