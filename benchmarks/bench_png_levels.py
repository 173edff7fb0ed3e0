"""How long writing a restored photo as PNG takes, per zlib compression level, side by side.

    python benchmarks/bench_png_levels.py [--megapixels 2.4] [--rounds 3]

A training photograph of ../shared/data/hq (or the bundled sample), resized to the given size,
restored by nothing (PNG's cost depends on the content, and a photograph is the realistic
case), encoded by OpenCV as `dtpm_core.files.imageio` does, 8-bit and 16-bit. Prints the
best-of-rounds seconds and the file size per level, and each level's time and size relative
to the level `imageio` uses (`PNG_COMPRESSION_LEVEL`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.files.imageio import PNG_COMPRESSION_LEVEL, read_image  # noqa: E402

LEVELS = (1, 2, 3, 6, 9)


def photo(megapixels: float) -> np.ndarray:
    folder = ROOT.parent / "shared" / "data" / "hq"
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    source = files[0] if files else ROOT / "resources" / "samples" / "chelsea.png"
    image = read_image(source).rgb
    scale = (megapixels * 1e6 / (image.shape[0] * image.shape[1])) ** 0.5
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def best_encode(pixels: np.ndarray, level: int, rounds: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, level])
        times.append(time.perf_counter() - started)
        assert ok
        size = encoded.size
    return min(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=2.4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    image = np.clip(photo(args.megapixels), 0.0, 1.0)
    print(f"{image.shape[1]}x{image.shape[0]} photo, best of {args.rounds}; "
          f"imageio writes level {PNG_COMPRESSION_LEVEL}")
    for bits, dtype, peak in ((8, np.uint8, 255), (16, np.uint16, 65535)):
        pixels = np.ascontiguousarray((image[..., ::-1] * peak + 0.5).astype(dtype))
        rows = {level: best_encode(pixels, level, args.rounds) for level in LEVELS}
        base_s, base_bytes = rows[PNG_COMPRESSION_LEVEL]
        print(f"\n{bits}-bit\n| level | s | MiB | time vs {PNG_COMPRESSION_LEVEL} | size vs "
              f"{PNG_COMPRESSION_LEVEL} |\n|---|---|---|---|---|")
        for level, (seconds, size) in rows.items():
            print(f"| {level} | {seconds:.3f} | {size / 2**20:.2f} | {seconds / base_s:.2f}x | "
                  f"{size / base_bytes:.3f}x |")


if __name__ == "__main__":
    main()
