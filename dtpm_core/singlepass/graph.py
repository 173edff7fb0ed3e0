"""The single-pass network as a graph for a graph runtime (see `dtpm_core.backends.graphs`):
y = x - f(x, t), with the MoE adaptors' top-k routing inside the graph (only the chosen
experts run: their weights are gathered by the router's choice, `graph_builder._TopKAdaptor`).
The key is known without torch; converting builds the network from its file (`graph_builder`,
torch)."""

from __future__ import annotations

from typing import Any

from ..backends import GraphLayout, GraphSpec, shipped_graph_folders
from ..backends.graphs import GRAPH_FORMAT
from .info import SinglePassInfo


def singlepass_graph(info: SinglePassInfo, max_experts: int) -> GraphSpec:
    """The single-pass network y = x - f(x, t) running `max_experts` experts per adaptor
    (0: all); t is a (1,) int64 time step."""
    if info.path is None:
        raise ValueError("converting the single-pass network needs its weight file")
    path = info.path

    def build() -> tuple[Any, tuple[Any, ...], GraphLayout]:
        from .graph_builder import build_singlepass

        return build_singlepass(path, max_experts)

    top_k = max_experts if info.config.adaptor_tasks else None
    # "experts": how the graph runs them ("gathered": only the top k, their weights gathered
    # by the router's choice at run time; graphs before it ran every expert)
    key = {"graph_format": GRAPH_FORMAT, "role": "singlepass", "sha256": info.sha256,
           "config": info.config.to_dict(), "top_k": top_k, "experts": "gathered"}
    return GraphSpec("singlepass", key, build, shipped_graph_folders(path))
