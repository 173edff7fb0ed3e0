"""Restore a fixed set of degraded photos with both engines through `dtpm-restore` and print
the SHA-256 of every output file: run it before and after a refactor that must not change
results, and diff the two listings (byte for byte the same outputs, or a line that differs). A case
that `dtpm-restore` refuses on this machine (bf16 on a CPU without native bf16) prints its
refusal instead of a hash, so the other cases still compare.

    python scripts/engine_output_hashes.py > before.txt
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from skimage import data as skdata

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.files.imageio import write_image  # noqa: E402
from trainer.degradations import degrade  # noqa: E402

USAGE_ERROR = 2  # dtpm-restore's exit status for options this machine cannot honour
PHOTOS = {  # name: (scikit-image photo, degradation, seed); crops keep the runs short
    "chelsea_motion": ("chelsea", "motion-deblur", 1),
    "chelsea_snow": ("chelsea", "desnow", 2),
    "coffee_rain": ("coffee", "derain-dehaze", 3),
}
CASES = {  # name: (input photo, dtpm-restore options)
    "dtpm_k1": ("chelsea_motion", ["--adapter", "motion-deblur", "--steps", "1"]),
    "dtpm_k4": ("chelsea_motion", ["--adapter", "motion-deblur", "--steps", "4"]),
    "dtpm_k10_eta_strength_tile": ("chelsea_snow", [
        "--adapter", "desnow", "--steps", "10", "--seed", "3", "--eta", "0.5",
        "--strength", "0.6", "--tile", "128"]),
    "dtpm_k4_bf16": ("coffee_rain", ["--adapter", "derain-dehaze", "--precision", "bf16"]),
    "fast_desnow": ("chelsea_snow", ["--engine", "single-pass", "--task", "desnow"]),
    "fast_rain_ensemble_tile": ("coffee_rain", [
        "--engine", "single-pass", "--task", "derain-dehaze", "--ensemble", "--tile", "128"]),
    "fast_motion_bf16": ("chelsea_motion", [
        "--engine", "single-pass", "--task", "motion-deblur", "--precision", "bf16"]),
    "dtpm_k4_openvino_tile": ("coffee_rain", [
        "--adapter", "derain-dehaze", "--backend", "openvino", "--tile", "128"]),
    "fast_desnow_openvino": ("chelsea_snow", [
        "--engine", "single-pass", "--task", "desnow", "--backend", "openvino"]),
}


def make_photos(folder: Path) -> dict[str, Path]:
    paths = {}
    for name, (photo, task, seed) in PHOTOS.items():
        clean = getattr(skdata, photo)()[:200, :280].astype(np.float32) / 255.0
        degraded = degrade(task, clean, np.random.default_rng(seed))
        paths[name] = folder / f"{name}.png"
        write_image(paths[name], degraded, bit_depth=8)
    return paths


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        photos = make_photos(Path(tmp))
        for case, (photo, options) in CASES.items():
            out = Path(tmp) / case
            run = subprocess.run([sys.executable, "-m", "dtpm_core.cli", str(photos[photo]),
                                  "-o", str(out), "--device", "cpu", "--quiet", *options],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 cwd=ROOT)
            if run.returncode == USAGE_ERROR:  # refused here, e.g. bf16 without native bf16
                print(f"{case}\trefused: {run.stderr.strip().splitlines()[-1]}", flush=True)
                continue
            if run.returncode != 0:
                sys.stderr.write(run.stderr)
                raise subprocess.CalledProcessError(run.returncode, run.args)
            (result,) = out.glob("*.png")
            print(f"{case}\t{hashlib.sha256(result.read_bytes()).hexdigest()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
