"""Inference-only replacements of layers that are slow on the CPU, swapped in at load time by
`dtpm_core.device.prepare_for_inference`. They keep the parameters, their names and the
maths of the layer they replace: weight files and training are untouched."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .layers import LayerNorm2d


class ChannelsLastLayerNorm2d(LayerNorm2d):
    """`LayerNorm2d` as one fused `layer_norm` over the channels of a channels-last map.

    In memory a channels-last (B, C, H, W) tensor is (B, H, W, C), so the normalised axis is
    the innermost one: `F.layer_norm` does it in one pass (fp32 statistics also for bf16
    inputs) instead of the eight element-wise passes of `LayerNorm2d.forward`. Measured on a
    (1, 32, 512, 512) map, 1 thread: 6.8x faster in fp32, 5.3x in bf16; fp32 output equal to
    2e-6. Other layouts fall back to the original."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            nhwc = x.permute(0, 2, 3, 1)  # a view: (B, H, W, C), C innermost
            out = F.layer_norm(nhwc, (x.shape[1],), self.weight.to(x.dtype),
                               self.bias.to(x.dtype), self.eps)
            return out.permute(0, 3, 1, 2)  # back to (B, C, H, W), still channels-last
        return super().forward(x)


def use_fused_layer_norms(module: nn.Module) -> int:
    """Swap every `LayerNorm2d` of `module` for `ChannelsLastLayerNorm2d` in place (same
    parameters); returns how many were swapped."""
    swapped = 0
    for child in module.modules():
        if type(child) is LayerNorm2d:
            child.__class__ = ChannelsLastLayerNorm2d
            swapped += 1
    return swapped
