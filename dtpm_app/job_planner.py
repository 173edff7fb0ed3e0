"""Which job the controller runs next: which engine can restore which task, cache keys,
priorities, and whether a running job is still wanted.

`JobPlanner` is the planning half of `dtpm_app.controller.Controller` (a mixin that only
reads the controller's state and never emits anything): the engine in use comes first (DTPM:
load the base, switch the adapter, restore at the current K; Fast: load the single-pass
network, restore in one pass per tile, or eight with the ensemble), then the other engine's
model (an installed single-pass network is always loaded: the task list shows its tasks) and
what the split view shows of that engine, then the PSNR/LPIPS trade-off curve one K at a
time, and last the single-pass point on that plot (always one pass).
Every result is cached under an exact key, so nothing is computed twice and a late result is
never shown for other settings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dtpm_core.models import Catalog, ModelEntry

from .batch_worker import BatchModels
from .fast_engine import (
    DTPM,
    FAST,
    FastModel,
    FastPointJob,
    LoadFast,
    RestoreFast,
    task_display_name,
)
from .state import ArrayCache, ImageState
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


class JobPlanner:
    """Keys and scheduling of the `Controller` (see the module docstring)."""

    # the controller's state this reads
    catalog: Catalog
    task: str | None
    image: ImageState | None
    reference: np.ndarray | None
    k: int
    seed: int
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
    _failed_keys: set[tuple]
    _results: ArrayCache
    _curves: dict[tuple, dict[int, CurvePoint]]

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
        context = self._context()
        if context is None:
            return None
        return (*context, self.seed, self.tile, self.k if k is None else k)

    def _curve_key(self) -> tuple | None:
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

    def _wanted(self, job: Job) -> bool:
        if self._user_stopped:
            return False
        request = job.request
        if isinstance(request, RestoreImage):
            return self._shows(DTPM) and request.key == self._display_key()
        if isinstance(request, RestoreFast):
            return self._shows(FAST) and request.key == self._fast_key()
        if isinstance(request, CurvePointJob):
            return request.key == self._curve_key() and not self._display_missing()
        if isinstance(request, FastPointJob):
            return request.key == self._fast_point_key() and not self._display_missing()
        return True

    # ------------------------------------------------------------------ scheduling

    def _next_request(self):
        """The most useful job now, in the order of the module docstring."""
        if self.active_engine == FAST:
            steps = (self._fast_model_request, self._fast_display_request,
                     self._dtpm_model_request, self._dtpm_display_request,
                     self._curve_request, self._fast_point_request)
        else:
            steps = (self._dtpm_model_request, self._dtpm_display_request,
                     self._fast_model_request, self._fast_display_request,
                     self._curve_request, self._fast_point_request)
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
        return RestoreImage(key, self.image.loaded.rgb, self.k, self.seed, self.tile)

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

    def _next_curve_k(self) -> int | None:
        """The next K the trade-off curve lacks (None: complete, failed or impossible)."""
        curve_key = self._curve_key()
        if curve_key is None or curve_key in self._failed_keys:
            return None
        points = self._curves.get(curve_key, {})
        return next((k for k in CURVE_KS if k not in points), None)

    def _curve_request(self) -> CurvePointJob | None:
        k = self._next_curve_k()
        if self.image is None or self._user_stopped or k is None:
            return None
        return CurvePointJob(self._curve_key(), self.image.loaded.rgb, self.reference, k,
                             self.seed)

    def _fast_point_request(self) -> FastPointJob | None:
        key = self._fast_point_key()
        if (self.image is None or self._user_stopped or key is None or key in self.fast.points
                or key in self._failed_keys or self._next_curve_k() is not None
                or self._curve_key() in self._failed_keys):  # it would fail the same way
            return None
        assert self.task is not None
        return FastPointJob(key, self.image.loaded.rgb, self.reference, self.task)
