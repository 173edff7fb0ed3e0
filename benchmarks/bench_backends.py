"""Both engines on each backend, side by side in one run: torch fp32, the torch fast path
(bf16 weights + autocast, where the CPU has native bf16), OpenVINO fp32 and bf16.

    python benchmarks/bench_backends.py [--models resources/models] [--side 512]
                                        [--rounds 5] [--steps 4] [--tile 512]

Every configuration is loaded and run once first (OpenVINO converts its networks then, or
reads them from the cache), then timed in interleaved rounds (one restore of each per round)
so that a change in machine load hits them all alike; medians are reported. Prints seconds
per megapixel, the speed-up over torch fp32 and the error against torch fp32's result
(max abs and PSNR, images in [0, 1]). A second table times one denoiser pass at the given
size with OpenVINO's two shape policies (dynamic height and width, or a graph compiled for
the size). Numbers from a machine shared with other jobs are indicative only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.backends import openvino_installed  # noqa: E402
from dtpm_core.backends.device import configure_threads, cpu_has_native_bf16  # noqa: E402
from dtpm_core.engines.engine import DTPMSpec, SinglePassSpec, load_engine  # noqa: E402
from dtpm_core.evaluation.metrics import psnr  # noqa: E402


@dataclass(frozen=True)
class Config:
    label: str
    backend: str
    precision: str


def configs() -> list[Config]:
    out = [Config("torch fp32", "torch", "fp32")]
    if cpu_has_native_bf16():
        out.append(Config("torch fast path (bf16)", "torch", "bf16"))
    if openvino_installed():
        out.append(Config("OpenVINO fp32", "openvino", "fp32"))
        if cpu_has_native_bf16():
            out.append(Config("OpenVINO bf16", "openvino", "bf16"))
    return out


def photo(side: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize
    return resize(data.astronaut(), (side, side), anti_aliasing=True).astype(np.float32)


def compare_engines(models: Path, image: np.ndarray, steps: int, tile: int,
                    rounds: int) -> None:
    specs = {
        f"DTPM K={steps}": lambda c: DTPMSpec(models / "base.safetensors",
                                              models / "motion-deblur.safetensors",
                                              steps=(steps,), tile=tile, device="cpu",
                                              precision=c.precision, backend=c.backend),
        "single-pass": lambda c: SinglePassSpec(models / "singlepass.safetensors",
                                                task="motion-deblur", tile=tile, device="cpu",
                                                precision=c.precision, backend=c.backend),
    }
    megapixels = image.shape[0] * image.shape[1] / 1e6
    for name, make in specs.items():
        engines = {c: load_engine(make(c)) for c in configs()}
        started = time.perf_counter()
        results = {c: e.restore(image).image for c, e in engines.items()}  # converts, warms up
        print(f"\n{name}, {image.shape[1]}x{image.shape[0]}, tile {tile} "
              f"(first run with conversions: {time.perf_counter() - started:.1f} s)")
        times: dict[Config, list[float]] = {c: [] for c in engines}
        for _ in range(rounds):
            for c, engine in engines.items():
                t0 = time.perf_counter()
                engine.restore(image)
                times[c].append(time.perf_counter() - t0)
        reference = results[configs()[0]]
        base = statistics.median(times[configs()[0]])
        print(f"  {'configuration':<24} {'s/MP':>8} {'speed-up':>9} {'max err':>9} {'PSNR':>8}")
        for c in engines:
            median = statistics.median(times[c])
            err = float(np.abs(results[c] - reference).max())
            db = psnr(results[c], reference) if err > 0 else float("inf")
            print(f"  {c.label:<24} {median / megapixels:8.2f} {base / median:8.2f}x "
                  f"{err:9.2e} {db:7.1f} dB")


def compare_shape_policies(models: Path, side: int, rounds: int) -> None:
    from dtpm_core.backends.graphs import denoiser_graph
    from dtpm_core.backends.openvino_backend import OpenVINOSession
    from dtpm_core.modelfiles.verified import read_adapter_info, read_base_info

    info = read_base_info(models / "base.safetensors")
    task = read_adapter_info(models / "motion-deblur.safetensors")
    precisions = ["fp32"] + (["bf16"] if cpu_has_native_bf16() else [])
    nets = {}
    for precision in precisions:
        for policy in ("dynamic", "static"):
            session = OpenVINOSession(precision, torch.get_num_threads(), shape_policy=policy)
            nets[(precision, policy)] = session.network(denoiser_graph(info, task))[0]
    g = torch.Generator().manual_seed(0)
    x, y_d, guide = (torch.randn(1, 3, side, side, generator=g).numpy() for _ in range(3))
    level = np.full((1,), 0.5, dtype=np.float32)
    times: dict[tuple[str, str], list[float]] = {k: [] for k in nets}
    for net in nets.values():  # static: compiles for this size on the first call
        net(x_t=x, y_d=y_d, guidance=guide, sqrt_gamma=level)
    for _ in range(rounds):
        for key, net in nets.items():
            t0 = time.perf_counter()
            net(x_t=x, y_d=y_d, guidance=guide, sqrt_gamma=level)
            times[key].append(time.perf_counter() - t0)
    print(f"\nOne denoiser pass (with adapters), {side}x{side}, OpenVINO shape policies")
    for (precision, policy), values in times.items():
        print(f"  {precision:<5} {policy:<8} {1000 * statistics.median(values):8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "resources" / "models")
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tile", type=int, default=512)
    args = parser.parse_args()
    threads = configure_threads()  # as dtpm-restore and the app do
    print(f"{threads} threads, torch {torch.__version__}, native bf16: {cpu_has_native_bf16()}, "
          f"OpenVINO installed: {openvino_installed()}")
    compare_engines(args.models, photo(args.side), args.steps, args.tile, args.rounds)
    if openvino_installed():
        compare_shape_policies(args.models, args.side, args.rounds)


if __name__ == "__main__":
    main()
