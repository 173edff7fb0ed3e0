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

    --save-means FILE.json       keep every mean (exact, not rounded as in the tables)
    --from-means FILE.json       apply the rule to saved means instead of measuring again
    --write-manifest PATH        write the chosen values into a model manifest (atomically):
                                 "recommended": {"steps": K, "strength": s} per adapter, which
                                 `dtpm-restore` and the app start from (at s = 0 K is kept at 1)
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from singlepass_gain import as_stored  # noqa: E402  (what `dtpm-train eval` reads back)

from dtpm_core.modelfiles.recommended import Recommendation, write_recommendations  # noqa: E402
from dtpm_core.options import DEFAULT_TEXTURE_COLOUR, TASKS  # noqa: E402

KS = (1, 2, 4, 10)
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
PSNR_MARGIN = 0.3


EVIDENCE = "docs/evidence/campaign/choose_defaults.md"
Means = dict[tuple[int, float], tuple[float, float]]
"""(K, strength) -> (mean PSNR, mean feature distance); (KS[0], 0.0) is the initial prediction."""


def choose(means: Means, margin: float = PSNR_MARGIN) -> tuple[int, float]:
    """The rule: the lowest feature distance among the settings within `margin` dB of the
    initial prediction's PSNR (ties: the higher PSNR). (K, 0) when the initial prediction
    itself wins."""
    initial_psnr = means[(KS[0], 0.0)][0]
    allowed = {key: v for key, v in means.items() if v[0] >= initial_psnr - margin}
    return min(allowed, key=lambda key: (allowed[key][1], -allowed[key][0]))


def measure(clean: list[Path], models: Path, task: str) -> tuple[Means, int]:
    """(the means of every (K, strength) for `task`, the number of photos)."""
    from dtpm_core.engines.dtpm_restorer import Restorer
    from dtpm_core.evaluation.metrics import FeatureDistanceMetric, psnr
    from trainer.data import degraded_photos

    distance = FeatureDistanceMetric()
    restorer = Restorer(models / "base.safetensors", models / f"{task}.safetensors",
                        device="cpu", precision="fp32")
    scores: dict[tuple[int, float], list[tuple[float, float]]] = {}
    photos = 0
    for _, degraded, clean_image in degraded_photos(clean, task, 0, held_out=True):
        degraded, clean_image = as_stored(degraded), as_stored(clean_image)
        photos += 1
        out = restorer.restore(degraded, list(KS), seed=0)
        for k in KS:
            texture = out.results[k] - out.initial
            for s in STRENGTHS:
                if s == 0.0 and k != KS[0]:
                    continue  # s = 0 is the initial prediction whatever K
                result = as_stored(out.initial + s * texture)
                scores.setdefault((k, s), []).append((psnr(result, clean_image),
                                                      distance(result, clean_image)))
    return {key: tuple(float(x) for x in np.mean(v, axis=0)) for key, v in scores.items()}, \
        photos


def print_table(task: str, means: Means) -> None:
    initial = means[(KS[0], 0.0)]
    print(f"\n{task}: mean PSNR (dB) / EffNet-Lite0 feature distance; initial prediction "
          f"{initial[0]:.2f} dB / {initial[1]:.3f}")
    print("| K | " + " | ".join(f"s = {s:g}" for s in STRENGTHS[1:]) + " |")
    print("|---|" + "---|" * (len(STRENGTHS) - 1))
    for k in KS:
        print(f"| {k} | " + " | ".join(f"{means[(k, s)][0]:.2f} / {means[(k, s)][1]:.3f}"
                                       for s in STRENGTHS[1:]) + " |")


def recommendation(key: tuple[int, float]) -> Recommendation:
    """What the manifest stores for a chosen (K, s): at s = 0 K does nothing, so K = 1 (the
    cheapest, should the strength be raised)."""
    k, s = key
    return Recommendation(k if s else 1, s)


def _means_to_json(means: Means) -> list[dict]:
    return [{"steps": k, "strength": s, "psnr": p, "feature_distance": d}
            for (k, s), (p, d) in means.items()]


def _means_from_json(rows: list[dict]) -> Means:
    return {(int(r["steps"]), float(r["strength"])): (float(r["psnr"]),
                                                      float(r["feature_distance"]))
            for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clean", type=Path, nargs="+")
    parser.add_argument("--models", type=Path, default=ROOT / "resources" / "models")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--save-means", type=Path, metavar="FILE.json")
    parser.add_argument("--from-means", type=Path, metavar="FILE.json")
    parser.add_argument("--write-manifest", type=Path, metavar="PATH")
    args = parser.parse_args()
    if (args.clean is None) == (args.from_means is None):
        parser.error("give --clean (measure) or --from-means (saved means), not both")
    tasks = [t for t in args.tasks.split(",") if t]
    if args.from_means is not None:
        saved = json.loads(args.from_means.read_text(encoding="utf-8"))
        run = saved["run"]
        all_means = {t: _means_from_json(saved["tasks"][t]) for t in tasks}
    else:
        from dtpm_core.modelfiles.verified import read_adapter_info

        all_means, photos, adapters = {}, 0, {}
        for task in tasks:
            all_means[task], photos = measure(args.clean, args.models, task)
            info = read_adapter_info(args.models / f"{task}.safetensors")
            adapters[task] = f"{task}.safetensors sha256 {info.sha256[:12]}"
        run = (f"{datetime.date.today().isoformat()}, {photos} photos of "
               f"{', '.join(p.name for p in args.clean)}, held-out settings, seed 0, CPU fp32, "
               f"texture added as {DEFAULT_TEXTURE_COLOUR}; "
               f"adapters: {'; '.join(adapters.values())}")
        if args.save_means is not None:
            args.save_means.write_text(json.dumps(
                {"run": run, "tasks": {t: _means_to_json(m) for t, m in all_means.items()}},
                indent=1) + "\n", encoding="utf-8")
    chosen = {}
    for task, means in all_means.items():
        print_table(task, means)
        chosen[task] = choose(means)
    print("\nDefaults by the rule (lowest feature distance within "
          f"{PSNR_MARGIN} dB of the initial prediction):")
    print("| task | K | strength | PSNR | feature distance |")
    print("|---|---|---|---|---|")
    for task, (k, s) in chosen.items():
        p, d = all_means[task][(k, s)]
        print(f"| {task} | {k if s else '-'} | {s:g} | {p:.2f} | {d:.3f} |")
    if args.write_manifest is not None:
        source = (f"scripts/choose_defaults.py (lowest EffNet-Lite0 feature distance within "
                  f"{PSNR_MARGIN} dB PSNR of the initial prediction; {EVIDENCE}); run: {run}")
        left_out = write_recommendations(
            args.write_manifest, {t: recommendation(key) for t, key in chosen.items()}, source)
        print(f"\nwrote the recommended K and strength into {args.write_manifest}"
              + (f" (no adapter there for {', '.join(left_out)})" if left_out else ""))


if __name__ == "__main__":
    main()
