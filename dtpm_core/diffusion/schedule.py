"""The linear noise schedule and the continuous noise levels of DTPM (DESIGN 1.1).

Symbols (Ho et al. 2020; Saharia et al. 2021, SR3):
    beta_t                 linear from beta_start to beta_end, t = 1..T
    alpha_bar_t            prod_{i<=t} (1 - beta_i), with alpha_bar_0 = 1
    sqrt(gamma)            a continuous noise level; the network is conditioned on it
    x_noisy                sqrt(gamma) * x0 + sqrt(1 - gamma) * eps
"""

from __future__ import annotations

import torch

from ..config import DiffusionConfig
from ..errors import ConfigError


def alpha_bars(config: DiffusionConfig) -> torch.Tensor:
    """alpha_bar_t for t = 0..T as float64, shape (T + 1,), with alpha_bar_0 = 1."""
    betas = torch.linspace(config.beta_start, config.beta_end, config.num_steps,
                           dtype=torch.float64)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1.0 - betas, dim=0)])


def sample_training_noise_level(config: DiffusionConfig, batch: int,
                                generator: torch.Generator | None = None,
                                device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw sqrt(gamma) for a training batch as in SR3: t ~ U{1..T}, then sqrt(gamma) uniform
    between sqrt(alpha_bar_t) and sqrt(alpha_bar_{t-1}). Returns float32, shape (batch,)."""
    table = alpha_bars(config).sqrt()  # (T + 1,)
    t = torch.randint(1, config.num_steps + 1, (batch,), generator=generator)
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    low, high = table[t], table[t - 1]  # sqrt(alpha_bar_t) <= sqrt(alpha_bar_{t-1})
    return (low + u * (high - low)).to(device=device, dtype=torch.float32)


def add_noise(x0: torch.Tensor, sqrt_gamma: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_noisy = sqrt(gamma) x0 + sqrt(1 - gamma) eps; sqrt_gamma has shape (B,)."""
    g = sqrt_gamma.view(-1, 1, 1, 1).to(x0.dtype)
    return g * x0 + (1.0 - g * g).clamp_min(0.0).sqrt() * eps


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
