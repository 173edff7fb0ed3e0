"""The linear noise schedule of DTPM and the steps a DDIM run samples at (DESIGN 1.1); plain
numpy, for inference without torch (the training draws are in `objectives`).

Symbols (Ho et al. 2020; Saharia et al. 2021, SR3):
    beta_t                 linear from beta_start to beta_end, t = 1..T
    alpha_bar_t            prod_{i<=t} (1 - beta_i), with alpha_bar_0 = 1
    sqrt(gamma)            a continuous noise level; the network is conditioned on it
    x_noisy                sqrt(gamma) * x0 + sqrt(1 - gamma) * eps
"""

from __future__ import annotations

import numpy as np

from ..config import DiffusionConfig
from ..errors import ConfigError


def alpha_bars(config: DiffusionConfig) -> np.ndarray:
    """alpha_bar_t for t = 0..T as float64, shape (T + 1,), with alpha_bar_0 = 1."""
    betas = np.linspace(config.beta_start, config.beta_end, config.num_steps, dtype=np.float64)
    return np.concatenate([np.ones(1), np.cumprod(1.0 - betas)])


def sampling_timesteps(num_steps: int, config: DiffusionConfig, start: int | None = None
                       ) -> list[int]:
    """The K integer steps of a DDIM run, evenly spaced on 1..t_s and beginning at t_s
    ("trailing" spacing), in decreasing order. t_s = `start` (a model's calibrated start
    level, DESIGN 1.1) or T: K = 1 -> [t_s]; K = 4, t_s = 1000 -> [1000, 750, 500, 250]."""
    total = config.num_steps
    top = total if start is None else int(start)
    if not 1 <= top <= total:
        raise ConfigError(f"the start step must be between 1 and {total}, got {top}")
    if not 1 <= num_steps <= top:
        raise ConfigError(f"the number of sampling steps must be between 1 and {top}, "
                          f"got {num_steps}")
    stride = top / num_steps
    steps = [round(top - i * stride) for i in range(num_steps)]
    return [max(1, s) for s in steps]
