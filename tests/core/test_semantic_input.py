"""The semantic encoder's input resized without torch matches the torch engine's resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from dtpm_core.networks.semantic_input import SEMANTIC_INPUT_SIZE, resize_weights, semantic_input


@pytest.mark.parametrize("shape", [(1264, 1898), (300, 451), (224, 224), (64, 67), (21, 9),
                                   (500, 223)])
def test_matches_torchs_antialiased_bilinear_resize(shape):
    x = np.random.default_rng(0).random((1, 3, *shape), dtype=np.float32) * 2 - 1
    expected = F.interpolate(torch.from_numpy(x), size=(SEMANTIC_INPUT_SIZE,) * 2,
                             mode="bilinear", antialias=True, align_corners=False).numpy()
    got = semantic_input(x)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-4


def test_weights_are_normalised_and_local():
    w = resize_weights(1898, 224)  # downscale by 8.5: each output sees about 17 inputs
    assert np.allclose(w.sum(axis=1), 1.0)
    assert (np.count_nonzero(w, axis=1) <= 19).all()
    assert np.array_equal(resize_weights(224, 224), np.eye(224))  # same size: the identity
