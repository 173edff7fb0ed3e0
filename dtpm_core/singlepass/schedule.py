"""Noise schedule of the single-pass engine (DESIGN 6): the additive IR-SDE-style schedule of
EEDTP (Lu, Fu et al. 2025), and the task -> matched-time-step tables.

Pure functions, no network. Noise levels are in units of [0, 1] images (sigma_max = 10/255).

| code            | paper                                   |
|-----------------|-----------------------------------------|
| `num_steps`     | T                                       |
| `theta`         | theta_t, linear from s*1e-4 to s*0.02    |
| `theta_bar`     | theta_bar_t = sum_{i=1..t} theta_i      |
| `dt`            | -ln(0.005) / theta_bar_T                |
| `table[t]`      | sigma_bar_t                             |
| `t_mat`         | matched time step of a degradation      |
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from .config import NUM_STEPS

SIGMA_MAX = 10.0 / 255.0  # sigma_max, in [0, 1] image units
THETA_START = 1e-4  # theta_0 / s
THETA_END = 0.02  # theta_T / s
FINAL_DECAY = 0.005  # exp(-theta_bar_T * dt): how far the SDE has decayed at t = T

MATCHED_TIME_STEPS: dict[str, int] = {
    "noise": 4, "rain": 8, "jpeg": 12, "snow": 15, "inpainting": 19, "raindrop": 22,
    "shadow": 27, "low-light": 38, "haze": 47, "blur": 50,
}
"""t_mat of the paper's degradations (EEDTP, Table of matched time steps)."""

TASK_TIME_STEPS: dict[str, int] = {
    "motion-deblur": MATCHED_TIME_STEPS["blur"],
    "defocus-deblur": MATCHED_TIME_STEPS["blur"],
    "derain-dehaze": MATCHED_TIME_STEPS["haze"],
    "desnow": MATCHED_TIME_STEPS["snow"],
    "raindrop": MATCHED_TIME_STEPS["raindrop"],
}
"""t_mat of this project's task names (DESIGN 6)."""


def time_step_for(task: str) -> int:
    """The matched time step t_mat of one of our tasks (or of a paper degradation name)."""
    if task in TASK_TIME_STEPS:
        return TASK_TIME_STEPS[task]
    if task in MATCHED_TIME_STEPS:
        return MATCHED_TIME_STEPS[task]
    raise ConfigError(
        f"no matched time step for task {task!r}; known tasks are {sorted(TASK_TIME_STEPS)} "
        f"and {sorted(MATCHED_TIME_STEPS)} (calibrate a custom task first)"
    )


def sigma_bars(num_steps: int = NUM_STEPS, sigma_max: float = SIGMA_MAX) -> torch.Tensor:
    """sigma_bar_t for t = 0..T: a (T + 1,) float64 tensor, increasing from sigma_bar_0 = 0
    to about sigma_max at t = T."""
    if num_steps < 1:
        raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
    s = 1000.0 / (num_steps + 1)  # spreads the T = 1000 IR-SDE range over T + 1 points
    theta = torch.linspace(s * THETA_START, s * THETA_END, num_steps + 1,
                           dtype=torch.float64)  # theta_t, (T + 1,)
    theta_bar = torch.cumsum(theta, 0) - theta[0]  # theta_bar_t, theta_bar_0 = 0
    dt = -math.log(FINAL_DECAY) / theta_bar[-1]
    return sigma_max * torch.sqrt(1.0 - torch.exp(-2.0 * theta_bar * dt))  # sigma_bar_t


def noisy_input(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                table: torch.Tensor) -> torch.Tensor:
    """x_t = x0 + sigma_bar_t * eps (additive, the mean is not shrunk as in DDPM).

    Args:
        x0: (B, C, H, W) clean images in [0, 1].
        t: (B,) long time steps in 0..T.
        eps: (B, C, H, W) standard normal noise.
        table: (T + 1,) sigma_bar from `sigma_bars`.
    """
    sigma = table.to(x0.device)[t.to(x0.device)].to(x0.dtype).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
    return x0 + sigma * eps


def sample_time_steps(batch: int, generator: torch.Generator,
                      num_steps: int = NUM_STEPS) -> torch.Tensor:
    """t ~ U{1..T} for each batch element: (B,) long, on the generator's device."""
    return torch.randint(1, num_steps + 1, (batch,), generator=generator,
                         device=generator.device)
