"""The torch side of `graph`: the single-pass network built from its file and wrapped for
tracing, the MoE adaptors' top-k routing as one graph."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..backends import GraphLayout
from ..backends.graph_builders import example_images, unpadded
from .network import MoEAdaptor, top_k_weights
from .weights import load_singlepass


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
            w = top_k_weights(w, k)[0]
        mixed = sum(w[:, i, None, None, None] * expert(x) for i, expert in enumerate(a.experts))
        return x + a.scale * mixed


def build_singlepass(path: Path, max_experts: int
                     ) -> tuple[nn.Module, tuple[torch.Tensor, ...], GraphLayout]:
    net, _ = load_singlepass(path)
    net.set_inference_top_k(max_experts)
    copy_ = unpadded(net)
    if copy_.adaptors is not None:
        copy_.adaptors = nn.ModuleList(_TopKAdaptor(a) for a in copy_.adaptors)
    layout = GraphLayout(("x", "t"), 1, net.context_margin(), net.size_multiple)
    return copy_, (example_images(1)[0], torch.full((1,), 1, dtype=torch.long)), layout
