"""Seconds per megapixel on this CPU: fp32 against the fast path, both engines, one run.

    python benchmarks/bench_cpu_path.py [--presets tiny:512,small:256] [--repeats 3]
                                        [--threads N]

For each preset, random-weight models (speed does not depend on training; semantic code off)
restore the same photo (512 px at tiny, 256 px at small) through the real entry points
(`Restorer`, `SinglePassRestorer`, one tile), three ways: fp32 as the code ran before issue 17
(NCHW, unfused LayerNorm and AdaLN, all 10 MoE experts one by one), fp32 now, and the fast
path "auto" takes on this CPU (bf16 weights + channels-last + autocast on AMX / AVX512-BF16;
fp32 elsewhere): DTPM at K = 1, 4, 10 and the Fast engine (top-2 experts). Every
configuration is timed once per round, rounds interleaved, and the median is reported, so
background load hits all of them alike. In the same run: the fp32 and bf16 matmul rates,
against which the achieved GFLOP/s of each engine is shown (FLOPs from torch's counter), the
Fast / DTPM-4 ratio, and the time projected for a 12 MP photo (s/MP x 12; tiling adds ~10%).
The thread count is the one every restorer uses (`dtpm_core.backends.device.configure_threads`: the
free cores, or $DTPM_THREADS, or --threads).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.backends.device import (  # noqa: E402
    configure_threads,
    describe_cpu_path,
    resolve_precision,
)
from dtpm_core.config import Stage2Options, preset  # noqa: E402
from dtpm_core.engines.dtpm_restorer import Restorer  # noqa: E402
from dtpm_core.engines.singlepass_restorer import SinglePassRestorer  # noqa: E402
from dtpm_core.modelfiles.weights import save_adapter, save_base  # noqa: E402
from dtpm_core.networks.model import DTPM  # noqa: E402
from dtpm_core.options import TASKS  # noqa: E402
from dtpm_core.singlepass.config import INFERENCE_TOP_K, singlepass_preset  # noqa: E402
from dtpm_core.singlepass.network import SinglePassNet  # noqa: E402
from dtpm_core.singlepass.weights import save_singlepass  # noqa: E402

KS = (1, 4, 10)
PROJECT_MP = 12.0


def make_models(folder: Path, name: str) -> tuple[Path, Path, Path]:
    torch.manual_seed(0)
    dtpm = DTPM(preset(name, denoiser__semantic="none"), Stage2Options())
    base, adapter = folder / f"{name}_base.safetensors", folder / f"{name}_task.safetensors"
    save_adapter(adapter, dtpm, "motion-deblur", save_base(base, dtpm))
    fast = folder / f"{name}_singlepass.safetensors"
    net = SinglePassNet(singlepass_preset(name, adaptor_tasks=TASKS))
    save_singlepass(fast, net, tasks={t: 50 for t in TASKS})
    return base, adapter, fast


def photo(side: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize
    return resize(data.astronaut(), (side, side), anti_aliasing=True).astype(np.float32)


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def count_gflop(fn: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def dtpm_gflop(restorer: Restorer, side: int, k: int) -> float:
    """One predictor pass + K denoiser passes (with adapters) at `side` x `side` (an fp32
    restorer: the FLOPs are those of every precision)."""
    model, task = restorer.networks.model, restorer.networks.task
    x = torch.zeros(1, 3, side, side)
    with torch.no_grad():
        predictor = count_gflop(lambda: task.predictor(x))
        denoiser = count_gflop(lambda: model.denoiser(
            x, x, torch.full((1,), 0.5), None, adapters=task.adapters, guidance=x))
    return predictor + k * denoiser


def fast_gflop(restorer: SinglePassRestorer, side: int) -> float:
    """One pass of the single-pass network (an fp32 restorer, as for `dtpm_gflop`)."""
    with torch.no_grad():
        return count_gflop(lambda: restorer.net(torch.zeros(1, 3, side, side),
                                                torch.full((1,), 50, dtype=torch.long)))


@contextlib.contextmanager
def as_before_issue_17(*restorers: Restorer | SinglePassRestorer):
    """Run fp32 restorers as the code did before issue 17: NCHW weights and inputs, the
    eight-op LayerNorm2d and separate AdaLN, the MoE experts one by one (and, set at
    construction, all 10 of them)."""
    from dtpm_core.backends import torch_backend
    from dtpm_core.networks.inference_layers import ChannelsLastLayerNorm2d, FoldedAdaLNBlock
    from dtpm_core.networks.layers import LayerNorm2d, NAFBlock
    from dtpm_core.singlepass.network import MoEAdaptor

    def switch(module: torch.nn.Module, before: bool) -> None:
        module.to(memory_format=torch.contiguous_format if before else torch.channels_last)
        for child in module.modules():
            if isinstance(child, LayerNorm2d):
                child.__class__ = LayerNorm2d if before else ChannelsLastLayerNorm2d
            elif isinstance(child, NAFBlock):
                child.__class__ = NAFBlock if before else FoldedAdaLNBlock
            elif isinstance(child, MoEAdaptor):
                child.fuse_at_inference = not before

    modules = [r.net if isinstance(r, SinglePassRestorer) else r.model for r in restorers]
    layout = torch_backend.to_network_layout  # where both restorers' networks convert inputs
    for m in modules:
        switch(m, before=True)
    torch_backend.to_network_layout = lambda x: x
    try:
        yield
    finally:
        torch_backend.to_network_layout = layout
        for m in modules:
            switch(m, before=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny:512,small:256",
                        help="preset:image side, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="default: the restorers' own choice")
    args = parser.parse_args()
    threads = configure_threads(args.threads)
    cpu = torch.device("cpu")
    fast_precision = resolve_precision(cpu, "auto")
    modes = ("before", "fp32", "fast")
    print(f"# one tile per image, medians of {args.repeats} interleaved rounds; {threads} "
          f"thread(s); fast path here: {describe_cpu_path(cpu, fast_precision)}", flush=True)
    print("# before = fp32 as shipped before issue 17 (NCHW, unfused LayerNorm and AdaLN, "
          "all 10 MoE experts one by one); fp32 = fp32 now; fast = precision auto", flush=True)

    rows = []
    rates: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.presets.split(","):
            name, _, side = item.partition(":")
            side = int(side or 512)
            image, mp = photo(side), side * side / 1e6
            base, adapter, fast_file = make_models(Path(tmp), name)
            dtpm = {m: Restorer(base, adapter, device="cpu",
                                precision=fast_precision if m == "fast" else "fp32")
                    for m in modes}
            single = {m: SinglePassRestorer(fast_file, device="cpu",
                                            precision=fast_precision if m == "fast" else "fp32",
                                            max_experts=0 if m == "before" else INFERENCE_TOP_K)
                      for m in modes}
            flops = {f"DTPM K={k}": dtpm_gflop(dtpm["fp32"], side, k) for k in KS}
            flops["Fast"] = fast_gflop(single["fp32"], side)
            flops["Fast (all experts)"] = fast_gflop(single["before"], side)
            runs: dict[tuple[str, str], Callable[[], object]] = {}
            for m in modes:
                for k in KS:
                    runs[(f"DTPM K={k}", m)] = lambda r=dtpm[m], k=k, im=image: \
                        r.restore(im, k, tile=0)
                runs[("Fast", m)] = lambda r=single[m], im=image: r.restore(im, "desnow", tile=0)
            times: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
            matmul: dict[str, list[float]] = {"fp32": [], "bf16": []}
            for round_ in range(args.repeats + 1):  # round 0 warms up (oneDNN kernels)
                matmul["fp32"].append(matmul_gflops(torch.float32))
                matmul["bf16"].append(matmul_gflops(torch.bfloat16))
                for key, run in runs.items():
                    before = key[1] == "before"
                    with as_before_issue_17(dtpm[key[1]], single[key[1]]) if before \
                            else contextlib.nullcontext():
                        start = time.perf_counter()
                        run()
                        seconds = time.perf_counter() - start
                    if round_:
                        times[key].append(seconds)
            rates[name] = {p: statistics.median(v[1:]) for p, v in matmul.items()}
            for engine in ("DTPM K=1", "DTPM K=4", "DTPM K=10", "Fast"):
                row = {"preset": name, "side": side, "engine": engine}
                for m in modes:
                    seconds = statistics.median(times[(engine, m)])
                    work = flops["Fast (all experts)"] if engine == "Fast" and m == "before" \
                        else flops[engine]
                    row[m] = seconds / mp
                    row[f"{m}_gflops"] = work / seconds
                row["gflop_per_mp"] = flops[engine] / mp
                rows.append(row)
                print(f"  {name} {side}px {engine}: " + ", ".join(
                    f"{m} {row[m]:.2f} s/MP" for m in modes), flush=True)

    fast_rate = "bf16" if fast_precision == "bf16" else "fp32"
    print()
    print("| preset (image) | engine | GFLOP/MP | fp32 before, s/MP | fp32 now, s/MP | "
          f"fast path ({fast_precision}), s/MP | fast vs before | fast vs fp32 now | "
          "GFLOP/s fp32 now (% of fp32 matmul) | GFLOP/s fast (% of "
          f"{fast_rate} matmul) | 12 MP photo, fast path |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rate = rates[r["preset"]]
        print(f"| {r['preset']} ({r['side']} px) | {r['engine']} | {r['gflop_per_mp']:.0f} | "
              f"{r['before']:.2f} | {r['fp32']:.2f} | {r['fast']:.2f} | "
              f"{r['before'] / r['fast']:.2f}x | {r['fp32'] / r['fast']:.2f}x | "
              f"{r['fp32_gflops']:.0f} ({100 * r['fp32_gflops'] / rate['fp32']:.0f}%) | "
              f"{r['fast_gflops']:.0f} ({100 * r['fast_gflops'] / rate[fast_rate]:.0f}%) | "
              f"{_duration(r['fast'] * PROJECT_MP)} |")
    print()
    for name, rate in rates.items():
        by = {r["engine"]: r for r in rows if r["preset"] == name}
        ratios = ", ".join(f"{m} {by['DTPM K=4'][m] / by['Fast'][m]:.1f}x" for m in modes)
        print(f"{name}: matmul fp32 {rate['fp32']:.0f} GFLOP/s, bf16 {rate['bf16']:.0f} "
              f"GFLOP/s (2048^2, this run); DTPM K=4 / Fast: {ratios}")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


if __name__ == "__main__":
    main()
