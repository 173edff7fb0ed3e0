"""Fast engine: how many MoE experts must run at inference? Quality and cost of top-k routing.

    python benchmarks/bench_moe_topk.py [--model resources/models/singlepass.safetensors]
                                        [--ks 0,1,2,3] [--side 384]

For each task of the single-pass model file: the held-out hq photos (../shared/data/hq, the
files whose number n has n % 7 == 3, the split the bundled recipe keeps out of training),
reduced to `--side` pixels, degraded with the held-out degradation settings
(`trainer.data.degraded_photos(..., held_out=True)`, seed 0), restored through
`SinglePassRestorer` in fp32 with each `max_experts` k (0 = all experts), mean PSNR against the
clean photo. Also the network's GFLOP per 512x512 pass at each k (torch's FLOP counter).
The bar: every task within 0.1 dB of running all experts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.backends.device import configure_threads  # noqa: E402
from dtpm_core.engines.singlepass_restorer import SinglePassRestorer  # noqa: E402
from dtpm_core.evaluation.metrics import psnr  # noqa: E402

HQ = ROOT.parent / "shared" / "data" / "hq"


def held_out_photos(folder: Path, side: int) -> list[Path]:
    """The held-out hq photos, reduced so that the longer side is `side`, as PNG files."""
    from PIL import Image
    out = []
    for path in sorted(HQ.glob("*.png")):
        number = path.name.split("_", 1)[0]
        if not (number.isdigit() and int(number) % 7 == 3):
            continue
        image = Image.open(path).convert("RGB")
        scale = min(1.0, side / max(image.size))
        size = (round(image.width * scale) // 16 * 16, round(image.height * scale) // 16 * 16)
        image.resize(size, Image.Resampling.BOX).save(folder / path.name)
        out.append(folder / path.name)
    return out


def gflop_per_pass(restorer: SinglePassRestorer, side: int = 512) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    x = torch.zeros(1, 3, side, side)
    t = torch.full((1,), next(iter(restorer.tasks.values())), dtype=torch.long)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        restorer.net(x, t)
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "resources/models/singlepass.safetensors")
    parser.add_argument("--ks", default="0,1,2,3")
    parser.add_argument("--side", type=int, default=384)
    args = parser.parse_args()
    configure_threads()  # as dtpm-restore and the app do
    from trainer.data import degraded_photos

    ks = [int(k) for k in args.ks.split(",")]
    restorers = {k: SinglePassRestorer(args.model, device="cpu", precision="fp32", max_experts=k)
                 for k in ks}
    print(f"# {args.model.name}, {torch.get_num_threads()} threads, fp32")
    print("GFLOP per 512x512 pass: " + ", ".join(
        f"k={k or 'all'} {gflop_per_pass(r):.1f}" for k, r in restorers.items()))
    with tempfile.TemporaryDirectory() as tmp:
        photos = held_out_photos(Path(tmp), args.side)
        print(f"{len(photos)} held-out photos, longer side {args.side}")
        print(f"{'task':16s} " + " ".join(f"{'k=' + str(k or 'all'):>9s}" for k in ks)
              + "   delta vs all (dB)")
        for task in restorers[ks[0]].tasks:
            scores = {k: [] for k in ks}
            for _, degraded, clean in degraded_photos(photos, task, 0, held_out=True):
                degraded = np.clip(degraded, 0, 1).astype(np.float32)
                for k, r in restorers.items():
                    scores[k].append(psnr(r.restore(degraded, task, tile=0).result, clean))
            means = {k: float(np.mean(v)) for k, v in scores.items()}
            full = means.get(0, means[ks[0]])
            deltas = [means[k] - full for k in ks if k]
            print(f"{task:16s} " + " ".join(f"{means[k]:9.3f}" for k in ks)
                  + "   " + " ".join(f"{d:+.3f}" for d in deltas))


if __name__ == "__main__":
    main()
