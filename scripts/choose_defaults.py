"""Which K and texture strength to start from, by measurement (issue 20, item 5).

    python scripts/choose_defaults.py --clean data/eval_clean [--tasks motion-deblur,...]

For every task, the bundled base and adapter restore the evaluation photos degraded with the
held-out settings (seed 0, stored as 8-bit PNG, as `dtpm-train eval` does) at K = 1, 2, 4, 10;
texture strengths s in {0, 0.25, 0.5, 0.75, 1, 1.5} are derived from each run
(result_s = clip(initial + s (result_1 - initial)): the restorer scales the texture layer the
same way, and differs only where the s = 1 result was clipped). Each (K, s) gets its mean
PSNR and EfficientNet-Lite0 feature distance; the rule of the issue picks the default: the
lowest feature distance among the settings within 0.3 dB of the initial prediction's PSNR
(s = 0 is the initial prediction itself).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from singlepass_gain import as_stored  # noqa: E402  (what `dtpm-train eval` reads back)

from dtpm_core.engines.dtpm_restorer import Restorer  # noqa: E402
from dtpm_core.evaluation.metrics import FeatureDistanceMetric, psnr  # noqa: E402
from dtpm_core.options import TASKS  # noqa: E402
from trainer.data import degraded_photos  # noqa: E402

KS = (1, 2, 4, 10)
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
PSNR_MARGIN = 0.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clean", type=Path, nargs="+", required=True)
    parser.add_argument("--models", type=Path, default=ROOT / "resources" / "models")
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    distance = FeatureDistanceMetric()
    chosen = []
    for task in [t for t in args.tasks.split(",") if t]:
        restorer = Restorer(args.models / "base.safetensors",
                            args.models / f"{task}.safetensors", device="cpu", precision="fp32")
        scores: dict[tuple[int, float], list[tuple[float, float]]] = {}
        for _, degraded, clean in degraded_photos(args.clean, task, 0, held_out=True):
            degraded, clean = as_stored(degraded), as_stored(clean)
            out = restorer.restore(degraded, list(KS), seed=0)
            for k in KS:
                texture = out.results[k] - out.initial
                for s in STRENGTHS:
                    if s == 0.0 and k != KS[0]:
                        continue  # s = 0 is the initial prediction whatever K
                    result = as_stored(out.initial + s * texture)
                    scores.setdefault((k, s), []).append((psnr(result, clean),
                                                          distance(result, clean)))
        means = {key: tuple(np.mean(values, axis=0)) for key, values in scores.items()}
        initial_psnr = means[(KS[0], 0.0)][0]
        print(f"\n{task}: mean PSNR (dB) / EffNet-Lite0 feature distance; initial prediction "
              f"{initial_psnr:.2f} dB / {means[(KS[0], 0.0)][1]:.3f}")
        print("| K | " + " | ".join(f"s = {s:g}" for s in STRENGTHS[1:]) + " |")
        print("|---|" + "---|" * (len(STRENGTHS) - 1))
        for k in KS:
            print(f"| {k} | " + " | ".join(f"{means[(k, s)][0]:.2f} / {means[(k, s)][1]:.3f}"
                                           for s in STRENGTHS[1:]) + " |")
        allowed = {key: v for key, v in means.items() if v[0] >= initial_psnr - PSNR_MARGIN}
        best = min(allowed, key=lambda key: (allowed[key][1], -allowed[key][0]))
        chosen.append((task, best, means[best]))
    print("\nDefaults by the rule (lowest feature distance within "
          f"{PSNR_MARGIN} dB of the initial prediction):")
    print("| task | K | strength | PSNR | feature distance |")
    print("|---|---|---|---|---|")
    for task, (k, s), (p, d) in chosen:
        print(f"| {task} | {k if s else '-'} | {s:g} | {p:.2f} | {d:.3f} |")


if __name__ == "__main__":
    main()
