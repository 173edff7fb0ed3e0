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

import numpy as np

from ..errors import Cancelled
from .noise import TorchCompatibleNormal

NoisePredictor = Callable[[np.ndarray, float], np.ndarray]
"""eps_hat = f(x_t, sqrt(alpha_bar_t)): the denoiser with everything but x_t bound."""


@dataclass(frozen=True)
class DDIMProgress:
    """What the per-step callback receives."""

    step: int  # 1-based index of the step just finished
    total: int  # K
    t: int  # the training step it sampled at
    x0_hat: np.ndarray  # the current estimate of x0, (B, C, H, W)


def ddim_step(x: np.ndarray, eps_hat: np.ndarray, alpha_bar_t: float, alpha_bar_prev: float,
              eta: float = 0.0, noise: np.ndarray | None = None,
              clip_x0: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One DDIM update from step t to the previous sampled step; returns (x_prev, x0_hat).
    float32 arrays; `eps_hat` is used as scratch space (its values are lost)."""
    # Written with in-place updates, so that a step holds at most three image-sized arrays
    # (a 24-megapixel photo is 288 MB per array).
    f32 = np.float32
    # (1) predicted x0, eq. 12 first term: (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)
    x0_hat = np.multiply(eps_hat, f32(-(1.0 - alpha_bar_t) ** 0.5))
    x0_hat += x
    x0_hat /= f32(alpha_bar_t ** 0.5)
    if clip_x0 is not None:
        np.clip(x0_hat, -clip_x0, clip_x0, out=x0_hat)
        # keep eps consistent with the clipped x0 so that the update stays on the DDIM path
        np.multiply(x0_hat, f32(-alpha_bar_t ** 0.5), out=eps_hat)
        eps_hat += x
        eps_hat /= f32(max(1.0 - alpha_bar_t, 1e-12) ** 0.5)
    # (2) sigma_t(eta), eq. 16
    sigma = 0.0
    if eta > 0.0 and alpha_bar_prev < 1.0:
        sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t)
                       * (1 - alpha_bar_t / alpha_bar_prev)) ** 0.5
    # (3) x_{t-1} = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps  (+ sigma z), eq. 12
    x_prev = x0_hat * f32(alpha_bar_prev ** 0.5)
    eps_hat *= f32(max(1.0 - alpha_bar_prev - sigma ** 2, 0.0) ** 0.5)
    x_prev += eps_hat
    if sigma > 0.0:
        if noise is None:
            raise ValueError("ddim_step: eta > 0 needs a noise array")
        x_prev += noise * f32(sigma)
    return x_prev, x0_hat


def sample_ddim(eps_model: NoisePredictor, x_start: np.ndarray, timesteps: Sequence[int],
                alpha_bar: Sequence[float], *, eta: float = 0.0,
                noise: TorchCompatibleNormal | None = None,
                callback: Callable[[DDIMProgress], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                clip_x0: float | None = None) -> np.ndarray:
    """Run DDIM from x_start (noise at timesteps[0]) down to x0 and return it.

    Args:
        eps_model: the noise predictor, called once per step; it returns a new array, which
            the step then uses as scratch space.
        x_start: (B, C, H, W) float32 starting noise, usually from a seeded noise source.
        timesteps: decreasing training steps, e.g. `schedule.sampling_timesteps(K, config)`.
        alpha_bar: (T + 1,) cumulative products with alpha_bar[0] = 1 (`schedule.alpha_bars`).
        eta: 0 gives deterministic DDIM; > 0 adds fresh noise drawn from `noise`.
        callback: called after every step with a `DDIMProgress`.
        should_stop: polled before every step; when it returns True, `Cancelled` is raised.
        clip_x0: optional bound on |x0_hat| at every step.
    """
    if len(timesteps) == 0:
        raise ValueError("sample_ddim needs at least one timestep")
    if eta > 0.0 and noise is None:
        raise ValueError("sample_ddim: eta > 0 needs a noise source")
    table = [float(a) for a in alpha_bar]
    x = np.asarray(x_start, dtype=np.float32)
    del x_start  # x alone holds it: freed after the first step
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        if should_stop is not None and should_stop():
            raise Cancelled(f"sampling cancelled before step {i + 1} of {total}")
        t_prev = timesteps[i + 1] if i + 1 < total else 0
        eps_hat = np.asarray(eps_model(x, table[t] ** 0.5), dtype=np.float32)
        step_noise = noise.normal(x.shape) if eta > 0.0 and t_prev > 0 else None
        x, x0_hat = ddim_step(x, eps_hat, table[t], table[t_prev], eta, step_noise, clip_x0)
        del eps_hat, step_noise  # free before the next network pass allocates its output
        if callback is not None:
            callback(DDIMProgress(step=i + 1, total=total, t=t, x0_hat=x0_hat))
        del x0_hat
    return x
