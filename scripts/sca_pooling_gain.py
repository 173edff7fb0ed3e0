"""Does the channel attention's global pooling hurt at inference (issue 20, item 3)?

    python scripts/sca_pooling_gain.py --clean data/eval_clean \
        --adapters resources/models/motion-deblur.safetensors ...

Every NAFNet block's simplified channel attention pools over the whole input: during training
that is a crop (64 or 128 px), at inference a whole photo or a 512 px tile, so the statistics
differ (TLC, Chu et al. 2022). This script swaps the initial predictor's pooling for the
TLC-style local equivalent, a mean over a clamped window of radius `factor` x the training
crop (scaled to each block's resolution; a map that fits in the window gets the global mean,
exactly what training saw), and reports the initial prediction's mean PSNR over the photos
degraded with the held-out settings (seed 0) with both poolings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from predictor_gain import initial_prediction  # noqa: E402

from dtpm_core.evaluation.metrics import psnr  # noqa: E402
from dtpm_core.modelfiles.weights import load_adapter, load_base  # noqa: E402
from dtpm_core.networks.layers import NAFBlock  # noqa: E402
from trainer.data import degraded_photos  # noqa: E402

PROBE_SIZE = 256
"""Input side used once to find each block's resolution."""


def _window_sums(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sums of `x` over [i - radius, i + radius] along `dim` (2 or 3), clamped to the map,
    from a cumulative sum: O(size) whatever the radius."""
    s = torch.cumsum(x, dim)
    if dim == 3:
        s = F.pad(F.pad(s, (1, 0)), (radius, radius, 0, 0), mode="replicate")
        return s[..., 2 * radius + 1:] - s[..., : -(2 * radius + 1)]
    s = F.pad(F.pad(s, (0, 0, 1, 0)), (0, 0, radius, radius), mode="replicate")
    return s[..., 2 * radius + 1:, :] - s[..., : -(2 * radius + 1), :]


def window_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean of (B, C, H, W) over the clamped (2 radius + 1)^2 window of every pixel."""
    xf = x.float()
    total = _window_sums(_window_sums(xf, radius, 2), radius, 3)
    ones = torch.ones_like(xf[:, :1])
    count = _window_sums(_window_sums(ones, radius, 2), radius, 3)
    return (total / count).to(x.dtype)


class LocalPool(nn.Module):
    """Global mean for maps that fit the window, else the clamped window mean."""

    def __init__(self) -> None:
        super().__init__()
        self.radius = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if max(x.shape[-2:]) <= self.radius + 1:
            return x.mean(dim=(2, 3), keepdim=True)
        return window_mean(x, self.radius)


def use_local_pooling(net: nn.Module, crop: int, factor: float) -> None:
    pools: list[tuple[LocalPool, list[int]]] = []
    for block in net.modules():
        if isinstance(block, NAFBlock):
            pool, width = LocalPool(), []
            block.sca[0] = pool
            block.register_forward_pre_hook(
                lambda module, args, width=width: width.append(args[0].shape[-1]))
            pools.append((pool, width))
    with torch.no_grad():
        net(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE))
    for pool, width in pools:
        pool.radius = max(1, round(factor * crop * width[0] / PROBE_SIZE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapters", nargs="+", type=Path, required=True)
    parser.add_argument("--base", type=Path, default=ROOT / "resources/models/base.safetensors")
    parser.add_argument("--clean", type=Path, nargs="+", required=True)
    parser.add_argument("--factors", default="0.75,1.0",
                        help="window radius in training crops (TLC uses 0.75: a 1.5 x crop window)")
    args = parser.parse_args()
    factors = [float(f) for f in args.factors.split(",")]
    base, info = load_base(args.base)
    print("| task | training crop | input | global pooling | "
          + " | ".join(f"local, radius {f} x crop" for f in factors) + " |")
    print("|---|---|---|---|" + "---|" * len(factors))
    for path in args.adapters:
        parts = load_adapter(path, base, info).eval()
        task, crop = parts.info.task, int(parts.info.training["config"]["data"]["crop"])
        photos = list(degraded_photos(args.clean, task, 0, held_out=True))
        inp = np.mean([psnr(np.clip(d, 0, 1), c) for _, d, c in photos])
        glob = np.mean([psnr(initial_prediction(parts, d), c) for _, d, c in photos])
        cells = []
        for factor in factors:
            local = load_adapter(path, base, info).eval()
            use_local_pooling(local.predictor, crop, factor)
            value = np.mean([psnr(initial_prediction(local, d), c) for _, d, c in photos])
            cells.append(f"{value:.2f} ({value - glob:+.2f})")
        print(f"| {task} | {crop} px | {inp:.2f} | {glob:.2f} | {' | '.join(cells)} |",
              flush=True)


if __name__ == "__main__":
    main()
