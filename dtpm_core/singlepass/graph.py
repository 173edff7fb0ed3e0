"""The single-pass network as a graph for a graph runtime (see `dtpm_core.backends.graphs`):
y = x - f(x, t), with the MoE adaptors' top-k routing inside the graph."""

from __future__ import annotations

import torch
from torch import nn

from ..backends import GraphSpec
from ..backends.graphs import GRAPH_FORMAT, example_images, unpadded
from .network import MoEAdaptor, SinglePassNet
from .weights import SinglePassInfo


class _TopKAdaptor(nn.Module):
    """`MoEAdaptor` at inference as one graph: the router's top-k weights (renormalised,
    zeros elsewhere) over every expert. Which experts are heaviest depends on the image, so
    the torch path's choice of experts to run is a branch a traced graph cannot hold; here
    the others run with weight 0 (same result up to rounding, more work)."""

    def __init__(self, adaptor: MoEAdaptor) -> None:
        super().__init__()
        self.adaptor = adaptor

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        a = self.adaptor
        w = a.route(x, emb)  # (1, E)
        k = a.inference_top_k
        if 0 < k < len(a.experts):
            top = w.topk(k, dim=1)
            w = torch.zeros_like(w).scatter(1, top.indices,
                                            top.values / top.values.sum(1, keepdim=True))
        mixed = sum(w[:, i, None, None, None] * expert(x) for i, expert in enumerate(a.experts))
        return x + a.scale * mixed


def singlepass_graph(net: SinglePassNet, info: SinglePassInfo) -> GraphSpec:
    """The single-pass network y = x - f(x, t); t is a (1,) int64 time step."""
    top_k = [a.inference_top_k for a in net.adaptors] if net.adaptors is not None else []

    def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        copy_ = unpadded(net)
        if copy_.adaptors is not None:
            copy_.adaptors = nn.ModuleList(_TopKAdaptor(a) for a in copy_.adaptors)
        return copy_, (example_images(1)[0], torch.full((1,), 1, dtype=torch.long))

    key = {"graph_format": GRAPH_FORMAT, "role": "singlepass", "sha256": info.sha256,
           "config": info.config.to_dict(), "top_k": top_k}
    return GraphSpec("singlepass", key, ("x", "t"), 1, net.context_margin(),
                     net.size_multiple, build)
