"""Building blocks shared by every network of the project (DESIGN 1.3 and 6).

NAFNet (Chen et al. 2022) blocks with adaptive LayerNorm: the DTPM denoiser and the
single-pass engine condition them on a vector; the initial predictor uses them unconditioned.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a (B, C, H, W) map, with a learned affine."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    """NAFNet's SimpleGate: split the channels in two halves and multiply them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


def sinusoidal_embedding(values: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """Transformer-style embedding of continuous scalars: (B,) -> (B, dim).

    `scale` spreads sqrt(gamma) in [0, 1] over the frequencies as an integer step in 0..1000
    would be (SR3 embeds the noise level the same way).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=values.device,
                                                        dtype=torch.float32) / half)
    args = values.float().view(-1, 1) * scale * freqs.view(1, -1)  # (B, half)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class NAFBlock(nn.Module):
    """NAFNet block; with `cond_dim` its two LayerNorms are adaptive (AdaLN):
    (1 + scale) * LN(f) + shift, scale and shift from an MLP of the conditioning vector.

    x -> LN -> 1x1 (c->2c) -> dw3x3 -> SimpleGate -> SCA -> 1x1 -> * beta + x
      -> LN -> 1x1 (c->2c) -> SimpleGate -> 1x1 -> * gamma + .
    """

    def __init__(self, channels: int, cond_dim: int | None = None) -> None:
        super().__init__()
        c = channels
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.gate = SimpleGate()
        # simplified channel attention: global average pool, then a 1x1 conv
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1))
        self.conv3 = nn.Conv2d(c, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        # residual scales start at zero, as in NAFNet: a fresh block is the identity
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.modulation: nn.Module | None = None
        if cond_dim is not None:
            # (shift1, scale1, shift2, scale2); zero-initialised so AdaLN starts as plain LN
            self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 4 * c))
            nn.init.zeros_(self.modulation[1].weight)
            nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W); cond: (B, cond_dim) when the block is conditional."""
        if self.modulation is not None:
            if cond is None:
                raise ValueError("this NAFBlock is conditional: pass the conditioning vector")
            mod = self.modulation(cond)[:, :, None, None].to(x.dtype)  # (B, 4C, 1, 1)
            shift1, scale1, shift2, scale2 = mod.chunk(4, dim=1)
        h = self.norm1(x)
        if self.modulation is not None:
            h = (1 + scale1) * h + shift1
        h = self.gate(self.conv2(self.conv1(h)))
        h = h * self.sca(h)
        y = x + self.conv3(h) * self.beta
        h = self.norm2(y)
        if self.modulation is not None:
            h = (1 + scale2) * h + shift2
        h = self.conv5(self.gate(self.conv4(h)))
        return y + h * self.gamma


def downsample(channels: int) -> nn.Module:
    """2x2 stride-2 convolution doubling the channels."""
    return nn.Conv2d(channels, 2 * channels, 2, stride=2)


def upsample(channels: int) -> nn.Module:
    """1x1 convolution then PixelShuffle(2): halves the channels, doubles the resolution."""
    return nn.Sequential(nn.Conv2d(channels, 2 * channels, 1, bias=False), nn.PixelShuffle(2))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad (B, C, H, W) on the bottom/right to a multiple; returns the original size."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, (h, w)


def pad_with_context(x: torch.Tensor, multiple: int, margin: int
                     ) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """Reflect-pad (B, C, H, W) by `margin` on every side, then replicate-pad the bottom/right
    to a multiple; returns the padded tensor and the (rows, cols) slices of the original.

    Convolutions zero-pad their input, so without the margin the outermost pixels are
    predicted from zeros; a mirrored margin gives them image-like context instead (a margin
    that reflection cannot fill on a tiny input is replicated)."""
    h, w = x.shape[-2:]
    if margin > 0:
        mode = "reflect" if min(h, w) > margin else "replicate"
        x = F.pad(x, (margin, margin, margin, margin), mode=mode)
    x, _ = pad_to_multiple(x, multiple)
    return x, (slice(margin, margin + h), slice(margin, margin + w))
