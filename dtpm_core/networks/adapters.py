"""Conditional Guidance Adapters (DESIGN 1.4): one after every denoising block.

    out = f + M_out(M_in(f) + Conv(y_eps resized to f's resolution))

M_in: 1x1 conv c -> r*c, Conv: 3x3 conv 3 -> r*c on the initial prediction, M_out: 1x1 conv
r*c -> c initialised to zero, so that a fresh adapter leaves the Stage I model unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class GuidanceAdapter(nn.Module):
    """One adapter for a block of `channels` channels."""

    def __init__(self, channels: int, ratio: float) -> None:
        super().__init__()
        hidden = max(1, round(ratio * channels))
        self.m_in = nn.Conv2d(channels, hidden, 1)
        self.guide = nn.Conv2d(3, hidden, 3, padding=1)
        self.m_out = nn.Conv2d(hidden, channels, 1)
        nn.init.zeros_(self.m_out.weight)
        nn.init.zeros_(self.m_out.bias)

    def forward(self, f: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        """f: (B, c, h, w) block output; guidance: (B, 3, h, w) y_eps at f's resolution."""
        return f + self.m_out(self.m_in(f) + self.guide(guidance.to(f.dtype)))


class AdapterSet(nn.Module):
    """The adapters of a whole denoiser, in the order its blocks run (`Denoiser.block_widths`)."""

    def __init__(self, block_widths: Sequence[int], ratio: float) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(GuidanceAdapter(c, ratio) for c in block_widths)

    def __len__(self) -> int:
        return len(self.adapters)

    def forward(self, index: int, f: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        return self.adapters[index](f, guidance)
