"""Does the diffusion part know the missing detail? The texture of one sample against the
mean texture of several samples (issue 20, item 5).

    python scripts/texture_conditional_mean.py --clean data/eval_clean [--tasks motion-deblur,...]
        [--seeds 6] [--max-side 320] [--models resources/models]

For every task, the bundled base and adapter restore the evaluation photos degraded with the
held-out settings (seed 0, as `dtpm-train eval --held-out-degradations` does) at K = 1 and 4
with several sampling seeds. A sample's texture layer (result - initial prediction) is the
part the adapter predicts from the photo, the same for every seed, plus a part that depends
only on the seed; averaging the seeds keeps the first and shrinks the second. So:

- r of one sample against the missing detail (clean - initial), as `dtpm-train eval` reports;
- r of the mean over the seeds: if the adapter knew the missing detail beyond the initial
  prediction, this would rise well above the single sample's r while the amplitude falls;
- the amplitude (RMS, 8-bit levels) of one sample's texture and of the mean's.

The initial predictor is trained with an L1 (or squared) error of its own, so it already
takes what the degraded photo says about the clean one; what is left, the residual the
diffusion part learns, has a conditional mean near zero, and a sample of it can correlate with
the truth only through that mean. Mean over the photos; fp32 on the CPU, whole images.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.engines.dtpm_restorer import Restorer  # noqa: E402
from dtpm_core.evaluation.metrics import psnr  # noqa: E402
from dtpm_core.evaluation.texture_metrics import texture_stats  # noqa: E402
from dtpm_core.options import TASKS  # noqa: E402
from trainer.data import degraded_photos  # noqa: E402

STEPS = (1, 4)


def downsize(image: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def measure(models: Path, task: str, clean: list[Path], seeds: int, max_side: int
            ) -> dict[str, float]:
    restorer = Restorer(models / "base.safetensors", models / f"{task}.safetensors",
                        device="cpu", precision="fp32")
    rows = []
    for _, degraded, target in degraded_photos(clean, task, 0, held_out=True):
        degraded, target = downsize(degraded, max_side), downsize(target, max_side)
        runs = [restorer.restore(degraded, STEPS, seed=s, tile=0) for s in range(seeds)]
        initial = runs[0].initial
        row = {"input": psnr(degraded, target), "initial": psnr(initial, target)}
        for k in STEPS:
            samples = [run.results[k] for run in runs]
            single = [texture_stats(x, initial, target) for x in samples]
            mean = texture_stats(np.mean(samples, axis=0), initial, target)
            row[f"K={k} r"] = float(np.mean([s.correlation for s in single]))
            row[f"K={k} r of the mean"] = mean.correlation
            row[f"K={k} RMS"] = float(np.mean([s.amplitude_levels for s in single]))
            row[f"K={k} RMS of the mean"] = mean.amplitude_levels
        rows.append(row)
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]} | {
        "photos": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", type=Path, nargs="+", required=True)
    parser.add_argument("--models", type=Path, default=ROOT / "resources" / "models")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--max-side", type=int, default=320)
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (the mean of one sample is the sample)")
    columns = ["input", "initial"] + [f"K={k} {m}" for k in STEPS for m in
                                      ("r", "r of the mean", "RMS", "RMS of the mean")]
    print(f"{args.seeds} seeds per photo, photos downsized to {args.max_side} px at most; "
          "PSNR dB, texture r, RMS in 8-bit levels\n")
    print("| task | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for task in (t for t in args.tasks.split(",") if t):
        started = time.perf_counter()
        means = measure(args.models, task, args.clean, args.seeds, args.max_side)
        print(f"| {task} | " + " | ".join(
            f"{means[c]:.2f}" if c in ("input", "initial") or "RMS" in c else f"{means[c]:.3f}"
            for c in columns) + f" |  <!-- {means['photos']} photos, "
            f"{time.perf_counter() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
