"""The initial predictor P (DESIGN 1.4): a compact NAFNet U-Net giving the deterministic
structure estimate y_eps = P(y_d), on which the diffusion adds the texture layer."""

from __future__ import annotations

import torch
from torch import nn

from .config import PredictorConfig
from .layers import NAFBlock, downsample, pad_to_multiple, upsample


class InitialPredictor(nn.Module):
    """y_eps = y_d + U(y_d): a global residual U-Net on images in [-1, 1]."""

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.width
        self.intro = nn.Conv2d(3, c, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        for n in config.enc_blocks:
            self.encoders.append(nn.Sequential(*(NAFBlock(c) for _ in range(n))))
            self.downs.append(downsample(c))
            c *= 2
        self.middle = nn.Sequential(*(NAFBlock(c) for _ in range(config.middle_blocks)))
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for n in config.dec_blocks:
            self.ups.append(upsample(c))
            c //= 2
            self.decoders.append(nn.Sequential(*(NAFBlock(c) for _ in range(n))))
        self.ending = nn.Conv2d(c, 3, 3, padding=1)
        # a fresh P is the identity (y_eps = y_d): the Stage II residual starts as y_g - y_d,
        # which is what the residual scale is measured on, instead of y_g - y_d plus the
        # random output of an untrained network (RMS ~0.23, larger than most degradations)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) degraded image in [-1, 1] -> initial prediction in [-1, 1]."""
        x, (h, w) = pad_to_multiple(degraded, 2 ** self.config.levels)
        f = self.intro(x)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            f = encoder(f)
            skips.append(f)
            f = down(f)
        f = self.middle(f)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            f = decoder(up(f) + skip)
        return degraded + self.ending(f)[..., :h, :w]
