"""What the single-pass network scored on held-out images, per task, so that the task list
warns where it is known to make photos worse, as it does for DTPM.

The single-pass weight file stores no evaluation of its own (its "metrics" are empty in the
shipped file). Its held-out scores are the single-pass rows of the evaluation that `dtpm-train
export --metrics` stores in each DTPM task adapter (`dtpm-train eval --singlepass FILE` runs
it beside DTPM on the same images and degradations; the model card's table is made from the
same rows). Those rows are named "single-pass", or "fast" in evaluations written before the
engine had one name. A single-pass file that does store "eval" rows with a "task" column has
its own rows used instead.

Limit: the adapter's rows do not record which single-pass file was evaluated; they describe
the network shipped beside the adapters (`resources/models/singlepass.safetensors` for the
bundled ones). The task list's tooltip names the file the score was read from.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dtpm_core.options import SINGLE_PASS

from .model_store import header_metadata

SINGLE_PASS_METHODS = (SINGLE_PASS, "fast")
"""Names of the single-pass rows in an evaluation (the second: evaluations of older
versions)."""


@dataclass(frozen=True)
class SinglePassScore:
    """Mean held-out PSNR (dB) of the single-pass result and of the degraded input, over the
    same `images`; `source` is the file the evaluation was read from."""

    task: str
    images: int
    input_psnr: float
    psnr: float
    source: str

    @property
    def below_input(self) -> bool:
        return self.psnr < self.input_psnr

    def note(self) -> str:
        return (f"{self.psnr:.1f} dB on {self.images} held-out images against "
                f"{self.input_psnr:.1f} dB for the degraded input")


def _psnr(row: dict) -> float | None:
    try:
        value = float(row["psnr"])
    except (KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def score_from_rows(rows: Any, task: str, source: str) -> SinglePassScore | None:
    """The single-pass score in evaluation `rows` (one per image and method), paired image by
    image with the input rows; None without both."""
    if not isinstance(rows, list):
        return None
    by_image: dict[object, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if not isinstance(row, dict) or row.get("task", task) != task:
            continue
        method, value = str(row.get("method", "")), _psnr(row)
        if value is None:
            continue
        if method == "input":
            by_image[row.get("image")]["input"] = value
        elif method in SINGLE_PASS_METHODS:
            by_image[row.get("image")]["single"] = value
    pairs = [(v["input"], v["single"]) for v in by_image.values() if len(v) == 2]
    if not pairs:
        return None
    return SinglePassScore(task, len(pairs), sum(p[0] for p in pairs) / len(pairs),
                           sum(p[1] for p in pairs) / len(pairs), source)


def _metrics(path: Path | None) -> dict:
    try:
        metrics = json.loads(header_metadata(path).get("metrics") or "{}")
    except ValueError:
        return {}
    return metrics if isinstance(metrics, dict) else {}


def single_pass_scores(singlepass: Path | None, adapters: dict) -> dict[str, SinglePassScore]:
    """Task -> held-out score of the single-pass network (see the module docstring);
    `adapters` maps tasks to catalog entries (with `.path`). Reads file headers only."""
    if singlepass is None:
        return {}
    scores: dict[str, SinglePassScore] = {}
    own = _metrics(singlepass).get("eval")
    if isinstance(own, list):
        for task in {r.get("task") for r in own if isinstance(r, dict)} - {None}:
            score = score_from_rows(own, str(task), Path(singlepass).name)
            if score is not None:
                scores[str(task)] = score
    for task, entry in adapters.items():
        if task not in scores:
            score = score_from_rows(_metrics(entry.path).get("eval"), task, entry.path.name)
            if score is not None:
                scores[task] = score
    return scores
