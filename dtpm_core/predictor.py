"""The initial predictor P (DESIGN 1.4): a compact NAFNet U-Net giving the deterministic
structure estimate y_eps = P(y_d), on which the diffusion adds the texture layer."""

from __future__ import annotations

import torch
from torch import nn

from .config import PredictorConfig
from .unet import UNet


class InitialPredictor(UNet):
    """y_eps = y_d + U(y_d): a global residual U-Net (plain NAFNet blocks) on images in
    [-1, 1]; with `config.stem` = s, U runs on the image pixel-unshuffled by s."""

    def __init__(self, config: PredictorConfig) -> None:
        channels = 3 * config.stem * config.stem
        super().__init__(in_channels=channels, width=config.width, enc_blocks=config.enc_blocks,
                         middle_blocks=config.middle_blocks, dec_blocks=config.dec_blocks,
                         out_channels=channels)
        self.config = config
        # a fresh P is the identity (y_eps = y_d): the Stage II residual starts as y_g - y_d,
        # which is what the residual scale is measured on, instead of y_g - y_d plus the
        # random output of an untrained network (RMS ~0.23, larger than most degradations)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) degraded image in [-1, 1] -> initial prediction in [-1, 1]."""
        s = self.config.stem
        if s == 1:
            return degraded + self.run(degraded)
        h, w = degraded.shape[-2:]
        ph, pw = (-h) % s, (-w) % s  # whole s x s cells: mirror the last rows / columns
        x = nn.functional.pad(degraded, (0, pw, 0, ph), mode="replicate") if ph or pw else degraded
        residual = nn.functional.pixel_shuffle(self.run(nn.functional.pixel_unshuffle(x, s)), s)
        return degraded + residual[..., :h, :w]
