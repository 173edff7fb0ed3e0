"""The torch side of `graphs`: the networks, built from their weight files, wrapped for
tracing. Each network pads its input itself (a mirrored context margin, then a multiple of
2^levels) with sizes computed in Python, which a traced graph would freeze at the example's
size; the wrappers here take inputs padded already and return the padded output, which the
runtime crops. Everything else is the networks' own `forward`, unchanged: the sinusoidal
embeddings and conditioning MLPs are inside the graphs."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from ..modelfiles.weights import load_adapter, load_base
from ..networks.denoiser import Denoiser
from ..networks.unet import UNet
from . import GraphLayout

EXAMPLE_SIZE = 64
"""Height and width of the example inputs the networks are traced with (a multiple of 16)."""


def unpadded(net: UNet) -> UNet:
    """A copy of `net` (fp32, eval) that runs on inputs padded already: its `pad` leaves the
    input as it is, so the graph holds no size computed at trace time."""
    net = copy.deepcopy(net).float().eval().requires_grad_(False)
    net.pad = lambda x: (x, (slice(None), slice(None)))  # instance attribute, this copy only
    return net


def example_images(count: int, channels: int = 3) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(1, channels, EXAMPLE_SIZE, EXAMPLE_SIZE, generator=generator)
            for _ in range(count)]


class _DenoiserGraph(nn.Module):
    def __init__(self, denoiser: Denoiser, adapters: nn.Module | None,
                 semantic: bool) -> None:
        super().__init__()
        self.denoiser, self.adapters, self.semantic = denoiser, adapters, semantic

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        inputs = list(inputs)
        x_t, y_d = inputs.pop(0), inputs.pop(0)
        guidance = inputs.pop(0) if self.adapters is not None else None
        sqrt_gamma = inputs.pop(0)
        semantic_code = inputs.pop(0) if self.semantic else None
        return self.denoiser(x_t, y_d, sqrt_gamma, semantic_code, adapters=self.adapters,
                             guidance=guidance)


def build_denoiser(base: Path, adapter: Path | None, inputs: tuple[str, ...]
                   ) -> tuple[nn.Module, tuple[torch.Tensor, ...], GraphLayout]:
    """The denoiser of `base` with the adapters (and ablation tensors) of `adapter`."""
    model, info = load_base(base)
    task = load_adapter(adapter, model, info) if adapter is not None else None
    denoiser = unpadded(model.denoiser)
    if task is not None and task.denoiser_overrides:
        denoiser.load_state_dict({k: v.float() for k, v in task.denoiser_overrides.items()},
                                 strict=False)
    adapters = task.adapters if task is not None else None
    parts = copy.deepcopy(adapters).float() if adapters is not None else None
    semantic = model.denoiser.semantic_mlp is not None
    if ("guidance" in inputs) != (parts is not None) or ("semantic_code" in inputs) != semantic:
        raise ValueError(f"the denoiser graph's inputs {inputs} do not fit the files")
    example = example_images(3 if parts is not None else 2) + [torch.full((1,), 0.5)]
    if semantic:
        example.append(torch.zeros(1, model.denoiser.semantic_mlp[0].in_features))
    layout = GraphLayout(inputs, 2 + (parts is not None), model.denoiser.context_margin(),
                         model.denoiser.size_multiple)
    return _DenoiserGraph(denoiser, parts, semantic).eval(), tuple(example), layout


def build_predictor(base: Path, adapter: Path
                    ) -> tuple[nn.Module, tuple[torch.Tensor, ...], GraphLayout]:
    """The initial predictor of `adapter` (checked against its `base`)."""
    model, info = load_base(base)
    predictor = load_adapter(adapter, model, info).predictor
    if predictor is None:
        raise ValueError(f"{adapter} has no initial predictor")
    layout = GraphLayout(("y_d",), 1, predictor.context_margin(), predictor.size_multiple)
    return unpadded(predictor), tuple(example_images(1)), layout


def _mirrored_same_convs(net: nn.Module) -> nn.Module:
    """A copy of `net` (fp32, eval) whose `SameConv`s are convolutions with the spatially
    flipped kernel and symmetric padding: on the flipped image it gives the flipped output of
    `net`, at any input size (see `_FlippedFeatures`)."""
    from ..networks.efficientnet_lite import SameConv

    net = copy.deepcopy(net).float().eval().requires_grad_(False)
    for parent in list(net.modules()):
        for name, child in parent.named_children():
            if isinstance(child, SameConv):
                conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size,
                                 stride=child.stride, padding=child.kernel_size[0] // 2,
                                 groups=child.groups, bias=False)
                conv.weight.data.copy_(child.weight.data.flip((2, 3)))
                setattr(parent, name, conv)
    return net


class _FlippedFeatures(nn.Module):
    """EfficientNet-Lite0's stage features with TensorFlow's "same" padding at any input size,
    in a form a traced graph keeps for every size.

    `SameConv` computes its padding from the input size in Python: at stride 2 the extra pixel
    goes right and below, so the sampling grid is anchored at the image's bottom-right corner,
    and a trace would freeze the pads of its example's size. Mirrored, that grid is anchored
    at the top-left: a convolution with the spatially flipped kernel and symmetric padding
    k // 2 (PyTorch's own, size-independent) on the flipped image gives the flipped output,
    exactly: conv(flip(x), flip(w)) = flip(conv(x, w)), with ceil(n / 2) outputs at stride 2
    for either parity of n. So the image is flipped once on the way in, every stage output
    once on the way out, and everything between is pointwise or one of these convolutions."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = _mirrored_same_convs(net)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.net.stage_features(image.flip((2, 3)))
        return tuple(f.flip((2, 3)) for f in features)


def build_feature_network() -> tuple[nn.Module, tuple[torch.Tensor, ...], GraphLayout]:
    """EfficientNet-Lite0 with its ImageNet weights: (1, 3, H, W) in [0, 1] -> the output of
    each of its seven stages (what the EffNet-Lite0 feature distance compares)."""
    from ..networks.efficientnet_lite import load_efficientnet_lite0

    generator = torch.Generator().manual_seed(0)
    example = torch.rand(1, 3, EXAMPLE_SIZE + 3, EXAMPLE_SIZE + 1, generator=generator)
    return _FlippedFeatures(load_efficientnet_lite0()), (example,), \
        GraphLayout(("image",), 1, 0, 1)


class _SemanticGraph(nn.Module):
    """y_eps resized to the encoder's input size (`dtpm_core.networks.semantic_input`, outside
    the graph: a graph that resized inside compiled again for every photo size), in [-1, 1]
    -> the semantic code, as the torch engine computes it. EfficientNet-Lite0's "same" padding
    runs mirrored (`_mirrored_same_convs` on the flipped image), a form a trace keeps without
    padding computed in Python from the input size; its features are pooled globally, so the
    flip changes nothing else."""

    def __init__(self, encoder: nn.Module) -> None:
        from ..networks.semantic import EFFICIENTNET

        super().__init__()
        self.flip = encoder.mode == EFFICIENTNET
        if self.flip:
            encoder = copy.deepcopy(encoder)
            encoder.net = _mirrored_same_convs(encoder.net)
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        image01 = image.add(1.0).mul(0.5)
        return self.encoder(image01.flip((2, 3)) if self.flip else image01)


def build_semantic_encoder(mode: str) -> tuple[nn.Module, tuple[torch.Tensor, ...], GraphLayout]:
    """The semantic encoder of `mode` (`dtpm_core.networks.semantic`) on its input size (its own
    resize is then the identity)."""
    from ..networks.semantic import SEMANTIC_INPUT_SIZE, SemanticEncoder

    generator = torch.Generator().manual_seed(0)
    example = torch.rand(1, 3, SEMANTIC_INPUT_SIZE, SEMANTIC_INPUT_SIZE,
                         generator=generator) * 2 - 1
    return _SemanticGraph(SemanticEncoder(mode)).eval(), (example,), \
        GraphLayout(("image",), 1, 0, 1)
