"""Small data sets and CPU configs for the trainer tests."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

FAST = ["model.preset=\"tiny\"", "model.semantic=\"none\"", "data.crop=32",
        "data.batch_size=2", "data.workers=0", "loop.log_every=1", "loop.checkpoint_every=2",
        "loop.validate_every=1000", "loop.val_images=1", "loop.val_size=32",
        "optim.warmup=0", "data.held_out_fraction=0.34"]
"""Overrides that make a training run take seconds on a CPU."""


@pytest.fixture(scope="session")
def clean_folder(tmp_path_factory):
    """Three small real photos (scikit-image), as PNG files."""
    from skimage import data
    folder = tmp_path_factory.mktemp("clean")
    for name in ("astronaut", "coffee", "chelsea"):
        image = getattr(data, name)()
        small = Image.fromarray(image).resize((96, 80), Image.Resampling.LANCZOS)
        small.save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="session")
def prepared_folder(tmp_path_factory, clean_folder):
    from trainer.prepare import prepare
    out = tmp_path_factory.mktemp("prepared")
    prepare([clean_folder], out, patch=40, progress=False)
    return out


def flat(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).tobytes()
