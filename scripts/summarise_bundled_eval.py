"""Collect the evaluations of the bundled models into the README's evidence.

Reads `EVAL/<task>/eval.csv` (written by `dtpm-train eval`, see
scripts/train_bundled_models.sh) and writes into OUT:
- `bundled_eval.md`: one table, a row per task, PSNR / SSIM / LPIPS of the degraded input, the
  initial prediction and DTPM at each K, and whether the task meets the bar (K = 4 beats the
  input in PSNR; LPIPS lower at K = 10 than at K = 1);
- `tradeoff_all.png`: PSNR gain over the input and LPIPS against K, a line per task;
- `examples/<task>.jpg`: the before/after strip of one held-out image per task (if the
  evaluation saved strips in `EVAL/<task>/examples/`).

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

from dtpm_core.atomic import write_bytes_atomic, write_text_atomic

TASKS = ["motion-deblur", "defocus-deblur", "derain-dehaze", "desnow", "raindrop"]
METRICS = ("psnr", "ssim", "lpips")


def read_means(csv_path: Path) -> dict[str, dict[str, float]]:
    """method -> metric -> mean over the images."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(csv_path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for metric in METRICS:
                values[row["method"]][metric].append(float(row[metric]))
    return {m: {k: float(np.mean(v)) for k, v in d.items()} for m, d in values.items()}


def bar_verdict(means: dict[str, dict[str, float]]) -> str:
    psnr_ok = means["K=4"]["psnr"] > means["input"]["psnr"]
    lpips_ok = means["K=10"]["lpips"] < means["K=1"]["lpips"]
    if psnr_ok and lpips_ok:
        return "met"
    return "missed: " + ", ".join(
        reason for reason, ok in (("K=4 below the input", psnr_ok),
                                  ("LPIPS not lower at K=10", lpips_ok)) if not ok)


def table(results: dict[str, dict[str, dict[str, float]]], methods: list[str]) -> str:
    lines = ["| task | " + " | ".join(methods) + " | bar |",
             "|---|" + "---|" * (len(methods) + 1)]
    for task, means in results.items():
        cells = [f"{means[m]['psnr']:.2f} / {means[m]['ssim']:.3f} / {means[m]['lpips']:.3f}"
                 for m in methods]
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {bar_verdict(means)} |")
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
        lpips_axis.plot(ks, [means[f"K={k}"]["lpips"] for k in ks], marker="s", label=task)
    gain_axis.axhline(0.0, color="black", linewidth=1.0)
    gain_axis.set_ylabel("PSNR gain over the degraded input (dB)")
    gain_axis.set_title("PSNR against K (diamonds: initial prediction)")
    lpips_axis.set_ylabel("LPIPS (lower is better)")
    lpips_axis.set_title("LPIPS against K")
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
    parser.add_argument("--example", default="coffee_1.png",
                        help="which held-out image's strip to keep per task")
    args = parser.parse_args(argv)

    results = {task: read_means(args.eval_dir / task / "eval.csv") for task in TASKS
               if (args.eval_dir / task / "eval.csv").is_file()}
    if not results:
        raise SystemExit(f"no {args.eval_dir}/<task>/eval.csv found")
    ks = sorted({int(m[2:]) for means in results.values() for m in means if m.startswith("K=")})
    methods = ["input", "initial", *(f"K={k}" for k in ks)]
    write_text_atomic(args.out / "bundled_eval.md", table(results, methods))
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
