"""The training objectives of Stage I and Stage II (DESIGN 1.1-1.2), as plain functions the
trainer calls. Images enter in [0, 1]; the diffusion runs on [-1, 1] residuals."""

from __future__ import annotations

import torch

from .model import DTPM
from .schedule import add_noise, sample_training_noise_level


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


def stage1_loss(model: DTPM, clean: torch.Tensor, smooth: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Texture-prior loss: x0 = x_g - y_s, condition y_s, semantic code of y_s.

    Args:
        clean: (B, 3, H, W) clean patches x_g in [0, 1].
        smooth: (B, 3, H, W) their RTV-smoothed versions y_s in [0, 1].
    """
    x_g, y_s = _to_signed(clean), _to_signed(smooth)
    x0 = x_g - y_s  # the texture layer
    sqrt_gamma, eps, x_noisy = _draw(model, x0, generator)
    eps_hat = model.denoiser(x_noisy, y_s, sqrt_gamma, model.semantic_code(smooth))
    return _noise_loss(model, eps_hat, eps)


def stage2_loss(model: DTPM, degraded: torch.Tensor, clean: torch.Tensor,
                generator: torch.Generator | None = None,
                predictor_l1_weight: float = 0.0) -> torch.Tensor:
    """Task loss: y_eps = P(y_d), x0 = y_g - y_eps, condition y_d, semantic code of y_eps.

    P learns only through this diffusion loss (gradients reach it through x0 and the adapter
    guidance), as in the paper; `predictor_l1_weight` > 0 adds an auxiliary L1 on P.
    """
    y_d, y_g = _to_signed(degraded), _to_signed(clean)
    y_eps = model.initial_prediction(y_d)
    x0 = y_g - y_eps  # the residual the diffusion generates
    sqrt_gamma, eps, x_noisy = _draw(model, x0, generator)
    semantic = model.semantic_code((y_eps.detach() + 1.0) / 2.0)
    eps_hat = model.predict_noise(x_noisy, y_d, sqrt_gamma, semantic, guidance=y_eps)
    loss = _noise_loss(model, eps_hat, eps)
    if predictor_l1_weight > 0.0 and model.predictor is not None:
        loss = loss + predictor_l1_weight * (y_eps - y_g).abs().mean()
    return loss
