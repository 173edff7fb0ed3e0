"""What fraction of Stage I / II training draws of t carry signal, with and without the
residual scale (DESIGN 1.1)?

A draw t ~ U{1..T} is counted as useful when the residual's signal-to-noise ratio in x_t,
alpha_bar_t * RMS(x0)^2 / (1 - alpha_bar_t), is above a threshold (0.1 by default): below it
the noisy input says almost nothing about x0 and the network learns little from the draw.

    python scripts/useful_training_draws.py --rms 0.12 0.29
"""

from __future__ import annotations

import argparse

from dtpm_core.config import DiffusionConfig
from dtpm_core.diffusion.schedule import alpha_bars


def useful_fraction(rms: float, threshold: float, config: DiffusionConfig) -> float:
    table = alpha_bars(config)[1:]  # t = 1..T
    snr = table * rms ** 2 / (1.0 - table)
    return float((snr > threshold).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rms", type=float, nargs="+", required=True,
                        help="unscaled residual RMS values in [-1, 1] units (e.g. the scale s "
                             "a training run printed)")
    parser.add_argument("--threshold", type=float, default=0.1)
    args = parser.parse_args(argv)
    config = DiffusionConfig()
    print("| residual RMS | useful draws unscaled | useful draws scaled to RMS 1 |")
    print("|---|---|---|")
    scaled = useful_fraction(1.0, args.threshold, config)
    for rms in args.rms:
        print(f"| {rms:.3f} | {useful_fraction(rms, args.threshold, config):.1%} | "
              f"{scaled:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
