"""The DTPM denoiser: a NAFNet-style U-Net that predicts the noise of the texture layer
(DESIGN 1.3), conditioned on the noise level and a semantic code through AdaLN, with
optional Conditional Guidance Adapters after every block (DESIGN 1.4)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .adapters import AdapterSet
from .config import DenoiserConfig
from .layers import NAFBlock, downsample, pad_with_context, sinusoidal_embedding, upsample
from .semantic import SEMANTIC_FEATURE_DIMS

CONTEXT_MARGIN = 16
"""Mirrored pixels added on every side of the input (and cropped from the output), so that
the outermost pixels are not predicted from the convolutions' zero padding. Measured with the
shipped models (coffee, motion-deblur, K = 4): without it the error the diffusion residual
adds in the 1-pixel frame was 2.4x the interior's, with it 0.95x. A multiple of 2^levels (16)
keeps the downsampled grids aligned with the image. Used in eval mode only (see forward)."""


class Denoiser(nn.Module):
    """eps_hat = f(concat(x_noisy, cond), sqrt(gamma), semantic code)."""

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        c, d = config.width, config.cond_dim
        self.noise_mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))
        self.semantic_mlp: nn.Module | None = None
        if config.semantic != "none":
            width = SEMANTIC_FEATURE_DIMS[config.semantic]  # 512 (ResNet-18) or 1280
            self.semantic_mlp = nn.Sequential(nn.Linear(width, d), nn.SiLU(), nn.Linear(d, d))
        self.intro = nn.Conv2d(6, c, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        widths: list[int] = []
        for n in config.enc_blocks:
            self.encoders.append(nn.ModuleList(NAFBlock(c, d) for _ in range(n)))
            widths += [c] * n
            self.downs.append(downsample(c))
            c *= 2
        self.middle = nn.ModuleList(NAFBlock(c, d) for _ in range(config.middle_blocks))
        widths += [c] * config.middle_blocks
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for n in config.dec_blocks:
            self.ups.append(upsample(c))
            c //= 2
            self.decoders.append(nn.ModuleList(NAFBlock(c, d) for _ in range(n)))
            widths += [c] * n
        self.ending = nn.Conv2d(c, 3, 3, padding=1)
        self._block_widths = tuple(widths)

    @property
    def block_widths(self) -> tuple[int, ...]:
        """Channel count of every denoising block in execution order (for the adapters)."""
        return self._block_widths

    @property
    def size_multiple(self) -> int:
        return 2 ** self.config.levels

    def conditioning(self, sqrt_gamma: torch.Tensor,
                     semantic_code: torch.Tensor | None) -> torch.Tensor:
        """Conditioning vector = noise-level embedding + MLP(semantic code): (B, cond_dim)."""
        cond = self.noise_mlp(sinusoidal_embedding(sqrt_gamma, self.config.cond_dim))
        if self.semantic_mlp is not None:
            if semantic_code is None:
                raise ValueError("this denoiser uses a semantic code: pass semantic_code")
            cond = cond + self.semantic_mlp(semantic_code.float())
        return cond

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
        multiple = self.size_multiple
        # training crops are arbitrary cuts through photos and the margin would cost them 27%
        # more compute at 256 px; inference (eval mode: restoring, validation) gets it
        margin = 0 if self.training else CONTEXT_MARGIN
        x, crop = pad_with_context(torch.cat([x_noisy, cond_image], dim=1), multiple, margin)
        guides: list[torch.Tensor] = []
        if adapters is not None:
            g, _ = pad_with_context(guidance, multiple, margin)
            guides.append(g)
            for _ in range(self.config.levels):
                g = F.avg_pool2d(g, 2)
                guides.append(g)
        index = 0

        def run_blocks(blocks: nn.ModuleList, f: torch.Tensor, level: int) -> torch.Tensor:
            nonlocal index
            for block in blocks:
                f = block(f, emb)
                if adapters is not None:
                    f = adapters(index, f, guides[level])
                index += 1
            return f

        f = self.intro(x)
        skips = []
        for level, (blocks, down) in enumerate(zip(self.encoders, self.downs, strict=True)):
            f = run_blocks(blocks, f, level)
            skips.append(f)
            f = down(f)
        f = run_blocks(self.middle, f, self.config.levels)
        for i, (up, blocks) in enumerate(zip(self.ups, self.decoders, strict=True)):
            level = self.config.levels - 1 - i
            f = up(f) + skips[level]
            f = run_blocks(blocks, f, level)
        # eps_hat leaves in fp32 even under bf16/fp16 autocast: at high noise levels the x0
        # estimate multiplies its rounding error by 1 / sqrt(alpha_bar_t) (DESIGN 1.1)
        with torch.autocast(f.device.type, enabled=False):
            eps_hat = self.ending(f.to(self.ending.weight.dtype))
        return eps_hat[(..., *crop)]

    def encoder_parameter_names(self) -> list[str]:
        """Names of the encoder half (intro, encoder levels, downsampling), for ablations."""
        prefixes = ("intro.", "encoders.", "downs.")
        return [n for n, _ in self.named_parameters() if n.startswith(prefixes)]

    def decoder_parameter_names(self) -> list[str]:
        """Names of the decoder half (upsampling, decoder levels, ending), for ablations."""
        prefixes = ("ups.", "decoders.", "ending.")
        return [n for n, _ in self.named_parameters() if n.startswith(prefixes)]
