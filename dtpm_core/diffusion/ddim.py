"""DDIM sampling (Song, Meng, Ermon 2021) over any K of the T training steps.

One plain function, `sample_ddim`, in the k-diffusion manner: it takes a noise-prediction
callable, the starting noise and the steps, reports each step through `callback` and stops
between steps when `should_stop()` is true. It keeps no state between runs.

Symbols (DDIM paper, eq. 12) -> names here:
    x_t                         x
    alpha_t (DDIM's notation)   alpha_bar[t]      (cumulative product, alpha_bar_0 = 1)
    eps_theta(x_t)              eps_hat
    "predicted x_0"             x0_hat
    sigma_t(eta)                sigma
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..errors import Cancelled

NoisePredictor = Callable[[torch.Tensor, float], torch.Tensor]
"""eps_hat = f(x_t, sqrt(alpha_bar_t)): the denoiser with everything but x_t bound."""


@dataclass(frozen=True)
class DDIMProgress:
    """What the per-step callback receives."""

    step: int  # 1-based index of the step just finished
    total: int  # K
    t: int  # the training step it sampled at
    x0_hat: torch.Tensor  # the current estimate of x0, (B, C, H, W)


def ddim_step(x: torch.Tensor, eps_hat: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float,
              eta: float = 0.0, noise: torch.Tensor | None = None,
              clip_x0: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update from step t to the previous sampled step; returns (x_prev, x0_hat)."""
    # Written with in-place updates of the tensors created here, so that a step holds at most
    # three image-sized temporaries (a 24-megapixel photo is 288 MB per tensor).
    # (1) predicted x0, eq. 12 first term: (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)
    x0_hat = torch.add(x, eps_hat, alpha=-(1.0 - alpha_bar_t) ** 0.5).div_(alpha_bar_t ** 0.5)
    if clip_x0 is not None:
        x0_hat.clamp_(-clip_x0, clip_x0)
        # keep eps consistent with the clipped x0 so that the update stays on the DDIM path
        eps_hat = torch.add(x, x0_hat, alpha=-alpha_bar_t ** 0.5).div_(
            max(1.0 - alpha_bar_t, 1e-12) ** 0.5)
    # (2) sigma_t(eta), eq. 16
    sigma = 0.0
    if eta > 0.0 and alpha_bar_prev < 1.0:
        sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t)
                       * (1 - alpha_bar_t / alpha_bar_prev)) ** 0.5
    # (3) x_{t-1} = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps  (+ sigma z), eq. 12
    x_prev = x0_hat * alpha_bar_prev ** 0.5
    x_prev.add_(eps_hat, alpha=max(1.0 - alpha_bar_prev - sigma ** 2, 0.0) ** 0.5)
    del eps_hat
    if sigma > 0.0:
        if noise is None:
            raise ValueError("ddim_step: eta > 0 needs a noise tensor")
        x_prev.add_(noise, alpha=sigma)
    return x_prev, x0_hat


def sample_ddim(eps_model: NoisePredictor, x_start: torch.Tensor, timesteps: Sequence[int],
                alpha_bar: torch.Tensor, *, eta: float = 0.0,
                generator: torch.Generator | None = None,
                callback: Callable[[DDIMProgress], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                clip_x0: float | None = None) -> torch.Tensor:
    """Run DDIM from x_start (noise at timesteps[0]) down to x0 and return it.

    Args:
        eps_model: the noise predictor, called once per step.
        x_start: (B, C, H, W) starting noise, usually from a seeded generator.
        timesteps: decreasing training steps, e.g. `schedule.sampling_timesteps(K, config)`.
        alpha_bar: (T + 1,) cumulative products with alpha_bar[0] = 1 (`schedule.alpha_bars`).
        eta: 0 gives deterministic DDIM; > 0 adds fresh noise drawn from `generator`.
        callback: called after every step with a `DDIMProgress`.
        should_stop: polled before every step; when it returns True, `Cancelled` is raised.
        clip_x0: optional bound on |x0_hat| at every step.
    """
    if len(timesteps) == 0:
        raise ValueError("sample_ddim needs at least one timestep")
    table = [float(a) for a in alpha_bar.tolist()]
    x = x_start
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        if should_stop is not None and should_stop():
            raise Cancelled(f"sampling cancelled before step {i + 1} of {total}")
        t_prev = timesteps[i + 1] if i + 1 < total else 0
        eps_hat = eps_model(x, table[t] ** 0.5)
        noise = None
        if eta > 0.0 and t_prev > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x, x0_hat = ddim_step(x, eps_hat.to(x.dtype), table[t], table[t_prev], eta, noise,
                              clip_x0)
        del eps_hat, noise  # free before the next network pass allocates its output
        if callback is not None:
            callback(DDIMProgress(step=i + 1, total=total, t=t, x0_hat=x0_hat))
        del x0_hat
    return x
