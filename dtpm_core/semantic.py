"""The frozen ResNet-18 semantic encoder (DESIGN 1.3).

Its global-pooled 512-d features of the whole condition image (downscaled) feed the
denoiser's conditioning vector. Weights: ImageNet from the torch hub cache (downloaded once
where allowed), or a seeded random initialisation that every machine reproduces exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .errors import WeightsError
from .hub import fetch_weights

RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
RESNET18_FILE = "resnet18-f37072fd.pth"
SEMANTIC_INPUT_SIZE = 224  # the whole image is resized to this before encoding
RANDOM_INIT_SEED = 0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_weights_available(allow_download: bool | None = False) -> bool:
    """Whether the ImageNet ResNet-18 file is in the torch hub cache (or can be fetched)."""
    return fetch_weights(RESNET18_URL, RESNET18_FILE, allow_download=allow_download) is not None


def resolve_semantic_mode(requested: str, allow_download: bool | None = None) -> tuple[str, str]:
    """For a new model: keep "imagenet" when its weights can be had, otherwise fall back to
    the seeded "random" encoder. Returns (mode, a sentence saying what was chosen and why)."""
    if requested != "imagenet":
        return requested, f"semantic encoder: {requested}"
    if imagenet_weights_available(allow_download):
        return "imagenet", "semantic encoder: ResNet-18 with ImageNet weights"
    return "random", (f"semantic encoder: ResNet-18 with seeded RANDOM weights ({RESNET18_FILE} "
                      "is not in the torch hub cache)")


class SemanticEncoder(nn.Module):
    """Frozen ResNet-18 trunk: (B, 3, H, W) image in [0, 1] -> (B, 512) features."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        from torchvision.models import resnet18  # imported lazily: torchvision is heavy

        if mode not in ("imagenet", "random"):
            raise ValueError(f"SemanticEncoder mode must be 'imagenet' or 'random', got {mode!r}")
        self.mode = mode
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
        self.net = net.eval().requires_grad_(False)
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
        return self.net((x - self.mean) / self.std)
