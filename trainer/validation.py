"""Periodic validation during training: restore held-out images at K = loop.val_steps
through the real inference path and report PSNR/SSIM, with a sample image grid."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from dtpm_core.engines.dtpm_restorer import Restorer
from dtpm_core.evaluation.metrics import psnr, ssim
from dtpm_core.files.imageio import write_image

from .config import LoopConfig

RestorerFactory = Callable[[Path, nn.Module, int], Restorer]
"""(temporary folder, model with EMA weights, step) -> a Restorer loaded from files that the
factory exported into the folder: validation goes through the real inference path."""


def validate_restorer(make_restorer: Callable[[Path], Restorer],
                      pairs: list[tuple[np.ndarray, np.ndarray]], steps: int, seed: int,
                      grid_path: Path | None) -> dict[str, float]:
    """`pairs` are (input, clean) arrays; returns mean PSNR/SSIM of input, initial, result."""
    with tempfile.TemporaryDirectory() as tmp:
        restorer = make_restorer(Path(tmp))
        rows, scores = [], {"psnr_input": [], "psnr_initial": [], "psnr": [], "ssim": []}
        for source, clean in pairs:
            out = restorer.restore(source, steps, seed=seed, tile=0)
            scores["psnr_input"].append(psnr(source, clean))
            scores["psnr_initial"].append(psnr(out.initial, clean))
            scores["psnr"].append(psnr(out.result, clean))
            scores["ssim"].append(ssim(out.result, clean))
            rows.append(np.concatenate([source, out.initial, out.result, clean], axis=1))
    if grid_path is not None and rows:
        write_image(grid_path, np.concatenate(rows, axis=0))
    return {k: float(np.mean(v)) for k, v in scores.items() if v}


def periodic_validator(pairs: list[tuple[np.ndarray, np.ndarray]], loop: LoopConfig,
                       samples: Path, make_restorer: RestorerFactory
                       ) -> Callable[[nn.Module, int], dict[str, float]]:
    """The `validate(model, step)` hook of a TrainJob: metrics plus a sample grid per step."""
    def validate(trained: nn.Module, step: int) -> dict[str, float]:
        if not pairs:
            return {}
        return validate_restorer(lambda tmp: make_restorer(tmp, trained, step), pairs,
                                 loop.val_steps, loop.seed, samples / f"step_{step:07d}.png")
    return validate


def stack_items(items: list[dict]) -> dict:
    """Dataset items (dicts of (3, H, W) tensors) -> one batch (dict of (N, 3, H, W))."""
    import torch
    return {k: torch.stack([item[k] for item in items]) for k in items[0]}


def as_array_pair(item: dict, keys: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Two (3, H, W) tensors of a dataset item -> two (H, W, 3) float32 arrays."""
    return tuple(item[k].permute(1, 2, 0).numpy().astype(np.float32) for k in keys)
