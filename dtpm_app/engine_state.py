"""What the controller knows about each engine: the installed weight file, what the worker
has loaded (file, device, precision: the load spec), a load that failed, its cached results
and its points on the trade-off plot. One `EngineState` per engine; DTPM adds its task
adapter, initial predictions and measured speed, the single-pass engine its tasks.

No Qt and no model maths here (the worker runs the jobs: dtpm_app.workers).
"""

from __future__ import annotations

from pathlib import Path

from dtpm_core.engines.engine import SPEC_TYPES, EngineSpec
from dtpm_core.options import DTPM, SINGLE_PASS

from .jobs import AdapterLoaded, CurveKey, CurvePoint, EngineLoaded, LoadEngine, ResultKey
from .state import CACHE_BYTES, ArrayCache


class EngineState:
    """One engine's weights and results.

    `installed` is the file the catalog names (DTPM: the base; single-pass: the network);
    `loaded` what the worker holds. A load that failed is not tried again for the same spec
    until `retry()`. `precision` None is the process preference (the app's setting)."""

    def __init__(self, engine: str, device: str, cache_bytes: int) -> None:
        self.engine, self.device = engine, device
        self.installed: Path | None = None
        self.loaded: EngineLoaded | None = None
        self.failed: EngineSpec | None = None
        self.error = ""
        self.results = ArrayCache(cache_bytes)
        self.seconds: dict[ResultKey, float] = {}  # how long each result took
        self.points: dict[CurveKey, dict[tuple[int, int | None], CurvePoint]] = {}

    def load_spec(self) -> EngineSpec | None:
        """The weights to load for the current device (None: nothing installed)."""
        if self.installed is None:
            return None
        return SPEC_TYPES[self.engine](self.installed, device=self.device, precision=None)

    @property
    def ready(self) -> bool:
        """The installed file is loaded for the current device."""
        return self.loaded is not None and self.loaded.spec == self.load_spec()

    def load_request(self) -> LoadEngine | None:
        """The load the worker needs, or None (loaded, failed, or nothing installed)."""
        spec = self.load_spec()
        if spec is None or self.ready or self.failed == spec:
            return None
        return LoadEngine(spec)

    def set_installed(self, path: Path | None) -> None:
        """The catalog changed: remember the file; a new file may be tried again."""
        if path != self.installed:
            self.installed, self.error = path, ""
        self.retry()

    def retry(self) -> None:
        self.failed = None

    def on_loaded(self, outcome: EngineLoaded) -> None:
        self.loaded, self.failed, self.error = outcome, None, ""

    def on_failed(self, spec: EngineSpec, message: str) -> None:
        self.loaded, self.failed, self.error = None, spec, message

    def add_point(self, point: CurvePoint) -> None:
        self.points.setdefault(point.key, {})[(point.side, point.steps)] = point

    def curve(self, key: CurveKey | None, side: int) -> dict[int | None, CurvePoint]:
        """The points measured for `key` on the `side` preview, by K (None: single-pass)."""
        points = self.points.get(key, {}) if key is not None else {}
        return {steps: p for (s, steps), p in points.items() if s == side}


class DTPMState(EngineState):
    """DTPM: the base (`installed`, `loaded`) and the task adapter switched onto it."""

    def __init__(self, device: str) -> None:
        super().__init__(DTPM, device, CACHE_BYTES)
        self.adapter: AdapterLoaded | None = None
        self.adapter_failed: Path | None = None
        self.initials = ArrayCache(CACHE_BYTES // 4)  # by ResultKey.initial()
        self.pass_rate: dict[str, float] = {}  # device -> seconds per megapixel and pass

    def retry(self) -> None:
        self.failed = self.adapter_failed = None

    def on_loaded(self, outcome: EngineLoaded) -> None:
        super().on_loaded(outcome)
        self.adapter = None

    def on_failed(self, spec: EngineSpec, message: str) -> None:
        super().on_failed(spec, message)
        self.adapter = None

    def on_adapter_failed(self, path: Path, message: str) -> None:
        self.adapter_failed, self.error = path, message


class SinglePassState(EngineState):
    """The single-pass network: the tasks it restores are known once it is loaded."""

    def __init__(self, device: str) -> None:
        super().__init__(SINGLE_PASS, device, CACHE_BYTES // 4)

    def retry(self) -> None:
        self.failed, self.error = None, ""

    def tasks(self) -> tuple[str, ...] | None:
        """The tasks of the loaded network; None until it is loaded for the current device."""
        return self.loaded.tasks if self.ready and self.loaded is not None else None

    def unavailable(self, task: str | None, short: bool = False) -> str:
        """Why the single-pass engine cannot restore `task` (empty when it can, or may once
        loaded); `short`: a few words, for a label on the image."""
        if self.installed is None:
            return "no single-pass model" if short else "no single-pass model is installed"
        if self.failed == self.load_spec():
            return "single-pass model failed to load" if short else \
                f"the single-pass model could not be loaded: {self.error}"
        tasks = self.tasks()
        if tasks is not None and task not in tasks:
            if short:
                return f"single-pass model has no {task}"
            return (f"the single-pass model {self.installed.name} has no {task!r} task (it "
                    f"restores {', '.join(sorted(tasks)) or 'none'})")
        return ""
