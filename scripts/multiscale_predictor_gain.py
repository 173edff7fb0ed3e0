"""Does the initial predictor gain from seeing the photo at a coarser scale? (issue 20)

    python scripts/multiscale_predictor_gain.py --task motion-deblur --clean data/eval_clean

The shipped motion predictor sees 17 px around a pixel, the held-out blur kernels span 33-45
px. Without training anything, two test-time pyramids over the task's shipped predictor P
(antialiased bilinear halving, bilinear doubling), on the evaluation photos degraded with the
held-out settings (the judge) and with settings from the training ranges, seed 0:

- `lowband L`: P(x) with its low band (what halving keeps) replaced by the same pyramid's
  result at half size, L levels in all;
- `coarse-to-fine L`: P at half size, its result doubled plus the detail halving lost from x,
  then P again at full size (as multi-scale deblurring networks run), L levels in all.

Prints the mean PSNR gain over the degraded input (dB) of P alone and of each pyramid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.evaluation.metrics import psnr  # noqa: E402
from dtpm_core.modelfiles.weights import load_adapter, load_base  # noqa: E402
from trainer.data import degraded_photos  # noqa: E402

SMALLEST = 64
"""A pyramid stops at images smaller than this (px)."""


def halve(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True,
                         align_corners=False)


def to_size(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def lowband(predictor, x: torch.Tensor, levels: int) -> torch.Tensor:
    p = predictor(x)
    if levels == 1 or min(x.shape[-2:]) < SMALLEST:
        return p
    return p - to_size(halve(p), x) + to_size(lowband(predictor, halve(x), levels - 1), x)


def coarse_to_fine(predictor, x: torch.Tensor, levels: int) -> torch.Tensor:
    if levels == 1 or min(x.shape[-2:]) < SMALLEST:
        return predictor(x)
    small = halve(x)
    coarse = coarse_to_fine(predictor, small, levels - 1)
    return predictor(to_size(coarse, x) + (x - to_size(small, x)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True)
    parser.add_argument("--clean", type=Path, nargs="+", required=True)
    parser.add_argument("--models", type=Path, default=ROOT / "resources" / "models")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    base, base_info = load_base(args.models / "base.safetensors")
    predictor = load_adapter(args.models / f"{args.task}.safetensors", base,
                             base_info).eval().predictor
    methods = {"P alone": lambda x: predictor(x)}
    for levels in (2, 3, 4):
        methods[f"lowband {levels}"] = lambda x, n=levels: lowband(predictor, x, n)
    for levels in (2, 3):
        methods[f"coarse-to-fine {levels}"] = lambda x, n=levels: coarse_to_fine(predictor, x, n)
    print(f"task {args.task}: mean PSNR gain over the degraded input (dB)")
    print("| judge | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for held in (True, False):
        gains: dict[str, list[float]] = {name: [] for name in methods}
        for _, degraded, clean in degraded_photos(args.clean, args.task, args.seed,
                                                  held_out=held):
            h, w = (s - s % 16 for s in degraded.shape[:2])  # P's multiple, every level
            degraded, clean = np.clip(degraded[:h, :w], 0, 1), clean[:h, :w]
            x = torch.from_numpy(degraded).permute(2, 0, 1)[None].float() * 2 - 1
            base_psnr = psnr(degraded, clean)
            with torch.no_grad():
                for name, method in methods.items():
                    y = ((method(x)[0].permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)
                    gains[name].append(psnr(y, clean) - base_psnr)
        print(f"| {'held-out' if held else 'in-range'} | "
              + " | ".join(f"{np.mean(g):+.2f}" for g in gains.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
