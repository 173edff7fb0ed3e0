"""Persistent app settings: a JSON file in the platformdirs config folder.

`DTPM_SETTINGS_DIR` overrides the folder (tests, portable installs). The file is written
atomically; a missing, damaged or partly wrong file falls back to defaults field by field, so a
bad value never stops the app from starting. Files written by older versions still load: their
engine "fast" is the single-pass engine (`OLD_NAMES`), `fast_ensemble` is `ensemble`, and a K
or strength they kept (one K and strength for every task) that is not the old default becomes
the person's own choice for the task they had open (`task_values`, dtpm_app.task_values).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from platformdirs import user_config_dir

from dtpm_core.files.atomic import write_text_atomic
from dtpm_core.modelfiles.catalog import APP_NAME
from dtpm_core.options import (
    BACKEND_CHOICES,
    DEFAULT_STEPS,
    DEFAULT_STRENGTH,
    DEFAULT_TILE,
    DEVICE_CHOICES,
    DTPM,
    ENGINES,
    MAX_SAMPLING_STEPS,
    MAX_STRENGTH,
    PRECISION_CHOICES,
    SINGLE_PASS,
)

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
MAX_STEPS = MAX_SAMPLING_STEPS
"""Largest K offered."""
STRENGTH_DECIMALS = 2
"""The texture strength is offered and stored to 0.01 (measured recommendations are such as
0.25)."""
MAX_RECENT = 10
SIDE_CHOICES = ("input", "initial", "result", DTPM, SINGLE_PASS, "reference")
"""What one side of the split view can show (see dtpm_app.widgets.compare)."""
OLD_NAMES = {"fast": SINGLE_PASS}
"""Engine and side ids of older versions -> today's."""
OLD_KEYS = {"fast_ensemble": "ensemble"}
"""Settings keys of older versions -> today's."""


def settings_dir() -> Path:
    """Where settings.json lives (DTPM_SETTINGS_DIR overrides the platformdirs location)."""
    override = os.environ.get("DTPM_SETTINGS_DIR")
    if override:
        return Path(override)
    return Path(user_config_dir(APP_NAME, appauthor=False))


@dataclass
class AppSettings:
    """Everything the app remembers between runs."""

    device: str = "auto"
    precision: str = "auto"  # read at start-up, for both engines (dtpm_core.backends.device)
    backend: str = "auto"  # read at start-up, for both engines (dtpm_core.backends)
    engine: str = DTPM  # one of dtpm_core.options.ENGINES
    ensemble: bool = False  # single-pass engine: average the 8 flip/rotate variants
    tile: int = DEFAULT_TILE  # pixels, 0 = whole image at once
    # K and DTPM texture strength (scale of the texture layer, 1 = as trained) of a task whose
    # adapter has no measured recommendation and that the person set nothing for
    default_k: int = DEFAULT_STEPS
    seed: int = 0
    strength: float = DEFAULT_STRENGTH
    # the person's own K and strength per task: {task: {"steps": K, "strength": s}}, each key
    # only where set (they win over the task's recommendation; dtpm_app.task_values)
    task_values: dict[str, dict] = field(default_factory=dict)
    task: str = ""
    output_dir: str = ""
    output_dir_derived: str = ""  # the batch output folder the app derived from an input
    output_format: str = "png8"  # a key of dtpm_app.formats.OUTPUT_CHOICES
    quality: int = 92  # JPEG / WebP quality
    reference_dir: str = ""  # batch: references matched by file name
    recent_files: list[str] = field(default_factory=list)
    last_dir: str = ""
    left_side: str = "input"
    right_side: str = "result"
    geometry: str = ""  # QMainWindow.saveGeometry(), base64
    window_state: str = ""  # QMainWindow.saveState(), base64

    def add_recent(self, path: str | Path) -> None:
        """Put `path` first in the recent files (absolute: they must open from anywhere),
        without duplicates."""
        text = str(Path(path).absolute())
        self.recent_files = [text] + [p for p in self.recent_files if p != text]
        del self.recent_files[MAX_RECENT:]

    def validated(self) -> AppSettings:
        """A copy with out-of-range values replaced by defaults."""
        # relative paths (stored by older versions) depended on the folder the app started in
        fixed = dataclasses.replace(self, recent_files=[p for p in self.recent_files
                                                        if Path(p).is_absolute()])
        defaults = AppSettings()
        if fixed.device not in DEVICE_CHOICES:
            fixed.device = defaults.device
        if fixed.precision not in PRECISION_CHOICES:
            fixed.precision = defaults.precision
        if fixed.backend not in BACKEND_CHOICES:
            fixed.backend = defaults.backend
        if not 1 <= fixed.default_k <= MAX_STEPS:
            fixed.default_k = defaults.default_k
        if fixed.tile != 0 and not 64 <= fixed.tile <= 8192:
            fixed.tile = defaults.tile
        if not 0 <= fixed.seed <= 2**31 - 1:
            fixed.seed = defaults.seed
        if not 0.0 <= fixed.strength <= MAX_STRENGTH:  # NaN too
            fixed.strength = defaults.strength
        fixed.strength = round(fixed.strength, STRENGTH_DECIMALS)  # what the spin box shows
        fixed.task_values = _valid_task_values(fixed.task_values)
        if not 1 <= fixed.quality <= 100:
            fixed.quality = defaults.quality
        if fixed.engine not in ENGINES:
            fixed.engine = defaults.engine
        if not isinstance(fixed.ensemble, bool):
            fixed.ensemble = defaults.ensemble
        if fixed.left_side not in SIDE_CHOICES:
            fixed.left_side = defaults.left_side
        if fixed.right_side not in SIDE_CHOICES:
            fixed.right_side = defaults.right_side
        return fixed


def _valid_task_values(values: dict) -> dict[str, dict]:
    """The entries of `task_values` that are valid (K and strength in range), others left out
    with a log line."""
    valid: dict[str, dict] = {}
    for task, entry in values.items():
        if not isinstance(entry, dict) or not task or not isinstance(task, str):
            log.warning("settings: ignoring task_values[%r]=%r", task, entry)
            continue
        own: dict = {}
        for key, value in entry.items():
            if key == "steps" and type(value) is int and 1 <= value <= MAX_STEPS:
                own[key] = value
            elif key == "strength" and type(value) in (int, float) and math.isfinite(value) \
                    and 0.0 <= value <= MAX_STRENGTH:
                own[key] = round(float(value), STRENGTH_DECIMALS)
            else:
                log.warning("settings: ignoring task_values[%r][%r]=%r", task, key, value)
        if own:
            valid[task] = own
    return valid


def load_settings(folder: Path | None = None) -> AppSettings:
    """Read the settings file; defaults for anything missing or of the wrong type."""
    path = (folder or settings_dir()) / SETTINGS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AppSettings()
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable settings file %s: %s", path, exc)
        return AppSettings()
    if not isinstance(raw, dict):
        log.warning("ignoring settings file %s: not a JSON object", path)
        return AppSettings()
    raw = _migrated(raw)
    settings = AppSettings()
    for f in dataclasses.fields(AppSettings):
        if f.name not in raw:
            continue
        value, default = raw[f.name], getattr(settings, f.name)
        if isinstance(default, list):
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif type(default) is float and type(value) is int:  # "strength": 1 written by hand
            value, ok = float(value), True
        else:
            ok = type(value) is type(default)
        if ok:
            setattr(settings, f.name, value)
        else:
            log.warning("settings %s: ignoring %s=%r (expected %s)", path, f.name, value,
                        type(default).__name__)
    return settings.validated()


def _migrated(raw: dict) -> dict:
    """Older keys and engine names renamed (a key of today wins over its old name)."""
    raw = {OLD_KEYS.get(key, key): value for key, value in
           sorted(raw.items(), key=lambda item: item[0] not in OLD_KEYS)}
    for key in ("engine", "left_side", "right_side"):
        value = raw.get(key)
        if isinstance(value, str):
            raw[key] = OLD_NAMES.get(value, value)
    if "task_values" not in raw and isinstance(raw.get("task"), str) and raw["task"]:
        # one K and strength for every task, last used: where not the old defaults, the
        # person's own for the task they had open (validated with the rest)
        kept = (("steps", "default_k", DEFAULT_STEPS), ("strength", "strength",
                                                         DEFAULT_STRENGTH))
        own = {key: raw[name] for key, name, default in kept
               if name in raw and raw[name] != default}
        raw["task_values"] = {raw["task"]: own} if own else {}
    return raw


def save_settings(settings: AppSettings, folder: Path | None = None) -> Path:
    """Write the settings atomically (temporary file, then rename); returns the file path."""
    folder = folder or settings_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SETTINGS_FILE
    text = json.dumps(dataclasses.asdict(settings), indent=2, sort_keys=True)
    write_text_atomic(path, text)
    return path
