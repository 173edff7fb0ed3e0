"""Overlapping tiles with smooth blending (DESIGN 1.5).

Pure functions on numpy arrays: where the windows go, how much each pixel of a window weighs,
and a blend of per-window outputs into one map. The restorer blends once per denoising step, so tiles are
fused at every step.

The weight of a window is 1 in its interior and falls to ~0 (raised cosine) over the overlap
at each edge that is *not* an image border; at image borders it stays 1. A network's output is
least reliable at the edge of its input (zero padding, no context), so that is exactly where
a window must stop counting. (Measured with the shipped models, 1280x768 photo, K = 4, tile
512: a centred Gaussian, still at 0.25 of its peak at a window's edge, left the residual's
gradient at window edges 1.7-1.9x its neighbours'; see tests/core/test_tiling.py.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

TILE_OVERLAP_FRACTION = 0.25
"""Overlap between neighbouring windows, as a fraction of the tile size..."""
MAX_TILE_OVERLAP = 128
"""...up to this many pixels: the overlap is there for the network's context at a window's
edge, which does not grow with the tile (512 px tiles have always overlapped by 128)."""


def tile_overlap(tile: int) -> int:
    """The blending ramp of windows for a tile size: a window's weight rises from ~0 at an
    inner edge to 1 over this many pixels."""
    return min(int(tile * TILE_OVERLAP_FRACTION), MAX_TILE_OVERLAP)


WINDOW_MULTIPLE = 32
"""Window sides are multiples of this (or the tile, or the image side): the networks pad their
input to a multiple of 2^levels (x the stem) by repeating the edge, and a window that needs
no padding keeps its edge context real (windows of 116 px, padded to 128, left steps of 0.10
at window edges in the shipped-model seam test)."""


@dataclass(frozen=True)
class Window:
    """A tile: rows top..bottom-1, columns left..right-1."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Windows along one axis as (start, end): as few as a tile allows, the first at 0 and the
    last ending at `length`, evenly spread, each just large enough (at most `tile`) for
    neighbours to overlap by at least `overlap`. (Windows of the full tile size overlapped by
    whatever the layout left: a 1898 px side took five 512 px windows, 1.35x its pixels.)"""
    if length <= tile:
        return [(0, length)]
    count = max(math.ceil((length - overlap) / (tile - overlap)), 2)
    need = math.ceil((length + (count - 1) * overlap) / count)
    size = min(tile, -(-need // WINDOW_MULTIPLE) * WINDOW_MULTIPLE)
    span = length - size
    return [(start, start + size)
            for start in (round(i * span / (count - 1)) for i in range(count))]


def tile_windows(height: int, width: int, tile: int,
                 overlap: int | None = None) -> list[Window]:
    """Overlapping windows covering a height x width image; tile <= 0 means one window.
    Windows are at most tile x tile pixels and all of one size (`_spans`)."""
    if tile <= 0 or (height <= tile and width <= tile):
        return [Window(0, height, 0, width)]
    if overlap is None:
        overlap = tile_overlap(tile)
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile), got {overlap} for tile {tile}")
    return [Window(top, bottom, left, right)
            for top, bottom in _spans(height, tile, overlap)
            for left, right in _spans(width, tile, overlap)]


def window_sizes(images: Iterable[tuple[int, int]], tile: int) -> list[tuple[int, int]]:
    """The (height, width) sizes of `tile_windows`' windows over images of these (height,
    width) sizes, each once."""
    return list(dict.fromkeys((w.bottom - w.top, w.right - w.left)
                              for height, width in images
                              for w in tile_windows(height, width, tile)))


def edge_taper(n: int, ramp: int, low: bool, high: bool) -> np.ndarray:
    """Weights along one axis of a window of n pixels, (n,) float64: 1 inside, a raised cosine
    sin^2(pi/2 * (d + 0.5) / ramp) over the `ramp` pixels at distance d from an edge that is
    tapered (`low`: the first pixels, `high`: the last). Strictly positive (~1e-4 / ramp^2 at
    a tapered edge), and two tapers crossing over the same `ramp` pixels sum to 1."""
    w = np.ones(n, dtype=np.float64)
    ramp = min(ramp, n // 2)
    if ramp > 0:
        d = np.arange(ramp, dtype=np.float64)
        rise = np.sin(0.5 * math.pi * (d + 0.5) / ramp) ** 2
        if low:
            w[:ramp] = rise
        if high:
            w[n - ramp:] = rise[::-1]
    return w


def window_weight(window: Window, height: int, width: int, ramp: int) -> np.ndarray:
    """Blending weight of `window` in a height x width image, (1, 1, h, w) float32:
    `edge_taper` on every edge inside the image, none on the image's borders."""
    rows = edge_taper(window.bottom - window.top, ramp, window.top > 0, window.bottom < height)
    cols = edge_taper(window.right - window.left, ramp, window.left > 0, window.right < width)
    return (rows[:, None] * cols[None, :]).astype(np.float32)[None, None]


class TileBlender:
    """Blends per-window outputs of a fixed window layout with `window_weight`s.

    The weights and their normalising sum are computed once for the layout and reused at
    every step, so a step costs one pass over the windows and one (B, C, H, W) accumulator.
    """

    def __init__(self, height: int, width: int, tile: int, overlap: int | None = None) -> None:
        self.height, self.width = height, width
        # the taper spans the overlap; neighbouring windows overlap at least that much
        self.ramp = tile_overlap(tile) if overlap is None else overlap
        self.windows = tile_windows(height, width, tile, self.ramp)
        self._weights: dict[tuple[int, ...], np.ndarray] = {}
        if len(self.windows) > 1:
            total = np.zeros((1, 1, height, width), dtype=np.float32)
            for window in self.windows:
                rows, cols = window.slices
                total[..., rows, cols] += self._weight(window)
            self._inverse_total = np.reciprocal(total, out=total)

    def _weight(self, window: Window) -> np.ndarray:
        key = (window.bottom - window.top, window.right - window.left, window.top > 0,
               window.bottom < self.height, window.left > 0, window.right < self.width)
        if key not in self._weights:
            self._weights[key] = window_weight(window, self.height, self.width, self.ramp)
        return self._weights[key]

    def __len__(self) -> int:
        return len(self.windows)

    def blend(self, fn: Callable[[Window], np.ndarray], channels: int,
              batch: int = 1, on_window: Callable[[], None] | None = None) -> np.ndarray:
        """out = sum_w weight_w * fn(w) / sum_w weight_w, as (batch, channels, H, W) float32.

        `fn(window)` returns the output for that window as a new array (it is weighted in
        place); `on_window` is called after each
        (for progress reporting and cancellation checks)."""
        if len(self.windows) == 1:
            out = np.asarray(fn(self.windows[0]), dtype=np.float32)
            if on_window is not None:
                on_window()
            return out
        acc = np.zeros((batch, channels, self.height, self.width), dtype=np.float32)
        for window in self.windows:
            rows, cols = window.slices
            part = np.asarray(fn(window), dtype=np.float32)
            part *= self._weight(window)
            acc[..., rows, cols] += part
            del part
            if on_window is not None:
                on_window()
        acc *= self._inverse_total
        return acc
