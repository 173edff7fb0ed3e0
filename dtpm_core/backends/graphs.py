"""The networks as graphs for a graph runtime (OpenVINO): one graph per network, fp32, with
dynamic height and width, and the shape-dependent padding left outside the graph.

    predictor:  y_d                                                -> y_eps
    denoiser:   x_t, y_d, [guidance y_eps], sqrt_gamma, [semantic code] -> eps_hat
                (the task's adapters, and an ablation file's denoiser tensors, inside)
    singlepass: x, t                 -> y = x - f(x, t)   (`dtpm_core.singlepass.graph`)

Each network pads its input itself (a mirrored context margin, then a multiple of 2^levels)
with sizes computed in Python, which a traced graph would freeze at the example's size; the
graphs here take inputs padded already (`GraphSpec.margin` / `multiple`) and return the padded
output, which the runtime crops. Everything else is the networks' own `forward`, unchanged:
the sinusoidal embeddings and conditioning MLPs are inside the graphs.
"""

from __future__ import annotations

import copy
import json

import torch
from torch import nn

from ..modelfiles.weights import BaseInfo, TaskParts
from ..networks.denoiser import Denoiser
from ..networks.model import DTPM
from ..networks.unet import UNet
from . import GraphSpec

GRAPH_FORMAT = 2
"""Version of the graph layout (inputs, padding, wrappers); part of every cache key, so a
change here converts the models again instead of reading graphs of the old layout."""
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


def denoiser_graph(model: DTPM, base: BaseInfo, task: TaskParts | None) -> GraphSpec:
    """The denoiser with the task's adapters (and ablation tensors), or the plain base."""
    adapters = task.adapters if task is not None else None
    semantic = model.denoiser.semantic_mlp is not None
    inputs = ("x_t", "y_d") + (("guidance",) if adapters is not None else ()) \
        + ("sqrt_gamma",) + (("semantic_code",) if semantic else ())

    def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        denoiser = unpadded(model.denoiser)
        if task is not None and task.denoiser_overrides:
            denoiser.load_state_dict({k: v.float() for k, v in task.denoiser_overrides.items()},
                                     strict=False)
        parts = copy.deepcopy(adapters).float() if adapters is not None else None
        example = example_images(3 if adapters is not None else 2) + [torch.full((1,), 0.5)]
        if semantic:
            width = model.denoiser.semantic_mlp[0].in_features
            example.append(torch.zeros(1, width))
        return _DenoiserGraph(denoiser, parts, semantic).eval(), tuple(example)

    key = {"graph_format": GRAPH_FORMAT, "role": "denoiser", "base_sha256": base.sha256,
           "adapter_sha256": task.info.sha256 if task is not None else None,
           "config": json.loads(base.config.to_json()), "inputs": list(inputs)}
    return GraphSpec("denoiser", key, inputs, 2 + (adapters is not None),
                     model.denoiser.context_margin(), model.denoiser.size_multiple, build)


def predictor_graph(task: TaskParts) -> GraphSpec:
    """The task's initial predictor y_eps = P(y_d)."""
    predictor = task.predictor
    if predictor is None:
        raise ValueError("this task has no initial predictor")

    def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        return unpadded(predictor), tuple(example_images(1))

    key = {"graph_format": GRAPH_FORMAT, "role": "predictor",
           "adapter_sha256": task.info.sha256,
           "config": json.loads(task.info.config.to_json())}
    return GraphSpec("predictor", key, ("y_d",), 1, predictor.context_margin(),
                     predictor.size_multiple, build)
