"""What an adapter scored on held-out images, as stored in its file by `dtpm-train export
--metrics eval.csv`, and what that says to a user choosing K.

`dtpm-train eval` writes one row per image and method (input, initial, K=k) with PSNR, SSIM,
MAE and LPIPS; the export keeps those rows in the adapter's metadata under "eval". This module
averages them per method and turns them into a short note for the step control: a K whose
held-out PSNR is far below the degraded input's is flagged, so nobody mistakes a model's known
weakness (an under-trained model gives noise at K = 1) for a fault of their photo.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

NOISE_MARGIN_DB = 3.0
"""A K whose held-out PSNR is this far below the input's gets a warning."""


@dataclass(frozen=True)
class HeldOutScores:
    """Mean held-out PSNR (dB) of the degraded input, the initial prediction and each K."""

    images: int
    input_psnr: float
    initial_psnr: float
    psnr_at: dict[int, float]

    def step_note(self, k: int) -> tuple[str, str]:
        """(level, text) about K for the step control: level "warning" when the model is known
        to fail at this K, "info" when its score is known, ("", "") when K was not evaluated."""
        if k not in self.psnr_at:
            return "", ""
        score, base = self.psnr_at[k], self.input_psnr
        if score < base - NOISE_MARGIN_DB:
            return "warning", (f"K={k} scored {score:.1f} dB on held-out images against "
                               f"{base:.1f} dB for the degraded input: expect noise, use more "
                               "steps")
        return "info", (f"K={k}: {score:.1f} dB on held-out images (degraded input "
                        f"{base:.1f} dB)")


def held_out_scores(metrics: dict[str, Any] | None) -> HeldOutScores | None:
    """The scores in an adapter's metadata (`AdapterInfo.metrics`), or None when it has no
    usable evaluation."""
    rows = (metrics or {}).get("eval")
    if not isinstance(rows, list):
        return None
    values: dict[str, list[float]] = defaultdict(list)
    images = set()
    for row in rows:
        try:
            method, psnr = str(row["method"]), float(row["psnr"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(psnr):
            values[method].append(psnr)
            images.add(row.get("image"))
    if not values.get("input"):
        return None
    mean = {method: sum(v) / len(v) for method, v in values.items()}
    psnr_at = {}
    for method, value in mean.items():
        if method.startswith("K=") and method[2:].isdigit():
            psnr_at[int(method[2:])] = value
    return HeldOutScores(images=len(images), input_psnr=mean["input"],
                         initial_psnr=mean.get("initial", math.nan), psnr_at=psnr_at)
