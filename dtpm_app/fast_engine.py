"""The Fast engine on the app's side: the single-pass network's jobs, what comes back from
them, and the controller's record of that network (DESIGN 6).

No Qt and no model maths here. The worker runs the jobs with
`dtpm_core.singlepass.restore.SinglePassRestorer` (one network pass per tile, cancellable
like DTPM); the controller keeps a `FastModel`: which file is installed, which one the worker
has loaded and for which device, the tasks it restores, its cached results (per image, task,
tile and ensemble choice) and its points on the trade-off plot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .state import CACHE_BYTES, PREVIEW_SIDE, ArrayCache

DTPM, FAST = "dtpm", "fast"
ENGINE_LABELS = {DTPM: "DTPM", FAST: "Fast (single-pass)"}
"""How the window names the engines (keys: dtpm_app.settings.ENGINE_CHOICES)."""
# ----------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class LoadFast:
    """Load the single-pass network on a device (the DTPM model stays loaded)."""

    path: Path
    device: str


@dataclass(frozen=True)
class RestoreFast:
    """Restore the full image in one pass per tile with the network's t_mat for `task`
    (`ensemble`: eight passes per tile, the flip/rotate variants averaged)."""

    key: tuple
    image: np.ndarray
    task: str
    tile: int
    ensemble: bool


@dataclass(frozen=True)
class FastPointJob:
    """Restore the trade-off preview in one pass and measure it against the same target as
    the DTPM curve: the reference, or else the DTPM initial prediction of the preview. It
    stays one pass whether or not the ensemble is on: the plot shows the network itself."""

    key: tuple
    image: np.ndarray
    target: np.ndarray | None  # the reference at full size, or None
    task: str
    side: int = PREVIEW_SIDE  # longest side of the preview


# ----------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class FastLoaded:
    device: str
    sha256: str
    path: Path
    tasks: dict[str, int] = field(default_factory=dict)  # task -> t_mat


@dataclass(frozen=True)
class FastRestored:
    key: tuple
    task: str
    t_mat: int
    result: np.ndarray
    seconds: float
    tile: int
    notes: tuple[str, ...]
    ensemble: bool


@dataclass(frozen=True)
class FastPoint:
    key: tuple
    psnr: float
    lpips: float
    backbone: str
    side: int = PREVIEW_SIDE  # longest side of the preview it was measured on


# ----------------------------------------------------------------------------- state


class FastModel:
    """What the controller knows about the single-pass network.

    `path` is the installed file (`Catalog.singlepass`); `loaded` what the worker holds, for
    the device `loaded_for` asked for. A load that failed is not retried for the same file
    and device until `retry()`.
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self.loaded: FastLoaded | None = None
        self.loaded_for: tuple[Path, str] | None = None
        self.failed: tuple[Path, str] | None = None
        self.error = ""
        self.results = ArrayCache(CACHE_BYTES // 4)
        self.points: dict[tuple, FastPoint] = {}

    @property
    def installed(self) -> bool:
        return self.path is not None

    def set_installed(self, path: Path | None) -> None:
        """The catalog changed: remember the file; a new file may be tried again."""
        if path != self.path:
            self.path, self.error = path, ""
        self.failed = None

    def retry(self) -> None:
        self.failed, self.error = None, ""

    def ready(self, device: str) -> bool:
        """The installed file is loaded for `device`."""
        return (self.loaded is not None and self.path is not None
                and self.loaded_for == (self.path, device))

    def load_request(self, device: str) -> LoadFast | None:
        """The load the worker needs, or None (loaded, failed, or nothing installed)."""
        if self.path is None or self.ready(device) or self.failed == (self.path, device):
            return None
        return LoadFast(self.path, device)

    def tasks(self, device: str) -> dict[str, int] | None:
        """Task -> t_mat of the loaded network; None until it is loaded."""
        return dict(self.loaded.tasks) if self.ready(device) and self.loaded else None

    def key(self, image_id: int, task: str, tile: int, ensemble: bool,
            device: str) -> tuple | None:
        """Cache key of a full-size result (one pass or the 8-way ensemble); None while the
        network cannot restore `task`."""
        tasks = self.tasks(device)
        if tasks is None or task not in tasks or self.loaded is None:
            return None
        return (FAST, image_id, self.loaded.sha256, task, tile, ensemble)

    def unavailable(self, task: str | None, device: str, short: bool = False) -> str:
        """Why the Fast engine cannot restore `task` (empty when it can, or may once loaded);
        `short`: a few words, for a label on the image."""
        if self.path is None:
            return "no single-pass model" if short else "no single-pass model is installed"
        if self.failed == (self.path, device):
            return "single-pass model failed to load" if short else \
                f"the single-pass model could not be loaded: {self.error}"
        tasks = self.tasks(device)
        if tasks is not None and task not in tasks:
            if short:
                return f"single-pass model has no {task}"
            return (f"the single-pass model {self.path.name} has no {task!r} task (it "
                    f"restores {', '.join(sorted(tasks)) or 'none'})")
        return ""

    def on_loaded(self, outcome: FastLoaded, request: LoadFast) -> None:
        self.loaded, self.loaded_for = outcome, (request.path, request.device)
        self.failed, self.error = None, ""

    def on_failed(self, request: LoadFast, message: str) -> None:
        self.loaded, self.loaded_for = None, None
        self.failed, self.error = (request.path, request.device), message
