"""The DTPM networks as graphs for a graph runtime (OpenVINO): one graph per network, fp32,
with dynamic height and width, and the shape-dependent padding left outside the graph.

    predictor:  y_d                                                -> y_eps
    semantic:   y_eps resized to 224 px    -> the semantic code (a base with a semantic
                encoder: its frozen trunk; the resize is `networks.semantic_input`'s)
    denoiser:   x_t, y_d, [guidance y_eps], sqrt_gamma, [semantic code] -> eps_hat
                (the task's adapters, and an ablation file's denoiser tensors, inside)
    singlepass: x, t                 -> y = x - f(x, t)   (`dtpm_core.singlepass.graph`)
    features:   image                -> the 7 stage outputs of EfficientNet-Lite0 (the
                trade-off curve's EffNet-Lite0 feature distance, `dtpm_core.evaluation`)

A graph is named by its key, which this module computes from what the weight files say of
themselves (`dtpm_core.modelfiles.verified`), without torch: a graph converted earlier (the
cache) or shipped beside the models runs without torch. Converting one needs the networks
(`graph_builders`, torch), built from the same files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..modelfiles.verified import AdapterInfo, BaseInfo
from ..networks.efficientnet_weights import STAGE_COUNT, WEIGHTS_SHA256
from . import GraphLayout, GraphSpec, shipped_graph_folders

GRAPH_FORMAT = 4
"""Version of the graph layout (inputs, padding, wrappers, the layout file, how weights are
stored); part of every cache key, so a change here converts the models again instead of
reading graphs of the old layout. 4: fp16 only for weights exactly fp16 (3 let OpenVINO round
every constant of an fp16 file's graph)."""


def denoiser_inputs(base: BaseInfo, task: AdapterInfo | None) -> tuple[str, ...]:
    guided = task is not None and task.stage2.uses_adapters
    semantic = base.config.denoiser.semantic != "none"
    return ("x_t", "y_d") + (("guidance",) if guided else ()) + ("sqrt_gamma",) \
        + (("semantic_code",) if semantic else ())


def denoiser_graph(base: BaseInfo, task: AdapterInfo | None) -> GraphSpec:
    """The denoiser with the task's adapters (and ablation tensors), or the plain base."""
    inputs = denoiser_inputs(base, task)

    def build() -> tuple[Any, tuple[Any, ...], GraphLayout]:
        from .graph_builders import build_denoiser

        return build_denoiser(_path(base.path), _path(task.path) if task else None, inputs)

    key = {"graph_format": GRAPH_FORMAT, "role": "denoiser", "base_sha256": base.sha256,
           "adapter_sha256": task.sha256 if task is not None else None,
           "config": _config(base), "inputs": list(inputs)}
    return GraphSpec("denoiser", key, build,
                     shipped_graph_folders(base.path, task.path if task else None))


def predictor_graph(base: BaseInfo, task: AdapterInfo) -> GraphSpec:
    """The task's initial predictor y_eps = P(y_d)."""
    if not task.stage2.use_predictor:
        raise ValueError("this task has no initial predictor")

    def build() -> tuple[Any, tuple[Any, ...], GraphLayout]:
        from .graph_builders import build_predictor

        return build_predictor(_path(base.path), _path(task.path))

    key = {"graph_format": GRAPH_FORMAT, "role": "predictor", "adapter_sha256": task.sha256,
           "config": _config(task)}
    return GraphSpec("predictor", key, build, shipped_graph_folders(task.path, base.path))


def semantic_graph(base: BaseInfo) -> GraphSpec:
    """The base's frozen semantic encoder: y_eps resized to (1, 3, 224, 224) in [-1, 1]
    (`dtpm_core.networks.semantic_input`) -> its code (1, D).
    Keyed by the encoder and where its weights come from (none are in the base file: seeded,
    the torch hub's ResNet-18, or the EfficientNet-Lite0 package's)."""
    mode = base.config.denoiser.semantic
    if mode == "none":
        raise ValueError("this base has no semantic encoder")

    def build() -> tuple[Any, tuple[Any, ...], GraphLayout]:
        from .graph_builders import build_semantic_encoder

        return build_semantic_encoder(mode)

    key = {"graph_format": GRAPH_FORMAT, "role": "semantic", "encoder": mode,
           "weights": SEMANTIC_WEIGHTS[mode], "input": "y_eps in [-1, 1] at 224 px"}
    return GraphSpec("semantic", key, build, shipped_graph_folders(base.path))


SEMANTIC_WEIGHTS = {"random": "resnet18, torch.manual_seed(0)",
                    "imagenet": "resnet18-f37072fd.pth",
                    "efficientnet-lite0": WEIGHTS_SHA256}
"""What the semantic encoder's weights are, per mode (`dtpm_core.networks.semantic`): part
of its graph's key."""


def feature_graph(shipped: tuple[Path, ...] = ()) -> GraphSpec:
    """EfficientNet-Lite0 with its ImageNet weights: image (1, 3, H, W) in [0, 1] -> its seven
    stage outputs. Keyed by the weight file's sha256 (`efficientnet_weights`), which is known
    without the file: a machine without torch (or without the weight package) runs the graph
    found in `shipped` (the `graphs/` folders of the installed models) or the cache."""

    def build() -> tuple[Any, tuple[Any, ...], GraphLayout]:
        from .graph_builders import build_feature_network

        return build_feature_network()

    key = {"graph_format": GRAPH_FORMAT, "role": "features", "network": "efficientnet-lite0",
           "weights_sha256": WEIGHTS_SHA256, "stages": STAGE_COUNT,
           "padding": "tensorflow-same by mirroring"}
    return GraphSpec("features", key, build, shipped)


def _config(info: BaseInfo | AdapterInfo) -> dict[str, Any]:
    return json.loads(info.config.to_json())


def _path(path: Path | None) -> Path:
    if path is None:
        raise ValueError("converting a network needs its weight file")
    return path
