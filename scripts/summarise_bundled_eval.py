"""Collect the evaluations of the bundled models into the README's evidence.

Reads `EVAL/<task>/eval.csv` (written by `dtpm-train eval --singlepass ...`, see
scripts/train_bundled_models.sh) and `EVAL/<task>/texture.csv` (scripts/texture_amplitude.py)
and writes into OUT:
- `bundled_eval.md`: a table of PSNR / SSIM / EffNet-Lite0 feature distance per task for the
  degraded input, the initial prediction, DTPM at each K and the single-pass engine, then the bar
  item by item with its margin;
- `tradeoff_all.png`: PSNR gain over the input and the feature distance against K, a line
  per task;
- `examples/<task>.jpg`: the before/after strip of one held-out image per task (if the
  evaluation saved strips in `EVAL/<task>/examples/`).

With `--singlepass-eval DIR`, the single-pass rows come from `DIR/<task>/eval.csv` instead: an
evaluation of the shipped single-pass file on the same photos and settings (`dtpm-train eval
... --steps 1 --singlepass FILE`), for a single-pass network newer than the adapters'
evaluations. Its input rows must match the adapter evaluation's (the same degraded photos).

    python scripts/summarise_bundled_eval.py eval docs/evidence/dtpm --example coffee_1.png
"""

from __future__ import annotations

import argparse
import csv
import io
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from dtpm_core.files.atomic import write_bytes_atomic, write_text_atomic
from dtpm_core.options import SINGLE_PASS, TASKS

TASKS = list(TASKS)
METRICS = ("psnr", "ssim", "lpips", "fd_effnet")
BAR_KS = (1, 4, 10, 50)


OLD_METHOD_NAMES = {"fast": SINGLE_PASS}
"""Evaluations written before the engine had one name call its row "fast"."""


TEXTURE = ("texture_r", "specks_per_mp")
"""Texture columns of evaluations written since issue 20 (absent from older ones)."""


def read_means(csv_path: Path) -> dict[str, dict[str, float]]:
    """method -> metric -> mean over the images (and "specks_per_mp_max", the worst image)."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(csv_path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            method = OLD_METHOD_NAMES.get(row["method"], row["method"])
            for metric in (*METRICS, *(t for t in TEXTURE if t in row)):
                values[method][metric].append(float(row[metric]))
    means = {m: {k: float(np.mean(v)) for k, v in d.items()} for m, d in values.items()}
    for method, d in values.items():
        if "specks_per_mp" in d:
            means[method]["specks_per_mp_max"] = float(np.max(d["specks_per_mp"]))
    return means


def read_texture(csv_path: Path) -> dict[int, tuple[float, float]]:
    """K -> (amplitude ratio, correlation) of the generated vs the missing texture layer."""
    if not csv_path.is_file():
        return {}
    with open(csv_path, newline="", encoding="utf-8") as handle:
        return {int(r["steps"]): (float(r["amplitude_ratio"]), float(r["correlation"]))
                for r in csv.DictReader(handle)}


def bar_items(means: dict[str, dict[str, float]], texture: dict[int, tuple[float, float]]
              ) -> list[tuple[str, bool | None, str]]:
    """Issue 20's bar, item by item: (what, met (None = not measured), the numbers)."""
    p = {m: v["psnr"] for m, v in means.items()}
    fd = {m: v["fd_effnet"] for m, v in means.items()}
    worst = min(BAR_KS, key=lambda k: p[f"K={k}"] - p["input"])
    items = [
        ("initial >= input + 1 dB", p["initial"] >= p["input"] + 1.0,
         f"{p['initial'] - p['input']:+.2f} dB"),
        ("K=4 >= input + 1 dB", p["K=4"] >= p["input"] + 1.0,
         f"{p['K=4'] - p['input']:+.2f} dB"),
        ("every K beats the input", p[f"K={worst}"] > p["input"],
         f"worst K={worst}: {p[f'K={worst}'] - p['input']:+.2f} dB"),
        ("K=4 within 0.3 dB of the initial", p["K=4"] >= p["initial"] - 0.3,
         f"{p['K=4'] - p['initial']:+.2f} dB"),
    ]
    corr = means["K=4"].get("texture_r", texture.get(4, (float("nan"), float("nan")))[1])
    items.append(("texture r > 0.05 at K=4", None if np.isnan(corr) else corr > 0.05,
                  f"r = {corr:.3f}"))
    specks = [means[f"K={k}"].get("specks_per_mp_max", float("nan")) for k in BAR_KS]
    worst_specks = max(specks)
    items.append(("at most 50 specks / MP at every K",
                  None if np.isnan(worst_specks) else worst_specks <= 50,
                  "evaluated before specks were counted" if np.isnan(worst_specks)
                  else f"worst image {worst_specks:.0f}"))
    items.append(("feature distance falls K=1 -> 10", fd["K=10"] < fd["K=1"],
                  f"{fd['K=1']:.3f} -> {fd['K=10']:.3f}"))
    if SINGLE_PASS in means:
        items.append(("single-pass beats the input", p[SINGLE_PASS] > p["input"],
                      f"{p[SINGLE_PASS] - p['input']:+.2f} dB"))
    return items


def _mark(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "**missed**")


def table(results: dict[str, dict[str, dict[str, float]]], methods: list[str],
          textures: dict[str, dict[int, tuple[float, float]]]) -> str:
    lines = ["PSNR (dB) / SSIM / EffNet-Lite0 feature distance (lower is better), mean over "
             "the held-out images:", "",
             "| task | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for task, means in results.items():
        cells = [f"{means[m]['psnr']:.2f} / {means[m]['ssim']:.3f} / {means[m]['fd_effnet']:.3f}"
                 if m in means else "-" for m in methods]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    items = {task: bar_items(means, textures.get(task, {})) for task, means in results.items()}
    names = [name for name, _, _ in next(iter(items.values()))]
    lines += ["", "The bar, item by item (margin in brackets):", "",
              "| task | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for task, task_items in items.items():
        lines.append(f"| {task} | " + " | ".join(f"{_mark(met)} ({numbers})"
                                                  for _, met, numbers in task_items) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, dict[str, float]]], ks: list[int]) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    fig = Figure(figsize=(10.0, 4.0), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    gain_axis, lpips_axis = fig.subplots(1, 2)
    for task, means in results.items():
        gains = [means[f"K={k}"]["psnr"] - means["input"]["psnr"] for k in ks]
        line, = gain_axis.plot(ks, gains, marker="o", label=task)
        gain_axis.plot([ks[-1] * 1.6], [means["initial"]["psnr"] - means["input"]["psnr"]],
                       marker="D", color=line.get_color())
        lpips_axis.plot(ks, [means[f"K={k}"]["fd_effnet"] for k in ks], marker="s", label=task)
        if SINGLE_PASS in means:
            gain_axis.plot([ks[0] / 1.6], [means[SINGLE_PASS]["psnr"] - means["input"]["psnr"]],
                           marker="*", markersize=10, color=line.get_color())
            lpips_axis.plot([ks[0] / 1.6], [means[SINGLE_PASS]["fd_effnet"]], marker="*",
                            markersize=10, color=line.get_color())
    gain_axis.axhline(0.0, color="black", linewidth=1.0)
    gain_axis.set_ylabel("PSNR gain over the degraded input (dB)")
    gain_axis.set_title("PSNR against K (diamonds: initial; stars: single-pass)")
    lpips_axis.set_ylabel("EffNet-Lite0 feature distance (lower is better)")
    lpips_axis.set_title("Feature distance against K (stars: single-pass)")
    for axis in (gain_axis, lpips_axis):
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(FixedLocator(ks))
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xticklabels([str(k) for k in ks])
        axis.set_xlabel("sampling steps K (log scale)")
        axis.grid(True, alpha=0.3)
    lpips_axis.legend(fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--example", default="chelsea_1.png",
                        help="which held-out image's strip to keep per task")
    parser.add_argument("--singlepass-eval", type=Path, metavar="DIR",
                        help="take the single-pass rows from DIR/<task>/eval.csv")
    args = parser.parse_args(argv)

    results = {task: read_means(args.eval_dir / task / "eval.csv") for task in TASKS
               if (args.eval_dir / task / "eval.csv").is_file()}
    if not results:
        raise SystemExit(f"no {args.eval_dir}/<task>/eval.csv found")
    if args.singlepass_eval is not None:
        for task, means in results.items():
            means.pop(SINGLE_PASS, None)
            path = args.singlepass_eval / task / "eval.csv"
            if path.is_file():
                newer = read_means(path)
                if abs(newer["input"]["psnr"] - means["input"]["psnr"]) > 1e-6:
                    raise SystemExit(f"{path} scored other degraded photos than "
                                     f"{args.eval_dir / task / 'eval.csv'} (input PSNR "
                                     f"{newer['input']['psnr']:.4f} vs "
                                     f"{means['input']['psnr']:.4f})")
                means[SINGLE_PASS] = newer[SINGLE_PASS]
    textures = {task: read_texture(args.eval_dir / task / "texture.csv") for task in results}
    ks = sorted({int(m[2:]) for means in results.values() for m in means if m.startswith("K=")})
    methods = ["input", "initial", *(f"K={k}" for k in ks)]
    if any(SINGLE_PASS in means for means in results.values()):
        methods.append(SINGLE_PASS)
    write_text_atomic(args.out / "bundled_eval.md", table(results, methods, textures))
    write_bytes_atomic(args.out / "tradeoff_all.png", plot(results, ks))
    for task in results:
        strip = args.eval_dir / task / "examples" / args.example
        if strip.is_file():
            buffer = io.BytesIO()
            Image.open(strip).convert("RGB").save(buffer, "JPEG", quality=90)
            write_bytes_atomic(args.out / "examples" / f"{task}.jpg", buffer.getvalue())
    print((args.out / "bundled_eval.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
