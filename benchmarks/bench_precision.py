"""The fast CPU path changes the output by less than the eye can see: PSNR of each result
against the fp32 result of the same image, task, K and seed.

    python benchmarks/bench_precision.py [--models resources/models] [--side 384]
                                         [--ks 1,4,10,50] [--tasks all]

Runs the installed models (whichever are in the folder: nothing here depends on which) through
both engines (`dtpm_core.engines.engine.load_engine`) twice, precision="fp32" and precision="bf16"
(the path "auto" takes on a CPU with AMX / AVX512-BF16), on skimage photos degraded with the
held-out settings of each task. The bar (issue 17): every result within 45 dB of fp32, at every K
and for the Fast engine. Also prints the initial prediction's PSNR against fp32.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.backends.device import (  # noqa: E402
    configure_threads,
    cpu_has_native_bf16,
    describe_cpu_path,
)
from dtpm_core.engines.engine import DTPMSpec, SinglePassSpec, load_engine  # noqa: E402
from dtpm_core.evaluation.metrics import psnr  # noqa: E402
from dtpm_core.modelfiles.catalog import load_catalog  # noqa: E402

BAR_DB = 45.0
PHOTOS = ("astronaut", "coffee", "chelsea")


def photos(side: int) -> list[np.ndarray]:
    from skimage import data
    from skimage.transform import resize
    out = []
    for name in PHOTOS:
        image = getattr(data, name)()
        scale = side / max(image.shape[:2])
        shape = (round(image.shape[0] * scale), round(image.shape[1] * scale))
        out.append(resize(image, shape, anti_aliasing=True).astype(np.float32))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="model folder (default: the installed one)")
    parser.add_argument("--side", type=int, default=384)
    parser.add_argument("--ks", default="1,4,10,50")
    parser.add_argument("--tasks", default="all", help="comma-separated tasks, or all")
    args = parser.parse_args()
    configure_threads()  # as dtpm-restore and the app do
    from trainer.degradations import degrade

    if not cpu_has_native_bf16():
        print("this CPU has no native bf16: the fast path is fp32 here, nothing to compare")
        return
    if args.models is not None:
        import os
        os.environ["DTPM_USER_MODELS"] = str(args.models.resolve())
    catalog = load_catalog()
    ks = [int(k) for k in args.ks.split(",")]
    tasks = sorted(catalog.adapters) if args.tasks == "all" else args.tasks.split(",")
    images = photos(args.side)
    print(f"# output of the fast path vs fp32 (PSNR, dB; bar >= {BAR_DB:.0f}); "
          f"{len(images)} photos, longer side {args.side}; "
          f"{describe_cpu_path(torch.device('cpu'), 'bf16')}")
    print(f"{'task':16s} {'initial':>8s} " + " ".join(f"{'K=' + str(k):>7s}" for k in ks)
          + f" {'Fast':>7s}")
    worst = float("inf")
    fast = {p: load_engine(SinglePassSpec(catalog.singlepass, tile=0, device="cpu",
                                          precision=p))
            for p in ("fp32", "bf16")} if catalog.singlepass else None
    dtpm = {p: load_engine(DTPMSpec(catalog.base, steps=tuple(ks), seed=0, tile=0, device="cpu",
                                    precision=p)) for p in ("fp32", "bf16")}
    for task in tasks:
        runs = {p: (e, replace(e.spec, adapter=catalog.adapters[task].path))
                for p, e in dtpm.items()}
        rows: dict[str, list[float]] = {"initial": [], **{f"K={k}": [] for k in ks}, "Fast": []}
        rng = np.random.default_rng(0)
        for image in images:
            degraded = np.clip(degrade(task, image, rng, held_out=True), 0, 1).astype(np.float32)
            out = {p: e.restore(degraded, spec) for p, (e, spec) in runs.items()}
            rows["initial"].append(psnr(out["bf16"].initial, out["fp32"].initial))
            for k in ks:
                rows[f"K={k}"].append(psnr(out["bf16"].by_steps[k], out["fp32"].by_steps[k]))
            if fast is not None and task in fast["fp32"].tasks:
                a, b = (fast[p].restore(degraded, replace(fast[p].spec, task=task)).image
                        for p in ("fp32", "bf16"))
                rows["Fast"].append(psnr(b, a))
        mins = {name: min(v) if v else float("nan") for name, v in rows.items()}
        worst = min([worst, *(v for v in mins.values() if v == v)])
        print(f"{task:16s} " + " ".join(f"{v:7.1f} " if name == "initial" else f"{v:7.1f}"
                                        for name, v in mins.items()))
    print(f"worst over all tasks, photos and K: {worst:.1f} dB "
          f"({'meets' if worst >= BAR_DB else 'MISSES'} the {BAR_DB:.0f} dB bar); "
          "each cell is the worst photo")


if __name__ == "__main__":
    main()
