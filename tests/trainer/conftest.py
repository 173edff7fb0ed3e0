"""Small data sets and CPU configs for the trainer tests."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


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
