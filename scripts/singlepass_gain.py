"""PSNR of the single-pass engine against the degraded input, per model file and task, on
both judges.

    python scripts/singlepass_gain.py --clean data/eval_clean \
        --models resources/models/singlepass.safetensors checkpoints/singlepass.safetensors

For every file and task: the mean PSNR (dB) of the degraded photos and of the single-pass
result over the evaluation photos, degraded with the held-out settings (the judge, as
`dtpm-train eval --held-out-degradations --singlepass` scores it: seed 0, photos stored as
8-bit PNG, fp32, the engine's default experts) and with settings from the training ranges
(the in-range check). One pass per photo: the campaign ranks single-pass checkpoints with it
before the full evaluation (issue 20).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.engines.engine import SinglePassSpec, load_engine  # noqa: E402
from dtpm_core.evaluation.metrics import psnr  # noqa: E402
from dtpm_core.options import TASKS  # noqa: E402
from trainer.data import degraded_photos  # noqa: E402


def as_stored(image: np.ndarray) -> np.ndarray:
    """The image as an 8-bit PNG holds it (what `dtpm-train eval` reads back)."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", type=Path, required=True)
    parser.add_argument("--clean", type=Path, nargs="+", required=True)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    print("| task | model | held-out: input / single-pass / gain | "
          "in-range: input / single-pass / gain |")
    print("|---|---|---|---|")
    for task in tasks:
        photos = {held: [(as_stored(d), as_stored(c)) for _, d, c in
                         degraded_photos(args.clean, task, args.seed, held_out=held)]
                  for held in (True, False)}
        for path in args.models:
            engine = load_engine(SinglePassSpec(path, task, device="cpu", precision="fp32"))
            cells = []
            for held in (True, False):
                inp = [psnr(d, c) for d, c in photos[held]]
                out = [psnr(engine.restore(d).image, c) for d, c in photos[held]]
                cells.append(f"{np.mean(inp):.2f} / {np.mean(out):.2f} / "
                             f"{np.mean(out) - np.mean(inp):+.2f}")
            print(f"| {task} | {path} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
