"""`Session`: the state that decides what the controller computes next: the person's
choices, the photo and its reference, the installed models and each engine's state.

The controller (dtpm_app.controller) changes it; its planner (dtpm_app.job_planner) and its
views (dtpm_app.controller_views) read it. Plain data, no Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dtpm_core.evaluation.model_scores import HeldOutScores
from dtpm_core.modelfiles.catalog import Catalog
from dtpm_core.options import DTPM

from .engine_state import DTPMState, EngineState, SinglePassState
from .settings import AppSettings
from .single_pass_scores import SinglePassScore
from .state import ImageState


@dataclass
class Session:
    engine: str  # as chosen; see JobPlanner.active_engine
    k: int
    seed: int
    tile: int
    strength: float  # DTPM texture strength (dtpm_app.texture_strength)
    ensemble: bool  # single-pass: average the 8 flip/rotate variants
    sides: tuple[str, str]  # what the split view shows
    dtpm: DTPMState
    single_pass: SinglePassState
    preferred_task: str = ""  # the last task chosen, until it is installed
    task: str | None = None
    catalog: Catalog = field(default_factory=lambda: Catalog(None, {}))
    task_scores: dict[str, HeldOutScores] = field(default_factory=dict)  # from adapter files
    single_pass_scores: dict[str, SinglePassScore] = field(default_factory=dict)
    image: ImageState | None = None
    reference: np.ndarray | None = None
    reference_path: Path | None = None
    reference_id: int = 0  # counts references set: part of the curve's key
    user_stopped: bool = False  # cancelled: nothing runs until the next request
    batch_running: bool = False  # a batch has the processor: no background work here
    failed: set = field(default_factory=set)  # keys of the jobs that failed

    @classmethod
    def from_settings(cls, s: AppSettings) -> Session:
        return cls(s.engine, s.default_k, s.seed, s.tile, s.strength, s.ensemble,
                   (s.left_side, s.right_side), DTPMState(s.device), SinglePassState(s.device),
                   preferred_task=s.task)

    @property
    def device(self) -> str:
        """The device asked for ("auto", "cpu", ...), the same for both engines."""
        return self.dtpm.device

    def engine_state(self, engine: str) -> EngineState:
        return self.dtpm if engine == DTPM else self.single_pass
