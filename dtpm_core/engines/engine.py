"""One way to run either engine: a spec says what to load and how to restore, `load_engine`
loads it, `Engine.restore` runs it with progress and cancel and returns an `EngineResult`.

    engine = load_engine(DTPMSpec(base, adapter, steps=(1, 4), device="cpu"))
    result = engine.restore(image, progress=..., should_stop=...)
    result = engine.restore(image, replace(engine.spec, steps=(10,), seed=3))  # no reload

The CLI, the app's workers, the self-test, `dtpm-train compare` and the benchmarks all go
through here. `spec_from_options` builds a spec from user options and refuses any option the
engine cannot honour (`--steps` for the single-pass engine, `--task` for DTPM, ...) instead of
ignoring it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from ..options import (
    DEFAULT_STEPS,
    DEFAULT_STRENGTH,
    DEFAULT_TEXTURE_COLOUR,
    DEFAULT_TILE,
    DTPM,
    ENGINES,
    SINGLE_PASS,
    TEXTURE_COLOURS,
)

if TYPE_CHECKING:  # torch-free at import: the app builds specs on its start-up path
    from .inference import ProgressCallback, StopCheck


@dataclass(frozen=True)
class DTPMSpec:
    """The diffusion texture prior: a base, a task adapter and the sampling options.
    `steps` holds one K or several (the trade-off curve: one DDIM run each, same noise).
    `precision` None is the process preference
    (`dtpm_core.backends.device.set_precision_preference`, which the app sets from its settings).
    `backend` runs the networks: "auto" (OpenVINO where it was measured faster, else torch), "torch"
    or "openvino"; None is the process preference (`dtpm_core.backends.set_backend_preference`,
    "auto" unless the app set it). `texture_colour` adds the texture layer's brightness only
    ("luminance", no coloured specks) or per channel ("rgb", the paper's)."""

    base: Path
    adapter: Path | None = None
    steps: tuple[int, ...] = (DEFAULT_STEPS,)
    seed: int = 0
    eta: float = 0.0
    strength: float = DEFAULT_STRENGTH
    tile: int = DEFAULT_TILE
    device: str = "auto"
    precision: str | None = "auto"
    backend: str | None = None
    texture_colour: str = DEFAULT_TEXTURE_COLOUR

    engine = DTPM

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", Path(self.base))
        if self.adapter is not None:
            object.__setattr__(self, "adapter", Path(self.adapter))
        steps = (self.steps,) if isinstance(self.steps, int) else tuple(self.steps)
        object.__setattr__(self, "steps", steps)
        if self.texture_colour not in TEXTURE_COLOURS:
            raise ConfigError(f"texture colour must be one of {', '.join(TEXTURE_COLOURS)}, "
                              f"got {self.texture_colour!r}")

    @property
    def weights(self) -> tuple[Any, ...]:
        """What the loaded engine holds; specs that differ only elsewhere share it."""
        return (self.engine, self.base, self.device, self.precision, self.backend)


@dataclass(frozen=True)
class SinglePassSpec:
    """The single-pass network (DESIGN 6): one pass per tile, or 8 with the ensemble.
    `task` None is allowed only for a file that restores one task. `precision` None is the
    process preference and `backend` the network runtime, as for `DTPMSpec`."""

    model: Path
    task: str | None = None
    ensemble: bool = False
    tile: int = DEFAULT_TILE
    device: str = "auto"
    precision: str | None = "auto"
    backend: str | None = None

    engine = SINGLE_PASS

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", Path(self.model))

    @property
    def weights(self) -> tuple[Any, ...]:
        return (self.engine, self.model, self.device, self.precision, self.backend)


EngineSpec = DTPMSpec | SinglePassSpec
SPEC_TYPES: dict[str, type] = {DTPM: DTPMSpec, SINGLE_PASS: SinglePassSpec}


@dataclass
class EngineResult:
    """What either engine returns. Images are (H, W, 3) float32 arrays in [0, 1].

    `image` is the result (DTPM: for the last K asked for). DTPM also fills `initial` (the
    initial predictor's output) and `by_steps` (K -> result); the single-pass engine leaves
    them None / empty. `task` is the task restored; `tile` the tile size that ran (smaller
    than asked after an out-of-memory back-off, which `notes` then describe)."""

    engine: str
    image: np.ndarray
    task: str
    tile: int
    seconds: float
    initial: np.ndarray | None = None
    by_steps: dict[int, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Engine(ABC):
    """A loaded engine. `restore` runs the spec it was loaded with, or another spec that
    shares its weights (`spec.weights`); DTPM switches adapters without reloading the base."""

    def __init__(self, spec: EngineSpec, restorer: Any) -> None:
        self.spec = spec
        self.restorer = restorer  # DTPM's `Restorer` or the `SinglePassRestorer`

    @property
    def device(self) -> Any:
        """The torch device the network runs on."""
        return self.restorer.device

    @property
    def precision(self) -> str:
        """What runs: "fp32", "bf16" or "fp16" ("auto" resolved)."""
        return self.restorer.precision

    @property
    def backend(self) -> str:
        """Where the networks run: "torch" or "openvino" ("auto" resolved)."""
        return self.restorer.backend

    @property
    @abstractmethod
    def tasks(self) -> tuple[str, ...]:
        """The tasks the loaded weights restore (DTPM: the loaded adapter's, if any)."""

    @property
    def info(self) -> Any:
        """The header of the loaded weight file (path, sha256, config): DTPM's `BaseInfo`,
        the single-pass engine's `SinglePassInfo`."""
        return self.restorer.info

    def restore(self, image: np.ndarray, spec: EngineSpec | None = None, *,
                progress: ProgressCallback | None = None,
                should_stop: StopCheck | None = None) -> EngineResult:
        """Restore one (H, W, 3) float image in [0, 1]. `progress` is called after every
        network pass; `should_stop` is polled there and True raises `Cancelled`."""
        return self._restore(image, self._own(spec), progress, should_stop)

    def prepare(self, spec: EngineSpec | None = None) -> str:
        """Get ready to restore with `spec` and return the task it restores: DTPM loads its
        adapter, the single-pass engine resolves its task. What fails here (no adapter, a
        task the file lacks) would fail every image: a batch calls it before the first."""
        return self._prepare(self._own(spec))

    def compile_ahead(self, sizes: Sequence[tuple[int, int]], spec: EngineSpec | None = None
                      ) -> int:
        """Start compiling the networks for images of these (height, width) `sizes` restored
        with `spec`, in the background, where the backend compiles per image size (OpenVINO):
        a restore that follows finds them compiled. Call it before reading the photo (the CLI
        does: reading and compiling overlap) or for the sizes restored next (the app's two
        previews). Compiles of an earlier call that no image used and these sizes do not
        name are dropped. Returns how many compiles started (0 on torch)."""
        return self._compile_ahead(list(sizes), self._own(spec))

    def _own(self, spec: EngineSpec | None) -> EngineSpec:
        """`spec`, or the loaded one for None; a spec for other weights is an error."""
        spec = self.spec if spec is None else spec
        if spec.weights != self.spec.weights:
            raise ConfigError(f"this {self.spec.engine} engine holds {self.spec.weights[1]} on "
                              f"{self.spec.device} ({self.spec.precision}, backend "
                              f"{self.spec.backend}); load another engine for a different "
                              "model file, device, precision or backend")
        return spec

    @abstractmethod
    def _prepare(self, spec: Any) -> str:
        ...

    @abstractmethod
    def _compile_ahead(self, sizes: list[tuple[int, int]], spec: Any) -> int:
        ...

    @abstractmethod
    def _restore(self, image: np.ndarray, spec: Any, progress: ProgressCallback | None,
                 should_stop: StopCheck | None) -> EngineResult:
        ...


class DTPMEngine(Engine):
    def __init__(self, spec: DTPMSpec) -> None:
        from .dtpm_restorer import Restorer

        super().__init__(spec, Restorer(spec.base, spec.adapter, device=spec.device,
                                        precision=spec.precision, backend=spec.backend))

    @property
    def tasks(self) -> tuple[str, ...]:
        info = self.restorer.adapter_info
        return (info.task,) if info is not None else ()

    @property
    def adapter_info(self) -> Any:
        """The loaded task adapter's `AdapterInfo` (task, display name, sha256, held-out
        metrics), None before `prepare` or the first restore."""
        return self.restorer.adapter_info

    def _prepare(self, spec: DTPMSpec) -> str:
        if spec.adapter is None:
            raise ConfigError("DTPM needs a task adapter to restore a photo")
        info = self.restorer.adapter_info
        if info is None or Path(info.path).resolve() != spec.adapter.resolve():
            info = self.restorer.load_adapter(spec.adapter)
        return info.task

    def _compile_ahead(self, sizes: list[tuple[int, int]], spec: DTPMSpec) -> int:
        self._prepare(spec)
        return self.restorer.compile_ahead(sizes, tile=spec.tile, strength=spec.strength)

    def _restore(self, image: np.ndarray, spec: DTPMSpec, progress: ProgressCallback | None,
                 should_stop: StopCheck | None) -> EngineResult:
        task = self._prepare(spec)
        out = self.restorer.restore(image, spec.steps, seed=spec.seed, eta=spec.eta,
                                    tile=spec.tile, strength=spec.strength,
                                    texture_colour=spec.texture_colour, progress=progress,
                                    should_stop=should_stop)
        return EngineResult(DTPM, out.result, task, out.tile, out.seconds,
                            initial=out.initial, by_steps=out.results, notes=out.notes)


class SinglePassEngine(Engine):
    def __init__(self, spec: SinglePassSpec) -> None:
        from .singlepass_restorer import SinglePassRestorer

        super().__init__(spec, SinglePassRestorer(spec.model, spec.device,
                                                  precision=spec.precision,
                                                  backend=spec.backend))

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.restorer.tasks)

    def _prepare(self, spec: SinglePassSpec) -> str:
        if not self.tasks:
            raise ConfigError(f"{spec.model} names no task (a pre-trained network); fine-tune "
                              "it for a task first")
        if spec.task is None:
            if len(self.tasks) != 1:
                raise ConfigError(f"{spec.model} restores {len(self.tasks)} tasks "
                                  f"({', '.join(self.tasks)}); choose one")
            return self.tasks[0]
        self.restorer.t_mat(spec.task)  # a task the file lacks: an error listing its tasks
        return spec.task

    def _compile_ahead(self, sizes: list[tuple[int, int]], spec: SinglePassSpec) -> int:
        return self.restorer.compile_ahead(sizes, tile=spec.tile, ensemble=spec.ensemble)

    def _restore(self, image: np.ndarray, spec: SinglePassSpec,
                 progress: ProgressCallback | None,
                 should_stop: StopCheck | None) -> EngineResult:
        task = self._prepare(spec)
        out = self.restorer.restore(image, task, tile=spec.tile, ensemble=spec.ensemble,
                                    progress=progress, should_stop=should_stop)
        return EngineResult(SINGLE_PASS, out.result, out.task, out.tile, out.seconds,
                            notes=out.notes)


def load_engine(spec: EngineSpec) -> Engine:
    """Load the weights a spec names (on its device, at its precision)."""
    if isinstance(spec, DTPMSpec):
        return DTPMEngine(spec)
    if isinstance(spec, SinglePassSpec):
        return SinglePassEngine(spec)
    raise ConfigError(f"not an engine spec: {spec!r}")


def engine_options(engine: str) -> tuple[str, ...]:
    """The options an engine takes (the fields of its spec)."""
    return tuple(f.name for f in dataclasses.fields(_spec_type(engine)))


def refused_options(engine: str, names: Iterable[str]) -> list[str]:
    """The options (of `names`) the engine cannot honour, in the order given."""
    allowed = engine_options(engine)
    return [name for name in names if name not in allowed]


def check_options(engine: str, names: Iterable[str]) -> None:
    """Raise ConfigError naming the options (of `names`) the engine cannot honour."""
    refused = refused_options(engine, names)
    if refused:
        other = [e for e in ENGINES if e != engine and
                 all(name in engine_options(e) for name in refused)]
        hint = f" (options of the {other[0]} engine)" if other else ""
        raise ConfigError(f"the {engine} engine has no option {', '.join(refused)}{hint}")


def spec_from_options(engine: str, **options: Any) -> EngineSpec:
    """A spec from user options; an option the engine cannot honour is an error naming it,
    never ignored. Pass only the options the user set, so defaults stay the spec's."""
    check_options(engine, options)
    return _spec_type(engine)(**options)


def _spec_type(engine: str) -> type:
    try:
        return SPEC_TYPES[engine]
    except KeyError:
        raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}") \
            from None
