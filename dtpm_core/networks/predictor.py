"""The initial predictor P (DESIGN 1.4): a compact NAFNet U-Net giving the deterministic
structure estimate y_eps = P(y_d), on which the diffusion adds the texture layer."""

from __future__ import annotations

import torch
from torch import nn

from ..config import PredictorConfig
from .unet import UNet

CONTEXT_MARGIN = 4
"""Mirrored pixels added on every side of the input in eval mode (and cropped from the
output), so that the outermost pixels are not predicted from the convolutions' zero padding
(issue 21: a 1-2 px frame). Measured with the shipped models (scripts/border_frame.py,
docs/evidence/border_frame.md): rain + haze removal, chelsea and coffee, held-out settings:
the frame's mean signed error against the pixels 2-4 px inside moved from 5.95 to 0.98 levels
(1/255); mean PSNR on the 14 evaluation photos -0.03 dB on rain + haze, +0.02 dB on snow. 8
and 16 px fix the frame no better and cost rain + haze 0.09 and 0.21 dB (more mirrored
content in the channel attention's global pooling). Training keeps its zero-padded crops."""


class InitialPredictor(UNet):
    """y_eps = y_d + U(y_d): a global residual U-Net (plain NAFNet blocks) on images in
    [-1, 1]; with `config.stem` = s, U runs on the image pixel-unshuffled by s."""

    def __init__(self, config: PredictorConfig) -> None:
        channels = 3 * config.stem * config.stem
        super().__init__(in_channels=channels, width=config.width, enc_blocks=config.enc_blocks,
                         middle_blocks=config.middle_blocks, dec_blocks=config.dec_blocks,
                         out_channels=channels, stem=config.stem)
        self.config = config
        # a fresh P is the identity (y_eps = y_d): the Stage II residual starts as y_g - y_d,
        # which is what the residual scale is measured on, instead of y_g - y_d plus the
        # random output of an untrained network (RMS ~0.23, larger than most degradations)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    def context_margin(self) -> int:
        """In image pixels; with a stem, whole stem x stem cells of them."""
        return 0 if self.training else CONTEXT_MARGIN * self.config.stem

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) degraded image in [-1, 1] -> initial prediction in [-1, 1]."""
        return degraded + self.run(degraded)
