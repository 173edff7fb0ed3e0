"""Training throughput on this machine, measured in one run.

    python benchmarks/bench_train.py [--steps N]

Images per second of a full optimisation step (forward, backward, Adam, EMA) for Stage I and
Stage II at the `tiny` and `small` presets (batch 4, 128x128 crops, semantic code off and on),
and `prepare` throughput (128x128 patches with RTV smoothing per second).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.config import Stage2Options, preset  # noqa: E402
from dtpm_core.diffusion.objectives import stage1_loss, stage2_loss  # noqa: E402
from dtpm_core.networks.model import DTPM, configure_stage2_trainable  # noqa: E402
from trainer.ema import EMA  # noqa: E402

BATCH, CROP = 4, 128


def step_rate(name: str, stage: int, semantic: str, steps: int) -> float:
    torch.manual_seed(0)
    model = DTPM(preset(name, denoiser__semantic=semantic),
                 Stage2Options() if stage == 2 else None).train()
    if stage == 2:
        params = configure_stage2_trainable(model)
    else:
        params = list(model.denoiser.parameters())
    named = {f"p{i}": p for i, p in enumerate(params)}
    optimizer = torch.optim.Adam(params, lr=1e-4)
    ema = EMA(named, 0.999)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(BATCH, 3, CROP, CROP, generator=g)
    b = torch.rand(BATCH, 3, CROP, CROP, generator=g)

    def one() -> None:
        optimizer.zero_grad()
        loss = stage1_loss(model, a, b, g) if stage == 1 else stage2_loss(model, a, b, g)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        ema.update()

    one()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        one()
    return steps * BATCH / (time.perf_counter() - start)


def prepare_rate() -> float:
    from PIL import Image
    from skimage import data

    from trainer.prepare import prepare
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for n in ("astronaut", "coffee", "chelsea"):
            Image.fromarray(getattr(data, n)()).save(src / f"{n}.png")
        report = prepare([src], Path(tmp) / "out", patch=128, progress=False)
        return report.patches_written / report.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {BATCH}, "
          f"crops {CROP}x{CROP}")
    rows = []
    for name in ("tiny", "small"):
        for stage in (1, 2):
            for semantic in ("none", "random"):
                rate = step_rate(name, stage, semantic, args.steps)
                rows.append((name, stage, semantic, rate))
                print(f"  {name} stage {stage} semantic={semantic}: {rate:.2f} images/s",
                      flush=True)
    patches = prepare_rate()
    print()
    print("| preset | stage | semantic code | images/s |")
    print("|---|---|---|---|")
    for name, stage, semantic, rate in rows:
        label = "off" if semantic == "none" else "ResNet-18"
        print(f"| {name} | {stage} | {label} | {rate:.2f} |")
    print(f"\nprepare: {patches:.1f} patches/s (128x128, RTV smoothing included)")


if __name__ == "__main__":
    main()
