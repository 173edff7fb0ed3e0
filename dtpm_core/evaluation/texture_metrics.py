"""Is the texture DTPM adds texture? Measures of the generated layer `result - initial`
against the missing one `clean - initial` (issue 20), pure numpy on (H, W, 3) images in [0, 1].

- correlation r: 1 = the right texture in the right place, 0 = texture unrelated to the photo;
- amplitude: RMS of the generated layer in 8-bit grey levels, and its ratio to the missing
  layer's RMS (1 = as strong). With ratio a and correlation r the squared error of the initial
  prediction changes by the factor 1 - 2 a r + a^2;
- coloured specks: pixels per million whose chroma (Cb, Cr of ITU-R BT.601, 8-bit levels)
  moves by more than 40 levels from the initial prediction: saturated yellow, blue or magenta
  dots that no real texture has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPECK_LEVELS = 40.0
"""Chroma change (8-bit levels) from the initial prediction above which a pixel is a speck."""


@dataclass(frozen=True)
class TextureStats:
    """The generated texture layer of one result, measured against the missing one."""

    correlation: float
    amplitude_levels: float  # RMS of result - initial, 8-bit levels
    amplitude_ratio: float  # RMS(result - initial) / RMS(clean - initial)
    specks_per_million: float


def _chroma(image: np.ndarray) -> np.ndarray:
    """(H, W, 2) Cb, Cr in 8-bit levels (BT.601, without the 128 offset)."""
    rgb = np.asarray(image, dtype=np.float64) * 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    return np.stack([cb, cr], axis=-1)


def colour_specks_per_million(result: np.ndarray, initial: np.ndarray,
                              levels: float = SPECK_LEVELS) -> float:
    """Pixels per million whose chroma moves by more than `levels` from the initial
    prediction (Euclidean distance in the Cb-Cr plane)."""
    _check(result, initial)
    jump = np.linalg.norm(_chroma(result) - _chroma(initial), axis=-1)
    return float(np.count_nonzero(jump > levels) * 1e6 / jump.size)


def texture_stats(result: np.ndarray, initial: np.ndarray, clean: np.ndarray) -> TextureStats:
    """Correlation, amplitude and coloured specks of `result - initial` against
    `clean - initial` (nan where a layer is exactly zero)."""
    _check(result, initial)
    _check(clean, initial)
    g = (np.asarray(result, np.float64) - initial).ravel()
    m = (np.asarray(clean, np.float64) - initial).ravel()
    rms_g, rms_m = float(np.sqrt(np.mean(g * g))), float(np.sqrt(np.mean(m * m)))
    corr = float(np.mean(g * m) / (rms_g * rms_m)) if rms_g > 0 and rms_m > 0 else float("nan")
    ratio = rms_g / rms_m if rms_m > 0 else float("nan")
    return TextureStats(correlation=corr, amplitude_levels=255.0 * rms_g, amplitude_ratio=ratio,
                        specks_per_million=colour_specks_per_million(result, initial))


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if np.shape(a) != np.shape(b) or np.ndim(a) != 3 or np.shape(a)[-1] != 3:
        raise ValueError(f"expected two (H, W, 3) images of one shape, got {np.shape(a)} and "
                         f"{np.shape(b)}")
