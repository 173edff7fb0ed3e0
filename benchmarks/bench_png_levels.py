"""How long writing a restored photo as PNG takes, per zlib compression level and strategy,
side by side.

    python benchmarks/bench_png_levels.py [--megapixels 2.4] [--rounds 3] [--photos 4]

Training photographs of ../shared/data/hq (or the bundled sample), resized to the given size,
restored by nothing (PNG's cost depends on the content, and a photograph is the realistic
case), encoded by OpenCV as `dtpm_core.files.imageio` does, 8-bit and 16-bit. Prints, summed
over the photos, the best-of-rounds seconds and the file size per level and zlib strategy
(default; Huffman only, which skips the string matching that finds little in a photo; RLE),
and each row's time and size relative to what `imageio` writes (`PNG_COMPRESSION_LEVEL`,
`PNG_STRATEGY`).
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

from dtpm_core.files.imageio import (  # noqa: E402
    PNG_COMPRESSION_LEVEL,
    PNG_STRATEGY,
    read_image,
)

STRATEGIES = {"default": cv2.IMWRITE_PNG_STRATEGY_DEFAULT,
              "huffman": cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
              "rle": cv2.IMWRITE_PNG_STRATEGY_RLE}
ROWS = tuple((level, name) for level in (1, 2, 3, 6) for name in STRATEGIES)


def photos(megapixels: float, count: int) -> list[np.ndarray]:
    folder = ROOT.parent / "shared" / "data" / "hq"
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    sources = files[:: max(1, len(files) // count)][:count] if files else \
        [ROOT / "resources" / "samples" / "chelsea.png"]
    return [photo(source, megapixels) for source in sources]


def photo(source: Path, megapixels: float) -> np.ndarray:
    image = read_image(source).rgb
    scale = (megapixels * 1e6 / (image.shape[0] * image.shape[1])) ** 0.5
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def best_encode(pixels: np.ndarray, level: int, strategy: str, rounds: int
                ) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, level,
                                                    cv2.IMWRITE_PNG_STRATEGY, STRATEGIES[strategy]])
        times.append(time.perf_counter() - started)
        assert ok
        size = encoded.size
    return min(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=2.4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", type=int, default=4)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    images = [np.clip(image, 0.0, 1.0) for image in photos(args.megapixels, args.photos)]
    shipped = (PNG_COMPRESSION_LEVEL, next(k for k, v in STRATEGIES.items() if v == PNG_STRATEGY))
    print(f"{len(images)} photos of {args.megapixels} MP, best of {args.rounds}, summed; "
          f"imageio writes level {shipped[0]}, strategy {shipped[1]}")
    for bits, dtype, peak in ((8, np.uint8, 255), (16, np.uint16, 65535)):
        rows = {row: [0.0, 0] for row in ROWS}
        for image in images:
            pixels = np.ascontiguousarray((image[..., ::-1] * peak + 0.5).astype(dtype))
            for level, strategy in ROWS:
                seconds, size = best_encode(pixels, level, strategy, args.rounds)
                rows[level, strategy][0] += seconds
                rows[level, strategy][1] += size
        base_s, base_bytes = rows[shipped]
        print(f"\n{bits}-bit\n| level | strategy | s | MiB | time vs imageio's | size vs "
              f"imageio's |\n|---|---|---|---|---|---|")
        for (level, strategy), (seconds, size) in rows.items():
            print(f"| {level} | {strategy} | {seconds:.3f} | {size / 2**20:.2f} | "
                  f"{seconds / base_s:.2f}x | {size / base_bytes:.3f}x |")


if __name__ == "__main__":
    main()
