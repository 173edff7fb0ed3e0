"""Plain state objects the controller sends to the window, and its result cache."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dtpm_core.evaluation.model_scores import HeldOutScores
from dtpm_core.files.imageio import LoadedImage
from dtpm_core.modelfiles.catalog import ModelEntry

from .single_pass_scores import SinglePassScore

CACHE_BYTES = 1 << 30
"""Memory kept for restored images; the least recently used go first."""
PREVIEW_SIDE = 256
"""Longest side of the preview on which the PSNR/LPIPS trade-off curve is refined (it is
first computed on a smaller one: dtpm_app.job_planner.COARSE_SIDE)."""


class ArrayCache:
    """Least-recently-used arrays under a byte budget."""

    def __init__(self, budget: int = CACHE_BYTES) -> None:
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._budget, self._bytes = budget, 0

    def get(self, key: tuple) -> np.ndarray | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: tuple, value: np.ndarray) -> None:
        if key in self._items:
            self._bytes -= self._items.pop(key).nbytes
        self._items[key] = value
        self._bytes += value.nbytes
        while self._bytes > self._budget and len(self._items) > 1:
            self._bytes -= self._items.popitem(last=False)[1].nbytes

    def keys(self) -> list[tuple]:
        return list(self._items)


@dataclass(frozen=True)
class ImageState:
    id: int
    path: Path
    loaded: LoadedImage


@dataclass(frozen=True)
class ModelsState:
    state: str  # "none" (nothing installed), "loading", "ready", "error"
    entries: tuple[ModelEntry, ...]
    task: str | None
    has_base: bool
    folder: Path
    device: str = ""  # the device in use once loaded, e.g. "cpu"
    error: str = ""
    engine: str = "dtpm"  # the engine in use: "dtpm" or "single-pass"
    single_pass_installed: bool = False  # a single-pass model is installed
    single_pass_tasks: tuple[str, ...] | None = None  # its tasks (None: not loaded yet)
    single_pass_problem: str = ""  # why it cannot restore the current task ("": it can)
    dtpm_tasks: tuple[str, ...] = ()  # the tasks with a DTPM adapter (and a base)
    dtpm_problem: str = ""  # why DTPM cannot restore the current task ("" when it can)
    scores: HeldOutScores | None = None  # held-out scores of the loaded adapter of `task`
    task_scores: dict[str, HeldOutScores] = field(default_factory=dict)  # read from the files
    # the single-pass network's held-out score per task (dtpm_app.single_pass_scores)
    single_pass_scores: dict[str, SinglePassScore] = field(default_factory=dict)


@dataclass(frozen=True)
class Display:
    """What the split view can show; `result` is the DTPM result and `result_k` its K
    (None: no result yet); `single_pass` the single-pass engine's; `engine` the one in use."""

    input: np.ndarray | None = None
    initial: np.ndarray | None = None
    result: np.ndarray | None = None
    reference: np.ndarray | None = None
    result_k: int | None = None
    wanted_k: int = 1
    pending: bool = False  # the result for wanted_k is still being computed
    engine: str = "dtpm"
    single_pass: np.ndarray | None = None
    single_pass_pending: bool = False  # the single-pass result is still being computed
    single_pass_problem: str = ""  # why there is no single-pass result for this task
    dtpm_problem: str = ""  # the same for DTPM
    strength: float = 1.0  # the DTPM texture strength of `result` and `wanted_k`
    result_seed: int | None = None  # the seed of `result` where it is not the current one
    wanted_seed: int = 0  # the current seed


@dataclass(frozen=True)
class CurveState:
    psnr: dict[int, float] = field(default_factory=dict)
    lpips: dict[int, float] = field(default_factory=dict)
    against: str = "initial prediction"  # or "reference"
    backbone: str = ""
    computing_k: int | None = None
    error: str = ""
    engine: str = "dtpm"  # the engine in use
    single_pass_psnr: float | None = None  # the single-pass point, measured like the curve
    single_pass_lpips: float | None = None
    single_pass_computing: bool = False
    unavailable: str = ""  # why there is no curve for this task (no DTPM model for it)
    preview_side: int = PREVIEW_SIDE  # longest side of the preview the points were measured on


@dataclass(frozen=True)
class Progress:
    what: str  # "Loading model", "Restoring"
    done: int = 0
    total: int = 0  # 0: indeterminate
    stage: str = ""
    eta_s: float | None = None
