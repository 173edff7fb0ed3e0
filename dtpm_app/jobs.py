"""What the controller asks the inference worker, what comes back, and the keys that name
results (no Qt, no torch).

Every request carries a `dtpm_core.engines.engine` spec, so the worker loads and runs both engines
the same way. Results are cached under named keys: a result is only ever shown for the exact
key it was computed for, and a late one for other settings is never mistaken for the current.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dtpm_core.engines.engine import DTPMSpec, EngineResult, EngineSpec
from dtpm_core.evaluation.model_scores import HeldOutScores
from dtpm_core.options import DTPM

from .state import PREVIEW_SIDE

# ----------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class ResultKey:
    """One full-size result. `model` is the sha256 of what restores (DTPM: the task adapter;
    single-pass: the network); the DTPM fields are None for the single-pass engine."""

    image_id: int
    engine: str
    model: str
    task: str
    tile: int
    steps: int | None = None  # DTPM: K
    seed: int | None = None  # DTPM
    strength: float | None = None  # DTPM texture strength
    ensemble: bool = False  # single-pass: the 8-way flip/rotate average

    def initial(self) -> ResultKey:
        """The key of DTPM's initial prediction, which K, seed and strength do not change."""
        return replace(self, steps=None, seed=None, strength=None)


@dataclass(frozen=True)
class CurveKey:
    """One engine's points on the trade-off plot of an image. Without a reference they are
    measured against the initial prediction of the DTPM `adapter` (also the model of DTPM's
    curve). No texture strength: the plot is there to choose K, at strength 1 as trained."""

    engine: str
    image_id: int
    reference_id: int  # 0: against the initial prediction
    adapter: str  # sha256 of the DTPM task adapter
    network: str = ""  # single-pass: sha256 of the network (one pass: no ensemble)
    seed: int | None = None  # DTPM: every K of the curve starts from this seed


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class LoadEngine:
    """Load an engine's weights (`spec.weights`: file, device, precision); a new DTPM base
    comes without an adapter."""

    spec: EngineSpec


@dataclass(frozen=True)
class SwitchAdapter:
    """Load the DTPM task adapter `spec.adapter` for the loaded base (the base stays)."""

    spec: DTPMSpec


@dataclass(frozen=True)
class Restore:
    """Restore the full image with `spec` (DTPM: one K, seed and texture strength; single-pass:
    one network pass per tile, or eight with the ensemble)."""

    key: ResultKey
    image: np.ndarray
    spec: EngineSpec

    @property
    def engine(self) -> str:
        return self.key.engine


@dataclass(frozen=True)
class CurvePointJob:
    """Restore a preview with `spec` (whole, at texture strength 1; the single-pass engine in
    one pass whatever the ensemble choice) and measure PSNR and LPIPS against `target` (the
    reference at full size) or, without one, against the initial prediction of the preview by
    `initial_spec` (DTPM, the key's adapter)."""

    key: CurveKey
    image: np.ndarray
    target: np.ndarray | None
    spec: EngineSpec
    initial_spec: DTPMSpec
    side: int = PREVIEW_SIDE  # longest side of the preview

    @property
    def steps(self) -> int | None:
        """DTPM: the K of this point (None for the single-pass engine)."""
        return self.spec.steps[0] if self.spec.engine == DTPM else None


JobRequest = LoadEngine | SwitchAdapter | Restore | CurvePointJob


@dataclass
class Job:
    run_id: int
    request: JobRequest
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def cancellable(self) -> bool:
        return isinstance(self.request, Restore | CurvePointJob)


# ----------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class EngineLoaded:
    spec: EngineSpec  # as asked (file, device, precision)
    device: str  # the device it runs on, e.g. "cpu"
    sha256: str
    tasks: tuple[str, ...] = ()  # single-pass: the tasks its file restores
    base_identities: frozenset[str] = frozenset()  # DTPM: hashes its adapters may name


@dataclass(frozen=True)
class AdapterLoaded:
    task: str
    display_name: str
    sha256: str
    path: Path
    scores: HeldOutScores | None = None  # what the file says it scored on held-out images


@dataclass(frozen=True)
class Restored:
    key: ResultKey
    result: EngineResult


@dataclass(frozen=True)
class CurvePoint:
    key: CurveKey
    steps: int | None  # DTPM: K
    psnr: float
    lpips: float
    backbone: str
    side: int = PREVIEW_SIDE  # longest side of the preview it was measured on
