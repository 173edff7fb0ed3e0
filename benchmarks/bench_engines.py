"""Milliseconds per megapixel of the two engines, measured side by side in one run.

    python benchmarks/bench_engines.py [--size 512] [--presets tiny,small] [--repeats 3]

For each preset, the same photo-sized input is restored by
- the single-pass network (one forward pass; and the 8-way ensemble),
- DTPM at K = 1, 4 and 10 (K denoiser passes + one initial-predictor pass),
through the engine interface the app and `dtpm-restore` use
(`dtpm_core.engines.engine.load_engine`), untiled or tiled (--tile). The ratios DTPM / single-pass
are printed from the same run. Models are untrained (random weights): speed does not depend on
training. The bundled models use `tiny`.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.config import Stage2Options, preset  # noqa: E402
from dtpm_core.engines.engine import DTPMSpec, SinglePassSpec, load_engine  # noqa: E402
from dtpm_core.modelfiles.weights import save_adapter, save_base  # noqa: E402
from dtpm_core.networks.model import DTPM  # noqa: E402
from dtpm_core.options import TASKS  # noqa: E402
from dtpm_core.singlepass.config import singlepass_preset  # noqa: E402
from dtpm_core.singlepass.network import SinglePassNet  # noqa: E402
from dtpm_core.singlepass.weights import save_singlepass  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rtv import best_of  # noqa: E402


def _models(folder: Path, name: str) -> tuple[Path, Path, Path]:
    torch.manual_seed(0)
    dtpm = DTPM(preset(name, denoiser__semantic="none"), Stage2Options())
    base, adapter = folder / f"{name}_base.safetensors", folder / f"{name}_motion.safetensors"
    sha = save_base(base, dtpm)
    save_adapter(adapter, dtpm, "motion-deblur", sha)
    fast = folder / f"{name}_singlepass.safetensors"
    net = SinglePassNet(singlepass_preset(name, adaptor_tasks=TASKS))
    save_singlepass(fast, net, tasks={t: 50 for t in TASKS})
    return base, adapter, fast


def _measure(base: Path, adapter: Path, fast_file: Path, image: np.ndarray, tile: int,
             repeats: int) -> dict[str, float]:
    """Best-of wall times (s) of each engine on `image`."""
    fast = load_engine(SinglePassSpec(fast_file, "motion-deblur", tile=tile, device="cpu"))
    dtpm = load_engine(DTPMSpec(base, adapter, seed=0, tile=tile, device="cpu"))
    ensemble = replace(fast.spec, ensemble=True)
    timings = {
        "single-pass": best_of(lambda: fast.restore(image), repeats),
        "single-pass, 8-way ensemble": best_of(lambda: fast.restore(image, ensemble),
                                               max(1, repeats - 2)),
    }
    for k in (1, 4, 10):
        spec = replace(dtpm.spec, steps=(k,))
        timings[f"DTPM K={k}"] = best_of(lambda spec=spec: dtpm.restore(image, spec),
                                         max(1, repeats - (k > 1) - (k > 4)))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="square image side (pixels)")
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tile", type=int, default=0, help="tile size (0 = whole image)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    image = rng.random((args.size, args.size, 3), dtype=np.float32)
    mp = args.size * args.size / 1e6
    print(f"# engines, {args.size}x{args.size} ({mp:.2f} MP), tile {args.tile or 'none'}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'preset':7s} {'engine':26s} {'ms/MP':>10s} {'x single-pass':>14s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets.split(","):
            base, adapter, fast_file = _models(Path(tmp), name)
            timings = _measure(base, adapter, fast_file, image, args.tile, args.repeats)
            one = timings["single-pass"]
            for engine, seconds in timings.items():
                print(f"{name:7s} {engine:26s} {1000 * seconds / mp:10.0f} "
                      f"{seconds / one:14.1f}")


if __name__ == "__main__":
    main()
