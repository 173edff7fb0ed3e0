"""The DTPM denoiser: a NAFNet-style U-Net that predicts the noise of the texture layer
(DESIGN 1.3), conditioned on the noise level and a semantic code through AdaLN, with
optional Conditional Guidance Adapters after every block (DESIGN 1.4)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..config import DenoiserConfig
from .adapters import AdapterSet
from .layers import sinusoidal_embedding
from .semantic import SEMANTIC_FEATURE_DIMS
from .unet import UNet

CONTEXT_MARGIN = 16
"""Mirrored pixels added on every side of the input (and cropped from the output), so that
the outermost pixels are not predicted from the convolutions' zero padding. Measured with the
shipped models (coffee, motion-deblur, K = 4): without it the error the diffusion residual
adds in the 1-pixel frame was 2.4x the interior's, with it 0.95x. A multiple of 2^levels (16)
keeps the downsampled grids aligned with the image. Used in eval mode only (see
`Denoiser.context_margin`)."""


class Denoiser(UNet):
    """eps_hat = f(concat(x_noisy, cond), sqrt(gamma), semantic code): the NAFNet U-Net of
    `dtpm_core.networks.unet` with AdaLN blocks, a context margin in eval mode, an fp32 ending and,
    in Stage II, a guidance adapter after every block."""

    noise_mlp: nn.Sequential
    semantic_mlp: nn.Sequential | None

    def __init__(self, config: DenoiserConfig) -> None:
        d = config.cond_dim
        # the conditioning MLPs are created first (the seeded initialisation depends on it)
        noise_mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))
        semantic_mlp = None
        if config.semantic != "none":
            width = SEMANTIC_FEATURE_DIMS[config.semantic]  # 512 (ResNet-18) or 1280
            semantic_mlp = nn.Sequential(nn.Linear(width, d), nn.SiLU(), nn.Linear(d, d))
        super().__init__(embedders={"noise_mlp": noise_mlp, "semantic_mlp": semantic_mlp},
                         in_channels=6, width=config.width, enc_blocks=config.enc_blocks,
                         middle_blocks=config.middle_blocks, dec_blocks=config.dec_blocks,
                         cond_dim=d)
        self.config = config

    def conditioning(self, sqrt_gamma: torch.Tensor,
                     semantic_code: torch.Tensor | None) -> torch.Tensor:
        """Conditioning vector = noise-level embedding + MLP(semantic code): (B, cond_dim)."""
        cond = self.noise_mlp(sinusoidal_embedding(sqrt_gamma, self.config.cond_dim))
        if self.semantic_mlp is not None:
            if semantic_code is None:
                raise ValueError("this denoiser uses a semantic code: pass semantic_code")
            cond = cond + self.semantic_mlp(semantic_code.float())
        return cond

    def context_margin(self) -> int:
        # training crops are arbitrary cuts through photos and the margin would cost them 27%
        # more compute at 256 px; inference (eval mode: restoring, validation) gets it
        return 0 if self.training else CONTEXT_MARGIN

    def end(self, f: torch.Tensor) -> torch.Tensor:
        # eps_hat leaves in fp32 even under bf16/fp16 autocast: at high noise levels the x0
        # estimate multiplies its rounding error by 1 / sqrt(alpha_bar_t) (DESIGN 1.1)
        with torch.autocast(f.device.type, enabled=False):
            return self.ending(f.to(self.ending.weight.dtype))

    def guidance_pyramid(self, guidance: torch.Tensor) -> list[torch.Tensor]:
        """y_eps padded as the input is, at the resolution of every level: levels + 1 maps
        (B, 3, H' / 2^l, W' / 2^l), l = 0 .. levels (the middle blocks)."""
        g, _ = self.pad(guidance)
        guides = [g]
        for _ in range(self.levels):
            g = F.avg_pool2d(g, 2)
            guides.append(g)
        return guides

    def forward(self, x_noisy: torch.Tensor, cond_image: torch.Tensor, sqrt_gamma: torch.Tensor,
                semantic_code: torch.Tensor | None = None, adapters: AdapterSet | None = None,
                guidance: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the noise.

        Args:
            x_noisy: (B, 3, H, W) noisy texture layer.
            cond_image: (B, 3, H, W) condition in [-1, 1] (y_s in Stage I, y_d in Stage II).
            sqrt_gamma: (B,) continuous noise level.
            semantic_code: (B, 512) ResNet-18 or (B, 1280) EfficientNet-Lite0 features, or
                None when semantic is "none".
            adapters: Stage II adapters, or None for the plain Stage I model.
            guidance: (B, 3, H, W) initial prediction y_eps in [-1, 1], needed with adapters.
        """
        if adapters is not None and guidance is None:
            raise ValueError("adapters need the initial prediction as guidance")
        emb = self.conditioning(sqrt_gamma, semantic_code)
        after_block = None
        if adapters is not None:
            guides = self.guidance_pyramid(guidance)

            def after_block(index: int, level: int, f: torch.Tensor) -> torch.Tensor:
                return adapters(index, f, guides[level])

        return self.run(torch.cat([x_noisy, cond_image], dim=1), emb, after_block)

    def encoder_parameter_names(self) -> list[str]:
        """Names of the encoder half (intro, encoder levels, downsampling), for ablations."""
        prefixes = ("intro.", "encoders.", "downs.")
        return [n for n, _ in self.named_parameters() if n.startswith(prefixes)]

    def decoder_parameter_names(self) -> list[str]:
        """Names of the decoder half (upsampling, decoder levels, ending), for ablations."""
        prefixes = ("ups.", "decoders.", "ending.")
        return [n for n, _ in self.named_parameters() if n.startswith(prefixes)]
