"""Is there a frame at the image border in the engines' results? (issue 21, item 12)

For every task and both engines (DTPM with the bundled base and adapters, at K = 1 and 4 and
its initial prediction; the bundled single-pass network), held-out photos (scikit-image's
chelsea and coffee, never trained on) are degraded with the held-out settings of
`trainer.degradations` and restored. The script prints, per task and engine, the mean
absolute error against the clean photo in the outer frame (the 2 outermost pixel rings)
and in the rings just inside it (pixels 2 to 4 px from the edge), in 1/255, and their ratio;
and the signed mean error (result - clean) of both, which shows a lighter (+) or darker (-)
frame. The bar: ratio at most 1.5.

    python scripts/border_frame.py                 # the frame table
    python scripts/border_frame.py --psnr          # mean PSNR on data/eval_clean (14 photos)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.engines.dtpm_restorer import Restorer  # noqa: E402
from dtpm_core.engines.singlepass_restorer import SinglePassRestorer  # noqa: E402
from dtpm_core.evaluation.metrics import psnr  # noqa: E402
from trainer.degradations import degrade  # noqa: E402

MODELS = ROOT / "resources" / "models"
TASKS = ("motion-deblur", "defocus-deblur", "derain-dehaze", "desnow", "raindrop")
FRAME = 2
"""Rings 0 .. FRAME-1 (distance to the nearest edge, in pixels) are the frame."""
INSIDE = (2, 5)
"""Rings 2, 3, 4: the pixels 2 to 4 px inside, which the frame is compared with."""


def ring_index(height: int, width: int) -> np.ndarray:
    """(H, W) distance of every pixel to the nearest image edge (0 = the outermost ring)."""
    rows = np.minimum(np.arange(height), np.arange(height)[::-1])[:, None]
    cols = np.minimum(np.arange(width), np.arange(width)[None, ::-1])
    return np.minimum(rows, cols)


def frame_errors(result: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """Mean abs and signed error (1/255) of the frame and of the rings inside it."""
    ring = ring_index(*clean.shape[:2])
    frame, inside = ring < FRAME, (ring >= INSIDE[0]) & (ring < INSIDE[1])
    diff = (result.astype(np.float64) - clean.astype(np.float64)) * 255.0
    return {"frame": float(np.abs(diff[frame]).mean()),
            "inside": float(np.abs(diff[inside]).mean()),
            "frame_bias": float(diff[frame].mean()), "inside_bias": float(diff[inside].mean())}


def held_out_pairs(task: str, seed: int = 0, held_out: bool = True
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(degraded, clean) of chelsea and coffee, held-out photos, with the held-out
    degradation settings (or, held_out=False, settings from the training ranges)."""
    from skimage import data as skdata
    pairs = []
    for index, name in enumerate(("chelsea", "coffee")):
        clean = getattr(skdata, name)().astype(np.float32) / 255.0
        degraded = degrade(task, clean, np.random.default_rng([seed, index]), held_out=held_out)
        pairs.append((np.clip(degraded, 0, 1).astype(np.float32), clean))
    return pairs


def engines(tasks: tuple[str, ...]):
    """name -> restore(degraded, task) -> {label: result}; both engines, fp32 on the CPU."""
    single = SinglePassRestorer(MODELS / "singlepass.safetensors", device="cpu",
                                precision="fp32")
    dtpm = Restorer(MODELS / "base.safetensors", device="cpu", precision="fp32")

    def run_dtpm(image: np.ndarray, task: str) -> dict[str, np.ndarray]:
        if dtpm.adapter_info is None or dtpm.adapter_info.task != task:
            dtpm.load_adapter(MODELS / f"{task}.safetensors")
        out = dtpm.restore(image, [1, 4], seed=0)
        return {"dtpm initial": out.initial, "dtpm K=1": out.results[1],
                "dtpm K=4": out.results[4]}

    def run_single(image: np.ndarray, task: str) -> dict[str, np.ndarray]:
        return {"single-pass": single.restore(image, task).result}
    return run_dtpm, run_single


def frame_table(tasks: tuple[str, ...], held_out: bool = True) -> float:
    """Print the frame table; returns the worst ratio over the engines' results. `step` is
    frame bias - inside bias: how much lighter (+) the frame is than the truth would have it,
    relative to the pixels inside."""
    run_dtpm, run_single = engines(tasks)
    print("| task | result | frame err | inside err | ratio | frame bias | inside bias | step |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for task in tasks:
        rows: dict[str, list[dict[str, float]]] = {}
        for degraded, clean in held_out_pairs(task, held_out=held_out):
            outputs = {"input": degraded, **run_dtpm(degraded, task),
                       **run_single(degraded, task)}
            for label, result in outputs.items():
                rows.setdefault(label, []).append(frame_errors(result, clean))
        for label, stats in rows.items():
            mean = {k: float(np.mean([s[k] for s in stats])) for k in stats[0]}
            ratio = mean["frame"] / mean["inside"]
            if label != "input":
                worst = max(worst, ratio)
            print(f"| {task} | {label} | {mean['frame']:.2f} | {mean['inside']:.2f} | "
                  f"{ratio:.2f} | {mean['frame_bias']:+.2f} | {mean['inside_bias']:+.2f} | "
                  f"{mean['frame_bias'] - mean['inside_bias']:+.2f} |",
                  flush=True)
    print(f"worst ratio over the results: {worst:.2f}")
    return worst


def psnr_table(tasks: tuple[str, ...], clean_folder: Path) -> None:
    """Mean PSNR of both engines on the evaluation photos (held-out settings, seeds 100+i,
    as docs/evidence/border_margin.md)."""
    from trainer.data import degraded_photos
    run_dtpm, run_single = engines(tasks)
    print("| task | input | dtpm initial | dtpm K=1 | dtpm K=4 | single-pass |")
    print("|---|---|---|---|---|---|")
    for task in tasks:
        scores: dict[str, list[float]] = {}
        for _, degraded, clean in degraded_photos([clean_folder], task, 100, held_out=True):
            degraded = np.clip(degraded, 0, 1).astype(np.float32)
            outputs = {"input": degraded, **run_dtpm(degraded, task),
                       **run_single(degraded, task)}
            for label, result in outputs.items():
                scores.setdefault(label, []).append(psnr(result, clean))
        cells = " | ".join(f"{np.mean(v):.3f}" for v in scores.values())
        print(f"| {task} | {cells} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--psnr", action="store_true",
                        help="mean PSNR on --clean instead of the frame table")
    parser.add_argument("--clean", type=Path, default=ROOT / "data" / "eval_clean")
    parser.add_argument("--training-range", action="store_true",
                        help="degrade with settings from the training ranges, not the "
                             "held-out ones")
    args = parser.parse_args(argv)
    tasks = tuple(t for t in args.tasks.split(",") if t)
    if args.psnr:
        psnr_table(tasks, args.clean)
    else:
        frame_table(tasks, held_out=not args.training_range)
    return 0


if __name__ == "__main__":
    sys.exit(main())
