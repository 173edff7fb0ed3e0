"""The NAFNet U-Net (Chen et al. 2022, Fig. 3) that the DTPM denoiser, the initial predictor
and the single-pass network are built on:

    pad -> intro -> encoder levels (NAF blocks, keep the skip, downsample)
        -> middle blocks
        -> decoder levels (upsample, add the skip, NAF blocks) -> ending -> crop

What the three networks do differently is a hook here:
- `cond_dim`: the blocks' LayerNorms are adaptive (AdaLN) on a conditioning vector `emb`,
  made by the network's `embedders` (the denoiser's noise-level and semantic MLPs, the
  single-pass network's time MLP); the predictor's blocks are plain NAFNet blocks;
- `after_block` (an argument of `run`): called after every block (the denoiser's guidance
  adapters);
- `level_adaptor`: builds a module run after each decoder level as `adaptor(f, emb)` (the
  single-pass network's MoE task adaptors);
- `context_margin()`: mirrored pixels added around the input (the denoiser's, in eval mode);
- `end(f)`: the ending convolution (the denoiser runs it in fp32).
The network's own `forward` makes `emb` and adds the U-Net's output to its input its way
(y_eps = y_d + U(y_d), y = x - f(x, t), or eps_hat = U(...) directly).

Parameter names (`intro.`, `encoders.<level>.<block>.`, `downs.`, `middle.<block>.`, `ups.`,
`decoders.`, `adaptors.`, `ending.`), their order and the order in which they are created
(hence their values under a seed) are those of the three networks before they shared this
file: weight files and training runs are unaffected (tests/core/test_unet.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from .layers import NAFBlock, downsample, pad_with_context, upsample

AfterBlock = Callable[[int, int, torch.Tensor], torch.Tensor]
"""after_block(index, level, f) -> f, after the block `index` (counted in execution order over
the whole U-Net) at `level` (0 = full resolution, `levels` = the middle blocks)."""


def nafblocks(channels: int, count: int, cond_dim: int | None) -> nn.ModuleList:
    """`count` NAF blocks of `channels` channels, AdaLN-conditioned when cond_dim is given."""
    return nn.ModuleList(NAFBlock(channels, cond_dim) for _ in range(count))


class UNet(nn.Module):
    """The NAFNet U-Net skeleton; subclasses add what makes them a denoiser or a restorer."""

    def __init__(self, *, in_channels: int, width: int, enc_blocks: Sequence[int],
                 middle_blocks: int, dec_blocks: Sequence[int], cond_dim: int | None = None,
                 embedders: Mapping[str, nn.Module | None] | None = None,
                 level_adaptor: Callable[[int], nn.Module] | None = None,
                 out_channels: int = 3, stem: int = 1) -> None:
        """Args:
            in_channels: channels of the (concatenated) input.
            out_channels: channels of the output (3, an image, unless the caller reshapes it).
            width: C, the channels of the first level (doubled at every level below).
            enc_blocks / dec_blocks: NAF blocks per level, from the top; same length.
            cond_dim: size of the AdaLN conditioning vector; None = unconditioned blocks.
            embedders: the modules that make the conditioning vector, registered under their
                names before the U-Net (as attributes; None values too).
            level_adaptor: builds, for a decoder level's channel count, the module run after
                that level; the modules are kept in `adaptors` (None without).
            stem: s; `run` feeds the U-Net the input pixel-unshuffled by s (in_channels and
                out_channels then count the unshuffled channels, C s^2) and shuffles its
                output back.
        """
        super().__init__()
        self.stem = stem
        # registered first, then the U-Net in the order it runs: that order fixes the state
        # dict (optimiser states follow it) and, with a seed, the initial weights
        for name, module in (embedders or {}).items():
            setattr(self, name, module)
        c = width
        widths: list[int] = []
        self.intro = nn.Conv2d(in_channels, c, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        for n in enc_blocks:
            self.encoders.append(nafblocks(c, n, cond_dim))
            widths += [c] * n
            self.downs.append(downsample(c))  # (B, c, h, w) -> (B, 2c, h/2, w/2)
            c *= 2
        self.middle = nafblocks(c, middle_blocks, cond_dim)
        widths += [c] * middle_blocks
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.adaptors = nn.ModuleList() if level_adaptor is not None else None
        for n in dec_blocks:
            self.ups.append(upsample(c))  # (B, c, h, w) -> (B, c/2, 2h, 2w)
            c //= 2
            self.decoders.append(nafblocks(c, n, cond_dim))
            widths += [c] * n
            if self.adaptors is not None:
                self.adaptors.append(level_adaptor(c))
        self.ending = nn.Conv2d(c, out_channels, 3, padding=1)
        self._block_widths = tuple(widths)

    @property
    def levels(self) -> int:
        return len(self.encoders)

    @property
    def size_multiple(self) -> int:
        """Height and width `run` takes are padded to multiples of this (2^levels, times the
        stem: in image pixels)."""
        return 2 ** self.levels * self.stem

    @property
    def block_widths(self) -> tuple[int, ...]:
        """Channel count of every block in execution order (the denoiser's adapters follow it)."""
        return self._block_widths

    def context_margin(self) -> int:
        """Mirrored pixels added on every side of the input, and cropped from the output."""
        return 0

    def pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, slice]]:
        """(B, C, H, W) -> the input the U-Net runs on (context margin, then a multiple of
        `size_multiple`), and the (rows, cols) slices of the original in it."""
        return pad_with_context(x, self.size_multiple, self.context_margin())

    def end(self, f: torch.Tensor) -> torch.Tensor:
        """The ending convolution: (B, C, H', W') features -> (B, out_channels, H', W')."""
        return self.ending(f)

    def run(self, x: torch.Tensor, emb: torch.Tensor | None = None,
            after_block: AfterBlock | None = None) -> torch.Tensor:
        """The U-Net on an input of any size: (B, in_channels, H, W) -> (B, out_channels, H, W).

        Args:
            x: the input; padded here and the output cropped back.
            emb: (B, cond_dim) conditioning vector of the AdaLN blocks and the adaptors.
            after_block: applied after every block, see `AfterBlock`.
        """
        x, crop = self.pad(x)  # in image space: margin and multiple in whole stem cells
        if self.stem == 1:
            return self.body(x, emb, after_block)[(..., *crop)]
        s = self.stem  # (B, C, H', W') -> (B, C s^2, H'/s, W'/s) -> U -> back
        out = nn.functional.pixel_unshuffle(x, s)
        out = nn.functional.pixel_shuffle(self.body(out, emb, after_block), s)
        return out[(..., *crop)]

    def body(self, x: torch.Tensor, emb: torch.Tensor | None = None,
             after_block: AfterBlock | None = None) -> torch.Tensor:
        """The U-Net on an input padded already (height and width multiples of
        `size_multiple`): `run` without the padding and the crop."""
        index = 0

        def run_blocks(blocks: nn.ModuleList, f: torch.Tensor, level: int) -> torch.Tensor:
            nonlocal index
            for block in blocks:
                f = block(f, emb)
                if after_block is not None:
                    f = after_block(index, level, f)
                index += 1
            return f

        f = self.intro(x)  # (B, C, H', W')
        skips = []
        for level, (blocks, down) in enumerate(zip(self.encoders, self.downs, strict=True)):
            f = run_blocks(blocks, f, level)
            skips.append(f)
            f = down(f)
        f = run_blocks(self.middle, f, self.levels)
        for i, (up, blocks) in enumerate(zip(self.ups, self.decoders, strict=True)):
            level = self.levels - 1 - i
            f = run_blocks(blocks, up(f) + skips[level], level)  # skip added, as in NAFNet
            if self.adaptors is not None:
                f = self.adaptors[i](f, emb)
        return self.end(f)
