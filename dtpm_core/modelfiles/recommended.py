"""The K and texture strength an adapter is best started from, as measured for it.

`scripts/choose_defaults.py` measures them (the lowest EfficientNet-Lite0 feature distance
within 0.3 dB PSNR of the initial prediction, `docs/evidence/campaign/choose_defaults.md`) and
writes them into the model manifest beside the adapter's entry:

    {"task": "motion-deblur", "file": "motion-deblur.safetensors",
     "recommended": {"steps": 1, "strength": 0.25}}

`dtpm-restore` and the app start from them; an adapter without one (a user's own file) starts
from `DEFAULT_RECOMMENDATION`, the global defaults.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..files.atomic import write_text_atomic
from ..options import DEFAULT_STEPS, DEFAULT_STRENGTH, MAX_SAMPLING_STEPS, MAX_STRENGTH

RECOMMENDED_KEY = "recommended"
"""The key of an adapter entry in the manifest that holds its recommendation."""
SOURCE_KEY = "recommended_by"
"""Top-level manifest key: where the recommendations came from (script, run, evidence)."""


@dataclass(frozen=True)
class Recommendation:
    """K (DDIM steps) and texture strength to start from. At strength 0 the result is the
    initial prediction, whatever K."""

    steps: int
    strength: float

    def to_json(self) -> dict[str, int | float]:
        return {"steps": self.steps, "strength": self.strength}


DEFAULT_RECOMMENDATION = Recommendation(DEFAULT_STEPS, DEFAULT_STRENGTH)
"""Where an adapter without a measured recommendation starts."""


def parse_recommendation(value: object) -> Recommendation:
    """A manifest's `"recommended"` object; ValueError saying what is wrong (unknown keys,
    a missing one, a K or strength out of the range the product offers)."""
    if not isinstance(value, dict):
        raise ValueError(f"'{RECOMMENDED_KEY}' must be an object like "
                         '{"steps": 1, "strength": 0.25}, got ' + repr(value))
    unknown = sorted(set(value) - {"steps", "strength"})
    missing = sorted({"steps", "strength"} - set(value))
    if unknown or missing:
        raise ValueError(f"'{RECOMMENDED_KEY}' takes exactly 'steps' and 'strength'"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                         + (f"; missing: {', '.join(missing)}" if missing else ""))
    steps, strength = value["steps"], value["strength"]
    if type(steps) is not int or not 1 <= steps <= MAX_SAMPLING_STEPS:
        raise ValueError(f"recommended steps must be a whole number from 1 to "
                         f"{MAX_SAMPLING_STEPS}, got {steps!r}")
    if type(strength) not in (int, float) or not math.isfinite(strength) \
            or not 0.0 <= strength <= MAX_STRENGTH:
        raise ValueError(f"recommended strength must be a number from 0 to {MAX_STRENGTH:g}, "
                         f"got {strength!r}")
    return Recommendation(steps, float(strength))


def write_recommendations(manifest: Path, chosen: dict[str, Recommendation],
                          source: str) -> list[str]:
    """Put `chosen` (task -> recommendation) into the adapter entries of `manifest` and say
    where they came from (`source`), atomically; every other key is kept. Returns the tasks
    the manifest has no adapter for (left out)."""
    data = json.loads(manifest.read_text(encoding="utf-8"))
    adapters = data.get("adapters") if isinstance(data, dict) else None
    if not isinstance(adapters, list):
        raise ValueError(f"{manifest} has no list of adapters")
    written = set()
    for entry in adapters:
        task = entry.get("task") if isinstance(entry, dict) else None
        if task in chosen:
            entry[RECOMMENDED_KEY] = chosen[task].to_json()
            written.add(task)
    data[SOURCE_KEY] = source
    write_text_atomic(manifest, json.dumps(data, indent=2) + "\n")
    return [task for task in chosen if task not in written]
