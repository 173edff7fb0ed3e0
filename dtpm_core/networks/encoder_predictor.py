"""The initial predictor on an ImageNet encoder (issue 20, item 4): EfficientNet-Lite0's seven
stages, batch norms folded into the convolutions, under a NAFNet decoder that adds the
encoder's features of each stride on the way up (a U-Net, as DeblurGAN-v2 puts an ImageNet
MobileNet under its deblurring FPN):

    y_d in [-1, 1] -> pad (margin, multiple of 32)
      -> EfficientNet-Lite0 stages: strides 2, 4, 8, 16, 32 (16, 24, 40, 112, 320 channels)
      -> 1x1 to width * 2^5 at stride 32 -> middle NAF blocks
      -> 5 decoder levels: upsample (halves the channels), add the 1x1-projected encoder
         features of that stride (at full resolution: a 3x3 convolution of the image), NAF blocks
      -> ending 3x3 (zero at initialisation) -> y_eps = y_d + residual, cropped back

Its receptive field covers the whole crop (stride-32 features), where the NAF U-Net
predictors see 17-47 px; the encoder starts from ImageNet (`load_imagenet_encoder`, when a
training run starts fresh) and is fine-tuned with the rest. A weight file holds the folded,
fine-tuned encoder like any other parameters: loading needs no ImageNet package.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ENCODER_DECODER_LEVELS, PredictorConfig
from .efficientnet_lite import EfficientNetLite0, folded_state, load_efficientnet_lite0
from .layers import pad_with_context, upsample
from .predictor import CONTEXT_MARGIN
from .unet import nafblocks

SKIP_STAGES = (0, 1, 2, 4, 6)
"""EfficientNet-Lite0 stages whose outputs the decoder adds: strides 2, 4, 8, 16 and 32."""
SKIP_CHANNELS = (16, 24, 40, 112, 320)
SIZE_MULTIPLE = 32  # the encoder's deepest stride


class EncoderPredictor(nn.Module):
    """y_eps = y_d + D(E(y_d), y_d), E = EfficientNet-Lite0 (folded), D a NAF decoder."""

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.width * 2 ** level for level in range(ENCODER_DECODER_LEVELS + 1)]
        self.encoder = EfficientNetLite0(folded=True, with_head=False)
        self.intro = nn.Conv2d(3, widths[0], 3, padding=1)  # full resolution: the image
        # laterals[i]: the stride-2^(i+1) features -> that level's width
        self.laterals = nn.ModuleList(nn.Conv2d(cin, widths[i + 1], 1)
                                      for i, cin in enumerate(SKIP_CHANNELS))
        self.middle = nafblocks(widths[-1], config.middle_blocks, None)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level, count in zip(range(ENCODER_DECODER_LEVELS, 0, -1), config.dec_blocks,
                                strict=True):
            self.ups.append(upsample(widths[level]))  # level -> level - 1: c -> c / 2
            self.decoders.append(nafblocks(widths[level - 1], count, None))
        self.ending = nn.Conv2d(widths[0], 3, 3, padding=1)
        # a fresh P is the identity (y_eps = y_d), as the NAF U-Net predictor starts
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    def load_imagenet_encoder(self) -> None:
        """Start the encoder from the ImageNet weights (the pip package's file, checked).

        Raises:
            WeightsError: the package is not installed or its file is not the expected one.
        """
        state = folded_state(load_efficientnet_lite0(), with_head=False)
        self.encoder.load_state_dict(state, strict=True)

    def context_margin(self) -> int:
        """Mirrored pixels around the input in eval mode (training keeps its crops)."""
        return 0 if self.training else CONTEXT_MARGIN

    @property
    def size_multiple(self) -> int:
        return SIZE_MULTIPLE

    def pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, slice]]:
        """(B, 3, H, W) -> the input the network runs on, and the slices of the original."""
        return pad_with_context(x, self.size_multiple, self.context_margin())

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The residual of an input padded already (sides multiples of 32), in [-1, 1] units."""
        stages = self.encoder.stage_features((x + 1) / 2)  # EfficientNet reads [0, 1]
        skips = [lateral(stages[s]) for lateral, s in zip(self.laterals, SKIP_STAGES,
                                                            strict=True)]
        f = skips[-1]  # (B, 32 width, H/32, W/32)
        for block in self.middle:
            f = block(f)
        for i, (up, blocks) in enumerate(zip(self.ups, self.decoders, strict=True)):
            level = ENCODER_DECODER_LEVELS - 1 - i  # 4 (stride 16) ... 0 (full resolution)
            f = up(f) + (skips[level - 1] if level > 0 else self.intro(x))
            for block in blocks:
                f = block(f)
        return self.ending(f)  # (B, 3, H, W)

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) degraded image in [-1, 1] -> initial prediction in [-1, 1]."""
        x, crop = self.pad(degraded)
        return degraded + self.body(x)[(..., *crop)]
