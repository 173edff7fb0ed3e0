"""Throughput of `dtpm-restore --cluster` on a local Ray with 1 and 2 workers, beside the
single-process run, on the same photos (docs/cluster.md quotes its output).

    python scripts/cluster_throughput.py [--photos 12] [--size 256] [--rounds 2]

Each configuration runs as its own `dtpm-restore` process, in rounds that alternate them, so
a busy machine slows all of them alike. Reported per run: the wall time of the whole command
(Ray start, workers importing torch and loading the model included) and the steady rate,
workers / median seconds per photo from the results table (what a long batch approaches).
Every run's outputs are compared byte for byte with the single-process run's.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "resources" / "models" / "singlepass.safetensors"


def make_photos(folder: Path, count: int, size: int) -> None:
    """Smooth random photos (bicubic upscales of noise), PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rng = np.random.default_rng(i)
        small = Image.fromarray(rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8))
        small.resize((size, size), Image.BICUBIC).save(folder / f"p{i:03d}.png")


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*.png"))}


def run(inputs: Path, out: Path, workers: int | None, common: list[str]) -> dict:
    """One dtpm-restore run; wall seconds and, for a cluster run, the steady rate."""
    command = [str(Path(sys.executable).parent / "dtpm-restore"), str(inputs), "-o", str(out),
               *common]
    if workers:
        command += ["--cluster", "--cluster-workers", str(workers),
                    "--cluster-cpus-per-worker", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DTPM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)}\nexit {done.returncode}:\n"
                         f"{done.stdout[-2000:]}{done.stderr[-4000:]}")
    result = {"wall": wall, "steady": None}
    table = out / "dtpm-restore-results.tsv"
    if workers and table.is_file():
        from dtpm_core.cluster.results import read_results_table

        seconds = [float(r["seconds"]) for r in read_results_table(table) if r["seconds"]]
        result["steady"] = workers / statistics.median(seconds)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backend", default="torch")
    options = parser.parse_args()
    common = ["--engine", "single-pass", "--model", str(MODEL), "--task", "desnow",
              "--backend", options.backend, "-q"]
    with tempfile.TemporaryDirectory(prefix="cluster_throughput.") as tmp:
        tmp = Path(tmp)
        make_photos(tmp / "in", options.photos, options.size)
        rows: dict[str, list[dict]] = {"single process": [], "1 worker": [], "2 workers": []}
        reference: dict[str, str] | None = None
        for round_ in range(options.rounds):
            for label, workers in (("single process", None), ("1 worker", 1),
                                   ("2 workers", 2)):
                out = tmp / f"out-{round_}-{workers or 0}"
                rows[label].append(run(tmp / "in", out, workers, common))
                if reference is None:
                    reference = digests(out)
                assert digests(out) == reference, f"{label}: outputs differ"
        print(f"{options.photos} photos of {options.size} px, single-pass engine "
              f"({options.backend} backend), 1 thread per process; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print("| run | wall s (each round) | photos/s end to end | steady photos/s |")
        print("|---|---|---|---|")
        for label, results in rows.items():
            walls = [r["wall"] for r in results]
            steady = [r["steady"] for r in results if r["steady"]]
            best = min(walls)
            steady_text = f"{max(steady):.2f}" if steady else "-"
            print(f"| {label} | {' / '.join(f'{w:.1f}' for w in walls)} | "
                  f"{options.photos / best:.2f} | {steady_text} |")
        print("outputs byte-identical across all runs")


if __name__ == "__main__":
    main()
