"""What both engines do around their networks (DESIGN 1.5): progress and cancel in network
passes, the out-of-memory back-off to smaller tiles, and the checks and conversions of the
image going in and coming out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..backends.device import is_out_of_memory, release_cached_memory
from ..errors import Cancelled, ConfigError, ModelOutputError, OutOfMemory
from ..options import MIN_TILE  # the smallest tile the out-of-memory back-off tries


@dataclass(frozen=True)
class RestoreProgress:
    """Progress of one `restore` call, in network passes (one pass = one tile)."""

    done: int
    total: int
    stage: str  # "initial prediction" or "K=4: step 2/4"


ProgressCallback = Callable[[RestoreProgress], None]
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class DTPMCalls:
    """The DTPM engine's networks on one backend, for one restore: every image a (1, C, h, w)
    float32 array in [-1, 1], every output a new float32 array.

        predict(y_d) -> y_eps                             None without an initial predictor
        semantic(y_eps) -> code (1, D)                    the whole image; None without one
        denoise(x_t, y_d, sqrt_gamma, code, guidance) -> eps_hat
    `guided`: the task's adapters take the initial prediction (guidance) as input."""

    predict: Callable[[np.ndarray], np.ndarray] | None
    semantic: Callable[[np.ndarray], np.ndarray] | None
    denoise: Callable[[np.ndarray, np.ndarray, float, np.ndarray | None, np.ndarray | None],
                      np.ndarray]
    guided: bool


class PassCounter:
    """Counts network passes: reports progress after each one and raises `Cancelled` there
    when `should_stop()` says so, so a cancel takes effect within one pass."""

    def __init__(self, total: int, stage: str, progress: ProgressCallback | None,
                 should_stop: StopCheck | None) -> None:
        self.total, self.stage, self.done = total, stage, 0
        self._progress, self._should_stop = progress, should_stop

    def tick(self) -> None:
        self.done += 1
        if self._progress is not None:
            self._progress(RestoreProgress(self.done, self.total, self.stage))
        if self._should_stop is not None and self._should_stop():
            raise Cancelled(f"restoration cancelled ({self.stage}, after {self.done} of "
                            f"{self.total} passes)")


T = TypeVar("T")


def run_with_tile_backoff(run: Callable[[int], T], tile: int, shape: tuple[int, int],
                          device: Any) -> tuple[T, int, list[str]]:
    """Call run(tile); on out-of-memory halve the tile (down to MIN_TILE) and call it again.
    Returns (result, tile used, notes about each retry); raises OutOfMemory at the end."""
    notes: list[str] = []
    tile = max(int(tile), 0)
    while True:
        try:
            return run(tile), tile, notes
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            release_cached_memory(device)
            smaller = smaller_tile(tile, shape)
            if smaller is None:
                raise OutOfMemory(
                    f"out of memory on {device} even with {tile or 'no'}-pixel tiles; "
                    "close other programs, use the CPU, or a smaller image") from exc
            notes.append(f"out of memory with tile {tile or 'off'}: retried with {smaller}")
            tile = smaller


def check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ConfigError(f"restore expects an (H, W, 3) array, got shape {shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ConfigError(f"restore got an empty image of shape {image.shape}")
    image = np.ascontiguousarray(image, dtype=np.float32)
    if not np.isfinite(image).all():
        raise ConfigError("the image contains NaN or infinite values")
    return image


def require_finite(array: np.ndarray, what: str, files: Sequence[str | Path]) -> None:
    """NaN or infinite values mean broken weights: say which model file(s), never show or save
    a clipped image of them. Check before any clip (which would hide an infinity)."""
    if np.isfinite(array).all():
        return
    named = " / ".join(str(f) for f in files)
    if len(files) == 1:
        fault = f"the model file {named} holds broken weights; export or download it again"
    else:
        fault = f"the model files {named} hold broken weights; export or download them again"
    raise ModelOutputError(f"the {what} contains NaN or infinite values: {fault}")


def to_image(x: np.ndarray) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) float32 in [0, 1]; `x` is not modified."""
    out = np.empty((x.shape[2], x.shape[3], 3), dtype=np.float32)
    for c in range(3):  # channel by channel: no second full-size temporary
        plane = x[0, c] + np.float32(1.0)
        plane *= np.float32(0.5)
        out[..., c] = np.clip(plane, 0.0, 1.0, out=plane)
    return out


def to_network_input(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) in [0, 1] -> (1, 3, h, w) float32 in [-1, 1], a new array."""
    x = np.multiply(image.transpose(2, 0, 1)[None], np.float32(2.0),
                    out=np.empty((1, 3, *image.shape[:2]), dtype=np.float32))
    x -= np.float32(1.0)
    return x


def smaller_tile(tile: int, shape: tuple[int, int]) -> int | None:
    current = tile if tile > 0 else max(shape)
    smaller = current // 2
    return smaller if smaller >= MIN_TILE else None
