"""Stage II set-ups for the training campaign, measured side by side in one run (issue 20).

    OMP_NUM_THREADS=1 python benchmarks/bench_train_setups.py [--steps N] [--compile]
        [--predictors "P16 (tiny),E16-imagenet"] [--crops 128] [--stage1]

For each candidate initial predictor on the shipped `tiny` base denoiser (random weights, the
same cost): parameters, receptive field (the input pixels that reach the centre output pixel,
measured through the gradient), and images/s of a full Stage II step (forward, backward with
the auxiliary L1, Adam) at several crop sizes, fp32 and bf16 autocast + channels-last. Rounds
are interleaved and the median is kept. `--compile` adds torch.compile rows (minutes of
compiling per row). `--stage1` adds the Stage I step of the base denoiser (what the campaign's
`base` line trains) at the same crops and precisions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.config import Stage2Options, preset  # noqa: E402
from dtpm_core.diffusion.objectives import stage1_loss, stage2_loss  # noqa: E402
from dtpm_core.networks.encoder_predictor import EncoderPredictor  # noqa: E402
from dtpm_core.networks.model import (  # noqa: E402
    DTPM,
    build_predictor,
    configure_stage2_trainable,
)

BATCH = 4
STAGE1 = "Stage I base"  # the set-up name of the base denoiser's own step

PREDICTORS: dict[str, dict[str, object]] = {
    # the shipped adapters' predictor
    "P16 (tiny)": {},
    # wider and one level deeper: 16x downsampling
    "P32-L4": {"predictor.width": 32, "predictor.enc_blocks": (1, 1, 1, 1),
               "predictor.dec_blocks": (1, 1, 1, 1), "predictor.middle_blocks": 2},
    # pixel-unshuffle stem: 12 channels at half resolution, wide layers
    "P48-stem2": {"predictor.width": 48, "predictor.stem": 2,
                  "predictor.enc_blocks": (1, 1, 2), "predictor.dec_blocks": (1, 1, 1),
                  "predictor.middle_blocks": 2},
    "P64-stem2-L4": {"predictor.width": 64, "predictor.stem": 2,
                     "predictor.enc_blocks": (1, 1, 1, 2), "predictor.dec_blocks": (1, 1, 1, 1),
                     "predictor.middle_blocks": 2},
    # EfficientNet-Lite0 encoder (ImageNet weights), NAF decoder of width 16 at full resolution
    "E16-imagenet": {"predictor.encoder": "efficientnet-lite0", "predictor.enc_blocks": (),
                     "predictor.dec_blocks": (1, 1, 1, 1, 1), "predictor.width": 16},
}


@dataclass
class Setup:
    predictor: str
    crop: int
    bf16: bool
    compiled: bool = False

    @property
    def label(self) -> str:
        mode = "bf16+CL" if self.bf16 else "fp32"
        return f"{self.predictor} {self.crop}px {mode}{' compiled' if self.compiled else ''}"


def receptive_field(overrides: dict[str, object], size: int = 257, mass: float = 0.95) -> int:
    """Side of the smallest centred square of input pixels that holds `mass` of the centre
    output pixel's gradient (every pixel reaches it a little through the channel attention's
    global pooling, so "nonzero" would be the whole image), on a random-weight predictor
    whose zero-initialised parts
    (the ending, the blocks' beta and gamma) are set nonzero, as training makes them."""
    config = preset("tiny", denoiser__semantic="none").with_overrides(overrides).predictor
    torch.manual_seed(0)
    net = build_predictor(config)
    if isinstance(net, EncoderPredictor):
        net.load_imagenet_encoder()  # where a training run starts it
    torch.nn.init.normal_(net.ending.weight, std=0.1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith((".beta", ".gamma")):
                p.fill_(0.5)
    x = torch.zeros(1, 3, size, size, requires_grad=True)
    net(x)[0, :, size // 2, size // 2].sum().backward()
    g = x.grad.abs().sum(dim=(0, 1))
    total, c = float(g.sum()), size // 2
    for r in range(c + 1):
        if float(g[c - r:c + r + 1, c - r:c + r + 1].sum()) >= mass * total:
            return 2 * r + 1
    return size


def build(setup: Setup):
    torch.manual_seed(0)
    if setup.predictor == STAGE1:
        model = DTPM(preset("tiny", denoiser__semantic="none")).train()
        params = list(model.denoiser.parameters())
    else:
        config = preset("tiny", denoiser__semantic="none").with_overrides(
            PREDICTORS[setup.predictor])
        model = DTPM(config, Stage2Options()).train()
        params = configure_stage2_trainable(model)
    optimizer = torch.optim.Adam(params, lr=1e-4)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(BATCH, 3, setup.crop, setup.crop, generator=g)
    b = torch.rand(BATCH, 3, setup.crop, setup.crop, generator=g)
    if setup.bf16:
        model = model.to(memory_format=torch.channels_last)
        a, b = (t.contiguous(memory_format=torch.channels_last) for t in (a, b))
    if setup.predictor == STAGE1:
        def step_loss(model, a, b, g):
            return stage1_loss(model, a, b, g)
    else:
        def step_loss(model, a, b, g):
            return stage2_loss(model, a, b, g, 1.0, 0.12)
    loss_fn = torch.compile(step_loss) if setup.compiled else step_loss

    def one() -> float:
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setup.bf16):
            loss = loss_fn(model, a, b, g)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return float(loss.detach())

    return model, one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--crops", default="96,128,160")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows")
    parser.add_argument("--predictors", default=",".join(PREDICTORS),
                        help="comma-separated names among: " + ", ".join(PREDICTORS))
    parser.add_argument("--stage1", action="store_true",
                        help="add the base denoiser's Stage I step")
    args = parser.parse_args()
    crops = [int(c) for c in args.crops.split(",")]
    names = [n.strip() for n in args.predictors.split(",")]
    unknown = [n for n in names if n not in PREDICTORS]
    if unknown:
        parser.error(f"unknown predictors {unknown}; choose among {list(PREDICTORS)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); batch {BATCH}; "
          "tiny base denoiser, Stage II step with the auxiliary L1")
    print("\n| predictor | parameters | receptive field (px) |\n|---|---|---|")
    for name in names:
        overrides = PREDICTORS[name]
        config = preset("tiny").with_overrides(overrides).predictor
        n = sum(p.numel() for p in build_predictor(config).parameters())
        print(f"| {name} | {n / 1e6:.2f} M | {receptive_field(overrides)} |", flush=True)
    from dtpm_core.backends.device import cpu_has_native_bf16
    modes = (False, True) if cpu_has_native_bf16() else (False,)
    if len(modes) == 1:
        print("\nthis CPU has neither AMX nor AVX512-BF16: bf16 would be emulated, fp32 only")
    setups = [Setup(p, c, bf) for p in names + [STAGE1] * args.stage1 for c in crops
              for bf in modes]
    if args.compile:
        setups += [Setup(p, 128, bf, True) for p in names + [STAGE1] * args.stage1
                   for bf in modes]
    runners = {}
    for s in setups:
        _, one = build(s)
        loss = one()  # warm-up (and compilation)
        runners[s.label] = (s, one, [], loss)
    for _ in range(args.rounds):
        for label, (_setup, one, times, _) in runners.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                loss = one()  # noqa: PLW2901
            times.append(args.steps * BATCH / (time.perf_counter() - start))
            if not torch.isfinite(torch.tensor(loss)):
                print(f"  {label}: loss not finite ({loss})")
    print("\n| set-up | images/s (median) | crop pixels/s (M) | vs P16 128px fp32 |\n|---|---|---|---|")
    ref = statistics.median(runners["P16 (tiny) 128px fp32"][2]) if \
        "P16 (tiny) 128px fp32" in runners else None
    for label, (s, _, times, _) in runners.items():
        rate = statistics.median(times)
        ratio = f"{rate / ref:.2f}x" if ref else "-"
        print(f"| {label} | {rate:.2f} | {rate * s.crop * s.crop / 1e6:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
