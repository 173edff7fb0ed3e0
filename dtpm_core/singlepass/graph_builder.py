"""The torch side of `graph`: the single-pass network built from its file and wrapped for
tracing, the MoE adaptors' top-k routing as one graph that runs only the chosen experts."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..backends import GraphLayout
from ..backends.graph_builders import example_images, unpadded
from .network import MoEAdaptor, fused_mixture
from .weights import load_singlepass


class _TopKAdaptor(nn.Module):
    """`MoEAdaptor` at inference as one graph that runs only the k experts the router weights
    most. Which experts those are depends on the image, a branch a traced graph cannot hold;
    so the experts' weights are stacked into constants and the chosen ones gathered by the
    router's top-k indices at run time, then run as the torch path runs them
    (`network.fused_mixture`). With k = 0 (or every expert) all
    of them run, as stacked constants. Same result as the torch path up to rounding."""

    def __init__(self, adaptor: MoEAdaptor) -> None:
        super().__init__()
        experts = adaptor.experts
        self.adaptor = adaptor  # its router and scale (the experts run from the stacks)
        self.k = adaptor.inference_top_k if 0 < adaptor.inference_top_k < len(experts) else 0
        first = experts[0][0]
        self.quarter, self.channels = first.out_channels, first.in_channels
        for name, index in (("first", 0), ("second", 2)):
            self.register_buffer(f"{name}_weight", torch.stack([e[index].weight for e in experts]))
            self.register_buffer(f"{name}_bias", torch.stack([e[index].bias for e in experts]))
        self.register_buffer("last_weight",
                             torch.stack([e[4].weight[:, :, 0, 0] for e in experts]))  # (E, C, q)
        self.register_buffer("last_bias", torch.stack([e[4].bias for e in experts]))  # (E, C)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        w = self.adaptor.route(x, emb)[0]  # (E,): the graph runs one image
        stacks = (self.first_weight, self.first_bias, self.second_weight, self.second_bias,
                  self.last_weight, self.last_bias)
        if self.k:
            top = w.topk(self.k)
            w = top.values / top.values.sum()  # (k,), renormalised
            stacks = tuple(stack[top.indices] for stack in stacks)  # the chosen experts' rows
        first_w, first_b, second_w, second_b, last_w, last_b = stacks
        n = self.k or self.first_weight.shape[0]  # experts run: a constant of the graph
        q, c = self.quarter, self.channels
        mixed = fused_mixture(
            x, first_w.reshape(n * q, c, 3, 3), first_b.reshape(n * q),
            second_w.reshape(n * q, q, 3, 3), second_b.reshape(n * q),
            last_w.permute(1, 0, 2).reshape(c, n * q, 1, 1), last_b, w[None], one_image=True)
        return x + self.adaptor.scale * mixed


def build_singlepass(path: Path, max_experts: int
                     ) -> tuple[nn.Module, tuple[torch.Tensor, ...], GraphLayout]:
    net, _ = load_singlepass(path)
    net.set_inference_top_k(max_experts)
    copy_ = unpadded(net)
    if copy_.adaptors is not None:
        copy_.adaptors = nn.ModuleList(_TopKAdaptor(a) for a in copy_.adaptors)
    layout = GraphLayout(("x", "t"), 1, net.context_margin(), net.size_multiple)
    return copy_, (example_images(1)[0], torch.full((1,), 1, dtype=torch.long)), layout
