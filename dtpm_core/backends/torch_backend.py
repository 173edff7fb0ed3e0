"""The PyTorch backend: the networks as `prepare_for_inference` left them (channels-last on
the CPU, bf16 weights on the fast path), called under the precision's autocast with their
inputs in the network layout."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .device import autocast_context, to_network_layout


def torch_network(module: nn.Module, device: torch.device,
                  precision: str) -> Callable[..., torch.Tensor]:
    """module(*inputs) under autocast, images (4-d inputs) in the network layout: the
    initial predictor (y_d) and the single-pass network (x, t)."""
    autocast = autocast_context(device, precision)

    def call(*inputs: torch.Tensor) -> torch.Tensor:
        with autocast:
            return module(*(to_network_layout(x) for x in inputs))
    return call


def torch_denoiser(denoiser: nn.Module, adapters: nn.Module | None,
                   overrides: dict[str, torch.Tensor], device: torch.device,
                   precision: str) -> Callable[..., torch.Tensor]:
    """denoise(x_t, y_d, sqrt_gamma, semantic_code, guidance) -> eps_hat: the denoiser with
    the task's adapters; `overrides` are an ablation file's denoiser tensors, applied for the
    call without touching the base's."""
    autocast = autocast_context(device, precision)

    def call(x_t: torch.Tensor, y_d: torch.Tensor, sqrt_gamma: torch.Tensor,
             semantic_code: torch.Tensor | None,
             guidance: torch.Tensor | None) -> torch.Tensor:
        args = (to_network_layout(x_t), to_network_layout(y_d), sqrt_gamma, semantic_code)
        kwargs = {"adapters": adapters,
                  "guidance": guidance if adapters is not None else None}
        with autocast:
            if overrides:
                return torch.func.functional_call(denoiser, overrides, args, kwargs)
            return denoiser(*args, **kwargs)
    return call
