"""The semantic encoder's input without torch: the whole image resized to the encoder's input
size exactly as `torch.nn.functional.interpolate(mode="bilinear", antialias=True,
align_corners=False)` resizes it (`dtpm_core.networks.semantic.downscale_for_semantics`, the
torch engine's way), in numpy (the OpenVINO path imports no torch), so that the semantic
graph runs at one fixed size: compiled once, where a graph that resized inside compiled again
(5-10 s) for every new photo size.

The resampling is separable: along each axis every output pixel is a normalised weighted sum
of input pixels under a triangle filter stretched by the downscale factor (PIL's and torch's
antialiased bilinear; for upscaling the plain triangle). Each axis is one small matrix.
"""

from __future__ import annotations

import numpy as np

SEMANTIC_INPUT_SIZE = 224
"""The encoder's input height and width: the whole image is resized to this before encoding."""


def resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float64 rows of antialiased bilinear weights, each summing to 1:
    torch's `_compute_indices_min_size_weights_aa` (align_corners=False)."""
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0  # interp_size 2, halved, times the scale
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        x = (np.arange(lo, hi, dtype=np.float64) - center + 0.5) * invscale
        w = np.clip(1.0 - np.abs(x), 0.0, None)
        total = w.sum()
        weights[i, lo:hi] = w / total if total > 0 else w
    return weights


def semantic_input(image: np.ndarray, size: int = SEMANTIC_INPUT_SIZE) -> np.ndarray:
    """(1, 3, H, W) float32 -> (1, 3, size, size) float32, resized as the torch engine does."""
    rows = resize_weights(image.shape[-2], size).astype(np.float32)
    cols = resize_weights(image.shape[-1], size).astype(np.float32)
    out = rows @ np.asarray(image, dtype=np.float32) @ cols.T  # (1, 3, size, size)
    return np.ascontiguousarray(out, dtype=np.float32)
