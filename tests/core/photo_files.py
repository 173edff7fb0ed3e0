"""Small photo files on disk for the output-planning and restore tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image


def noise_photo(path: Path, seed: int = 0, size: tuple[int, int] = (40, 32)) -> Path:
    """A seeded random RGB PNG (or whatever `path`'s suffix says) of `size` (width, height)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
