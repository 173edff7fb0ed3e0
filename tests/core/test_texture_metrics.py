"""Texture diagnostics (dtpm_core.evaluation.texture_metrics): what issue 20 measures of DTPM's
texture."""

from __future__ import annotations

import numpy as np
import pytest

from dtpm_core.evaluation.texture_metrics import colour_specks_per_million, texture_stats


@pytest.fixture()
def images():
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.2, 0.8, (64, 64, 3))
    initial = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1)
    return clean, initial, rng


def test_the_missing_detail_itself_correlates_fully(images):
    clean, initial, _ = images
    stats = texture_stats(clean, initial, clean)
    assert stats.correlation == pytest.approx(1.0)
    assert stats.amplitude_ratio == pytest.approx(1.0)
    half = texture_stats(initial + 0.5 * (clean - initial), initial, clean)
    assert half.amplitude_ratio == pytest.approx(0.5)
    assert half.amplitude_levels == pytest.approx(0.5 * stats.amplitude_levels)


def test_unrelated_noise_does_not_correlate(images):
    clean, initial, rng = images
    noise = initial + rng.normal(0, 0.01, initial.shape)
    stats = texture_stats(noise, initial, clean)
    assert abs(stats.correlation) < 0.05
    assert stats.amplitude_levels == pytest.approx(2.55, rel=0.05)
    assert stats.specks_per_million == 0


def test_coloured_specks_are_counted_grey_changes_are_not(images):
    _, initial, _ = images
    out = initial.copy()
    out[:, :, :] += 0.1  # a grey brightening moves no chroma
    assert colour_specks_per_million(np.clip(out, 0, 1), np.clip(initial + 0.1, 0, 1)) == 0
    specks = initial.copy()
    specks[3, 5] = (1.0, 1.0, 0.0)  # saturated yellow
    specks[10, 20] = (0.0, 0.0, 1.0)  # saturated blue
    assert colour_specks_per_million(specks, initial) == pytest.approx(2 * 1e6 / (64 * 64))


def test_shapes_must_match():
    with pytest.raises(ValueError, match="shape"):
        texture_stats(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)), np.zeros((4, 4, 3)))
