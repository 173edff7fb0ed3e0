"""PSNR of the initial prediction against the degraded input, per adapter, on both judges.

    python scripts/predictor_gain.py --base resources/models/base.safetensors \
        --task motion-deblur --clean data/eval_clean --adapters ADAPTER [ADAPTER ...]

For every adapter file: the mean PSNR (dB) of the degraded photos and of the initial
prediction P(y_d) over the evaluation photos, degraded with the held-out settings (the judge,
`dtpm-train eval --held-out-degradations`, seed 0) and with settings from the training ranges
(the in-range check). The structure estimate is what every K starts from, and it takes one
network pass, so the campaign's equal-time sweep ranks set-ups with it (issue 20).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.evaluation.metrics import psnr  # noqa: E402
from dtpm_core.modelfiles.weights import load_adapter, load_base  # noqa: E402
from trainer.data import degraded_photos  # noqa: E402


def initial_prediction(parts, degraded: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.clip(degraded, 0, 1)).permute(2, 0, 1)[None].float() * 2 - 1
    with torch.no_grad():
        y = parts.predictor(x) if parts.predictor is not None else x
    return ((y[0].permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapters", nargs="+", type=Path, required=True)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--clean", type=Path, nargs="+", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    base, base_info = load_base(args.base)
    photos = {held: list(degraded_photos(args.clean, args.task, args.seed, held_out=held))
              for held in (True, False)}
    print("| adapter | held-out: input / initial / gain | in-range: input / initial / gain |")
    print("|---|---|---|")
    for path in args.adapters:
        parts = load_adapter(path, base, base_info).eval()
        cells = []
        for held in (True, False):
            inp = [psnr(np.clip(d, 0, 1), c) for _, d, c in photos[held]]
            out = [psnr(initial_prediction(parts, d), c) for _, d, c in photos[held]]
            cells.append(f"{np.mean(inp):.2f} / {np.mean(out):.2f} / "
                         f"{np.mean(out) - np.mean(inp):+.2f}")
        print(f"| {path} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
