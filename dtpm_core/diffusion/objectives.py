"""The training objectives of Stage I and Stage II (DESIGN 1.1-1.2), as plain functions the
trainer calls. Images enter in [0, 1]; the diffusion runs on [-1, 1] residuals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import DiffusionConfig
from ..networks.model import DTPM
from .schedule import alpha_bars


def sample_training_noise_level(config: DiffusionConfig, batch: int,
                                generator: torch.Generator | None = None,
                                device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw sqrt(gamma) for a training batch as in SR3: t ~ U{1..T}, then sqrt(gamma) uniform
    between sqrt(alpha_bar_t) and sqrt(alpha_bar_{t-1}). Returns float32, shape (batch,)."""
    table = torch.from_numpy(alpha_bars(config)).sqrt()  # (T + 1,)
    t = torch.randint(1, config.num_steps + 1, (batch,), generator=generator)
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    low, high = table[t], table[t - 1]  # sqrt(alpha_bar_t) <= sqrt(alpha_bar_{t-1})
    return (low + u * (high - low)).to(device=device, dtype=torch.float32)


def add_noise(x0: torch.Tensor, sqrt_gamma: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_noisy = sqrt(gamma) x0 + sqrt(1 - gamma) eps; sqrt_gamma has shape (B,)."""
    g = sqrt_gamma.view(-1, 1, 1, 1).to(x0.dtype)
    return g * x0 + (1.0 - g * g).clamp_min(0.0).sqrt() * eps


def _to_signed(image01: torch.Tensor) -> torch.Tensor:
    return image01 * 2.0 - 1.0


def _noise_loss(model: DTPM, eps_hat: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    diff = eps_hat.float() - eps.float()
    if model.config.diffusion.loss_norm == 1:
        return diff.abs().mean()
    return diff.pow(2).mean()


def _draw(model: DTPM, x0: torch.Tensor, generator: torch.Generator | None
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """sqrt(gamma) ~ SR3 interval sampling, eps ~ N(0, I), x_noisy; drawn on the CPU generator
    so a seed gives the same draw on every device."""
    b = x0.shape[0]
    sqrt_gamma = sample_training_noise_level(model.config.diffusion, b, generator, x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    return sqrt_gamma, eps, add_noise(x0, sqrt_gamma, eps)


@dataclass
class DiffusionProblem:
    """One batch's residual and the noise predictor that generates it, for one stage.

    x0 is unscaled ([-1, 1] units); `eps_model(x_noisy, sqrt_gamma)` is the denoiser with the
    condition, semantic code and (Stage II) adapter guidance bound. `y_eps` is the Stage II
    initial prediction (None in Stage I)."""

    x0: torch.Tensor  # (B, 3, H, W)
    eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    y_eps: torch.Tensor | None = None


def stage1_problem(model: DTPM, clean: torch.Tensor, smooth: torch.Tensor) -> DiffusionProblem:
    """Stage I: x0 = x_g - y_s, condition y_s, semantic code of y_s.

    Args:
        clean: (B, 3, H, W) clean patches x_g in [0, 1].
        smooth: (B, 3, H, W) their RTV-smoothed versions y_s in [0, 1].
    """
    x_g, y_s = _to_signed(clean), _to_signed(smooth)
    semantic = model.semantic_code(smooth)
    return DiffusionProblem(x_g - y_s,
                            lambda x_noisy, g: model.denoiser(x_noisy, y_s, g, semantic))


def stage2_problem(model: DTPM, degraded: torch.Tensor, clean: torch.Tensor
                   ) -> DiffusionProblem:
    """Stage II: y_eps = P(y_d), x0 = y_g - y_eps, condition y_d, semantic code of y_eps."""
    y_d, y_g = _to_signed(degraded), _to_signed(clean)
    y_eps = model.initial_prediction(y_d)
    semantic = model.semantic_code((y_eps.detach() + 1.0) / 2.0)
    return DiffusionProblem(
        y_g - y_eps,
        lambda x_noisy, g: model.predict_noise(x_noisy, y_d, g, semantic, guidance=y_eps),
        y_eps)


def diffusion_loss(model: DTPM, problem: DiffusionProblem, generator: torch.Generator | None,
                   residual_scale: float = 1.0) -> torch.Tensor:
    """|| eps - f(sqrt(gamma) x0 / s + sqrt(1 - gamma) eps) ||_p (DESIGN 1.1); s scales the
    residual to about unit RMS (`dtpm_core.diffusion.calibration`)."""
    x0 = problem.x0 / residual_scale
    sqrt_gamma, eps, x_noisy = _draw(model, x0, generator)
    return _noise_loss(model, problem.eps_model(x_noisy, sqrt_gamma), eps)


def stage1_loss(model: DTPM, clean: torch.Tensor, smooth: torch.Tensor,
                generator: torch.Generator | None = None,
                residual_scale: float = 1.0) -> torch.Tensor:
    """Texture-prior loss on (clean, smooth) patches in [0, 1]."""
    return diffusion_loss(model, stage1_problem(model, clean, smooth), generator,
                          residual_scale)


def stage2_loss(model: DTPM, degraded: torch.Tensor, clean: torch.Tensor,
                generator: torch.Generator | None = None,
                predictor_l1_weight: float = 0.0, residual_scale: float = 1.0,
                predictor_mse_weight: float = 0.0,
                predictor_fft_weight: float = 0.0) -> torch.Tensor:
    """Task loss on (degraded, clean) crops in [0, 1].

    P learns only through the diffusion loss (gradients reach it through x0 and the adapter
    guidance), as in the paper; `predictor_l1_weight` > 0 adds an auxiliary L1 on P (its
    error x0 = y_g - P(y_d)), `predictor_mse_weight` > 0 an auxiliary mean squared error. L1's
    optimum is the conditional median, MSE's the conditional mean, which is what PSNR scores:
    where P cannot tell what lies under a degradation (a raindrop), the median keeps the
    degraded pixel and the mean blends towards the likely background. `predictor_fft_weight`
    > 0 adds the L1 of the error's spectrum (`frequency_l1`, MIMO-UNet's frequency loss), which
    weighs the fine detail a blur removes as much as the coarse error a mean would fix.
    """
    problem = stage2_problem(model, degraded, clean)
    loss = diffusion_loss(model, problem, generator, residual_scale)
    if model.predictor is not None:
        if predictor_l1_weight > 0.0:
            loss = loss + predictor_l1_weight * problem.x0.abs().mean()
        if predictor_mse_weight > 0.0:
            loss = loss + predictor_mse_weight * problem.x0.square().mean()
        if predictor_fft_weight > 0.0:
            loss = loss + predictor_fft_weight * frequency_l1(problem.x0)
    return loss


def frequency_l1(error: torch.Tensor) -> torch.Tensor:
    """Mean absolute value of the real and imaginary parts of `error`'s 2-D spectrum over
    (H, W), orthonormal (by Parseval the spectrum holds the image's energy, so the term does not
    grow with the crop size), computed in fp32 (FFTs do not run in bf16)."""
    return torch.view_as_real(torch.fft.rfft2(error.float(), norm="ortho")).abs().mean()
