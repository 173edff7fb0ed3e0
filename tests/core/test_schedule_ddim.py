"""The noise schedule, training noise levels and the DDIM sampler, without any network."""

import numpy as np
import pytest
import torch

from dtpm_core.config import DiffusionConfig
from dtpm_core.diffusion.ddim import sample_ddim
from dtpm_core.diffusion.noise import TorchCompatibleNormal
from dtpm_core.diffusion.objectives import add_noise, sample_training_noise_level
from dtpm_core.diffusion.schedule import alpha_bars, sampling_timesteps
from dtpm_core.errors import Cancelled, ConfigError

CONFIG = DiffusionConfig()


def test_alpha_bar_matches_linear_betas():
    table = alpha_bars(CONFIG)
    assert table.shape == (1001,)
    assert table[0] == 1.0
    assert table.dtype == np.float64 and np.isclose(table[1], 1 - 1e-4, rtol=0, atol=1e-15)
    assert np.all(table[1:] < table[:-1])  # strictly decreasing
    assert 3e-5 < table[-1] < 5e-5  # prod(1 - beta) for the DDPM linear schedule


def test_training_noise_levels_stay_inside_their_interval():
    generator = torch.Generator().manual_seed(0)
    sqrt_table = torch.from_numpy(alpha_bars(CONFIG)).sqrt().float()
    for _ in range(20):
        levels = sample_training_noise_level(CONFIG, 512, generator)
        assert levels.dtype == torch.float32
        # every draw lies in some [sqrt(alpha_bar_t), sqrt(alpha_bar_{t-1})], t in 1..T
        assert levels.min() >= sqrt_table[-1] - 1e-7 and levels.max() <= 1.0
    # recompute with the same seed and check each level against its own t's interval
    generator = torch.Generator().manual_seed(1)
    t = torch.randint(1, CONFIG.num_steps + 1, (4096,), generator=generator)
    generator = torch.Generator().manual_seed(1)
    levels = sample_training_noise_level(CONFIG, 4096, generator)
    low, high = sqrt_table[t], sqrt_table[t - 1]
    assert torch.all(levels >= low - 1e-6) and torch.all(levels <= high + 1e-6)
    assert (levels - low).abs().max() > 0  # continuous, not snapped to the grid


def test_add_noise_has_unit_variance_for_unit_signal():
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 3, 16, 16, generator=generator)
    eps = torch.randn(64, 3, 16, 16, generator=generator)
    level = torch.full((64,), 0.6)
    noisy = add_noise(x0, level, eps)
    assert torch.allclose(noisy, 0.6 * x0 + 0.8 * eps, atol=1e-6)


@pytest.mark.parametrize("k,expected", [(1, [1000]), (4, [1000, 750, 500, 250]),
                                        (10, list(range(1000, 0, -100)))])
def test_sampling_timesteps_evenly_spaced(k, expected):
    assert sampling_timesteps(k, CONFIG) == expected


@pytest.mark.parametrize("k,expected", [(1, [250]), (4, [250, 188, 125, 62]),
                                        (50, list(range(250, 0, -5)))])
def test_sampling_timesteps_from_a_start_level(k, expected):
    assert sampling_timesteps(k, CONFIG, start=250) == expected


def test_more_steps_than_the_start_level_is_an_error():
    with pytest.raises(ConfigError, match="between 1 and 40"):
        sampling_timesteps(50, CONFIG, start=40)
    with pytest.raises(ConfigError, match="start step"):
        sampling_timesteps(4, CONFIG, start=1001)


def test_sampling_timesteps_cover_every_k_up_to_50():
    for k in range(1, 51):
        steps = sampling_timesteps(k, CONFIG)
        assert len(steps) == k and len(set(steps)) == k
        assert steps[0] == 1000 and steps[-1] >= 1 and steps == sorted(steps, reverse=True)
    with pytest.raises(ConfigError):
        sampling_timesteps(0, CONFIG)


def _oracle(x0):
    """The exact noise predictor for a known x0: eps = (x_t - sqrt(a) x0) / sqrt(1 - a)."""
    def predict(x_t, sqrt_alpha_bar):
        return (x_t - np.float32(sqrt_alpha_bar) * x0) / np.float32((1 - sqrt_alpha_bar ** 2) ** 0.5)
    return predict


@pytest.mark.parametrize("k", [1, 4, 50])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_with_exact_noise_oracle_returns_x0(k, eta):
    rng = np.random.default_rng(0)
    x0 = (rng.random((2, 3, 8, 8), dtype=np.float32) * 2 - 1).astype(np.float32)
    noise = TorchCompatibleNormal(0)
    out = sample_ddim(_oracle(x0), noise.normal((2, 3, 8, 8)), sampling_timesteps(k, CONFIG),
                      alpha_bars(CONFIG), eta=eta, noise=noise)
    assert out.dtype == np.float32 and np.abs(out - x0).max() < 1e-4


def test_ddim_known_answer_with_a_dummy_model():
    """A fixed linear 'model' and seed give a fixed number (guards the update formula)."""
    x_start = TorchCompatibleNormal(0).normal((1, 1, 4, 4))
    table = alpha_bars(CONFIG)
    out = sample_ddim(lambda x, s: 0.5 * x, x_start.copy(), sampling_timesteps(2, CONFIG), table)
    # hand-derived: two DDIM steps 1000 -> 500 -> 0 with eps_hat = x / 2
    x = x_start.astype(np.float64)
    for t, t_prev in ((1000, 500), (500, 0)):
        a, a_prev = table[t], table[t_prev]
        eps = 0.5 * x
        x0 = (x - np.sqrt(1 - a) * eps) / np.sqrt(a)
        x = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps
    assert np.allclose(out, x, rtol=1e-4, atol=1e-4)


def test_ddim_is_seeded_with_eta():
    table = alpha_bars(CONFIG)
    runs = [sample_ddim(lambda x, s: 0.1 * x, np.zeros((1, 3, 4, 4), np.float32),
                        sampling_timesteps(5, CONFIG), table, eta=1.0,
                        noise=TorchCompatibleNormal(seed))
            for seed in (3, 3, 4)]
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_ddim_with_eta_needs_a_noise_source():
    with pytest.raises(ValueError, match="noise source"):
        sample_ddim(lambda x, s: x, np.zeros((1, 1, 2, 2), np.float32),
                    sampling_timesteps(5, CONFIG), alpha_bars(CONFIG), eta=0.5)


def test_ddim_callback_and_cancellation():
    table = alpha_bars(CONFIG)
    seen = []
    sample_ddim(lambda x, s: x.copy(), np.zeros((1, 1, 2, 2), np.float32),
                sampling_timesteps(5, CONFIG), table,
                callback=lambda p: seen.append((p.step, p.total, p.t)))
    assert seen == [(1, 5, 1000), (2, 5, 800), (3, 5, 600), (4, 5, 400), (5, 5, 200)]
    calls = []

    def model(x, s):
        calls.append(s)
        return x.copy()

    with pytest.raises(Cancelled):
        sample_ddim(model, np.zeros((1, 1, 2, 2), np.float32), sampling_timesteps(10, CONFIG),
                    table, should_stop=lambda: len(calls) >= 3)
    assert len(calls) == 3  # stopped between steps, no step after the request
