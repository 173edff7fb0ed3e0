"""Tiny models with non-trivial weights, shared by the core tests."""

from __future__ import annotations

import torch

from dtpm_core.config import ModelConfig, Stage2Options, preset
from dtpm_core.networks.model import DTPM


def tiny_config(semantic: str = "none") -> ModelConfig:
    return preset("tiny", denoiser__semantic=semantic)


def randomise_zero_inits(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> None:
    """Give the zero-initialised parts (NAFNet residual scales, AdaLN modulation, adapter
    outputs) small random values, so that every part of the network affects the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("beta", "gamma")) or "m_out" in name or "modulation" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)


def tiny_model(stage2: Stage2Options | None = None, semantic: str = "none",
               seed: int = 0) -> DTPM:
    torch.manual_seed(seed)
    model = DTPM(tiny_config(semantic), stage2)
    randomise_zero_inits(model, seed)
    return model.eval()
