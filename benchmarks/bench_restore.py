"""Restoration speed and memory, measured side by side in one run.

    python benchmarks/bench_restore.py [--quick] [--skip-24mp]

1. Seconds per megapixel of `Restorer.restore` at K = 1, 4, 10, 50 for the `tiny` and `small`
   presets, next to the time of the bare network passes it needs (K denoiser passes + 1
   predictor pass) timed in the same run: the ratio is the sampler/tiling overhead
   (goal: <= 1.20).
2. Tiled (512) against untiled restoration of the same image.
3. RTV smoothing of a 512x512 photo (goal: <= 2 s).
4. Peak resident memory restoring a 24-megapixel image with `tiny` (goal: < 3 GB), in a
   fresh process so that nothing else counts.
Models are untrained (random weights): speed and memory do not depend on training.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.config import Stage2Options, preset  # noqa: E402
from dtpm_core.engines.dtpm_restorer import Restorer  # noqa: E402
from dtpm_core.modelfiles.weights import save_adapter, save_base  # noqa: E402
from dtpm_core.networks.model import DTPM  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rtv import best_of  # noqa: E402


def make_models(folder: Path, name: str) -> tuple[Path, Path]:
    torch.manual_seed(0)
    model = DTPM(preset(name, denoiser__semantic="random"), Stage2Options())
    sha = save_base(folder / f"{name}_base.safetensors", model)
    save_adapter(folder / f"{name}_task.safetensors", model, "motion-deblur", sha)
    return folder / f"{name}_base.safetensors", folder / f"{name}_task.safetensors"


def photo(height: int, width: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize
    return resize(data.astronaut(), (height, width), anti_aliasing=True).astype(np.float32)


@torch.no_grad()
def bare_passes(restorer: Restorer, image: np.ndarray, k: int) -> float:
    """K denoiser passes + 1 predictor pass on the whole image, nothing else."""
    model, task = restorer.networks.model, restorer.networks.task
    x = torch.from_numpy(image).permute(2, 0, 1)[None] * 2 - 1
    level = torch.full((1,), 0.5)
    code = torch.zeros(1, 512)
    start = time.perf_counter()
    y_eps = task.predictor(x)
    for _ in range(k):
        model.denoiser(x, x, level, code, adapters=task.adapters, guidance=y_eps)
    return time.perf_counter() - start


def speed_table(folder: Path, quick: bool) -> list[dict]:
    rows = []
    sizes = {"tiny": 512, "small": 256}
    ks = (1, 4) if quick else (1, 4, 10, 50)
    for name, size in sizes.items():
        restorer = Restorer(*make_models(folder, name), device="cpu")
        image = photo(size, size)
        megapixels = size * size / 1e6
        restorer.restore(image[:64, :64], 1, tile=0)  # warm-up
        for k in ks:
            repeats = 3 if k <= 4 else 2
            full, bare = float("inf"), float("inf")
            for _ in range(repeats):  # interleaved, so that load changes hit both sides
                full = min(full, best_of(lambda k=k, r=restorer, im=image:
                                         r.restore(im, k, tile=0), 1, warmup=0))
                bare = min(bare, bare_passes(restorer, image, k))
            rows.append({"preset": name, "size": f"{size}x{size}", "K": k,
                         "s_per_mp": full / megapixels, "bare_s_per_mp": bare / megapixels,
                         "overhead": full / bare})
            print(f"  {name:5s} K={k:2d}: {full / megapixels:7.2f} s/MP restore, "
                  f"{bare / megapixels:7.2f} s/MP bare passes, ratio {full / bare:.2f}",
                  flush=True)
    return rows


def tiled_vs_untiled(folder: Path) -> dict:
    restorer = Restorer(*make_models(folder, "tiny"), device="cpu")
    image = photo(1024, 1024)
    untiled = best_of(lambda: restorer.restore(image, 4, tile=0), 1, warmup=0)
    tiled = best_of(lambda: restorer.restore(image, 4, tile=512), 1, warmup=0)
    return {"size": "1024x1024", "K": 4, "untiled_s": untiled, "tiled_512_s": tiled,
            "ratio": tiled / untiled}


def rtv_seconds() -> dict:
    from dtpm_core.diffusion.smoothing import rtv_smooth
    image = torch.from_numpy(photo(512, 512)).permute(2, 0, 1)[None]
    rtv_smooth(image[..., :64, :64])
    return {"size": "512x512x3", "seconds": best_of(lambda: rtv_smooth(image), 3, warmup=0)}


def peak_memory_24mp(folder: Path) -> dict:
    """Restore a 6000x4000 image at K = 1 in a child process and read its peak RSS."""
    base, task = make_models(folder, "tiny")
    code = f"""
import resource, sys, time
import numpy as np
sys.path.insert(0, {str(ROOT)!r})
from dtpm_core.engines.dtpm_restorer import Restorer
restorer = Restorer({str(base)!r}, {str(task)!r}, device="cpu")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = np.random.default_rng(0).random((4000, 6000, 3), dtype=np.float32)
start = time.perf_counter()
result = restorer.restore(image, 1, tile=512)
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - start)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    before_kb, peak_kb, seconds = int(out[0]), int(out[1]), float(out[2])
    return {"size": "6000x4000 (24 MP)", "K": 1, "peak_rss_gb": peak_kb / 1024 ** 2,
            "model_loaded_rss_gb": before_kb / 1024 ** 2, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="K = 1, 4 only")
    parser.add_argument("--skip-24mp", action="store_true", help="skip the 24 MP memory run")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print("1. seconds per megapixel (untiled, CPU)")
        results["speed"] = speed_table(folder, args.quick)
        print("2. tiled vs untiled")
        results["tiling"] = tiled_vs_untiled(folder)
        print(f"  {results['tiling']}")
        print("3. RTV")
        results["rtv"] = rtv_seconds()
        print(f"  {results['rtv']['seconds']:.2f} s for 512x512x3 (goal <= 2 s)")
        if not args.skip_24mp:
            print("4. peak memory, 24 MP at tiny")
            results["memory"] = peak_memory_24mp(folder)
            print(f"  {results['memory']}")
    print()
    print("| preset | image | K | restore s/MP | K+1 bare passes s/MP | overhead |")
    print("|---|---|---|---|---|---|")
    for row in results["speed"]:
        print(f"| {row['preset']} | {row['size']} | {row['K']} | {row['s_per_mp']:.2f} | "
              f"{row['bare_s_per_mp']:.2f} | {row['overhead']:.2f}x |")
    t = results["tiling"]
    print(f"\ntiled 512 vs untiled ({t['size']}, K={t['K']}): {t['tiled_512_s']:.1f} s vs "
          f"{t['untiled_s']:.1f} s ({t['ratio']:.2f}x)")
    print(f"RTV 512x512x3: {results['rtv']['seconds']:.2f} s (goal <= 2 s)")
    if "memory" in results:
        m = results["memory"]
        print(f"24 MP at tiny, K=1: peak RSS {m['peak_rss_gb']:.2f} GB (goal < 3 GB), "
              f"{m['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
