"""The initial predictor on EfficientNet-Lite0 (issue 20, item 4): ImageNet features to start
from, folded batch norms that compute what the original does, any image size, a receptive
field over the whole crop, weight files that load without the ImageNet package, and an
OpenVINO graph that matches torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_factory import randomise_zero_inits

from dtpm_core.backends.graph_builders import unpadded
from dtpm_core.config import PredictorConfig, Stage2Options, preset
from dtpm_core.errors import ConfigError
from dtpm_core.modelfiles.weights import load_adapter, load_base, save_adapter, save_base
from dtpm_core.networks import efficientnet_weights
from dtpm_core.networks.efficientnet_lite import (
    EfficientNetLite0,
    folded_state,
    load_efficientnet_lite0,
)
from dtpm_core.networks.encoder_predictor import EncoderPredictor
from dtpm_core.networks.layers import pad_with_context
from dtpm_core.networks.model import DTPM, build_predictor
from dtpm_core.networks.predictor import InitialPredictor

ENCODER = {"predictor.encoder": "efficientnet-lite0", "predictor.enc_blocks": [],
           "predictor.dec_blocks": [1, 1, 1, 1, 1], "predictor.width": 8}
CONFIG = PredictorConfig(width=8, enc_blocks=(), dec_blocks=(1, 1, 1, 1, 1),
                         encoder="efficientnet-lite0")


def _trained_like(seed: int = 0) -> EncoderPredictor:
    torch.manual_seed(seed)
    net = EncoderPredictor(CONFIG)
    randomise_zero_inits(net, seed)
    with torch.no_grad():  # the zero-initialised ending set nonzero, as training makes it
        net.ending.weight.normal_(0, 0.05)
    return net.eval()


def test_folded_batch_norms_compute_what_the_imagenet_network_computes():
    original = load_efficientnet_lite0()
    folded = EfficientNetLite0(folded=True)
    folded.load_state_dict(folded_state(original), strict=True)
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for a, b in zip(original.stage_features(x), folded.stage_features(x), strict=True):
            assert torch.allclose(a, b, atol=2e-4, rtol=1e-4)
        assert torch.allclose(original(x), folded.eval()(x), atol=1e-3)


def test_a_fresh_predictor_is_the_identity_and_starts_from_imagenet():
    net = build_predictor(CONFIG)
    assert isinstance(net, EncoderPredictor)
    net.load_imagenet_encoder()
    expected = folded_state(load_efficientnet_lite0(), with_head=False)
    for name, value in net.encoder.state_dict().items():
        assert torch.equal(value, expected[name]), name
    x = torch.rand(1, 3, 40, 56) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net.eval()(x), x)  # y_eps = y_d until the decoder learns


@pytest.mark.parametrize("size", [(64, 64), (37, 51), (9, 5)])
def test_any_image_size_and_the_same_result_padded_outside(size):
    net = _trained_like()
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        y = net(x)
        padded, crop = pad_with_context(x, net.size_multiple, net.context_margin())
        outside = unpadded(net)(padded)[(..., *crop)]
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.equal(y, x)
    assert torch.allclose(outside, y, atol=1e-6)


def test_the_receptive_field_covers_a_training_crop():
    """The side of the centred square holding 95% of the centre output pixel's gradient (the
    README's measure), on a 128 px crop: about 100 px, where the tiny preset's NAF U-Net
    predictor sees about a tenth of that, less than the blur it must undo."""
    def reach(net: torch.nn.Module) -> int:
        x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
        x.requires_grad_(True)
        net(x)[0, :, 64, 64].sum().backward()
        weight = x.grad.abs().sum(dim=(0, 1))  # (128, 128)
        for r in range(64):
            if weight[64 - r:65 + r, 64 - r:65 + r].sum() >= 0.95 * weight.sum():
                return 2 * r + 1
        return 129

    encoder = _trained_like()
    encoder.load_imagenet_encoder()
    torch.manual_seed(0)
    plain = InitialPredictor(preset("tiny").predictor)
    randomise_zero_inits(plain)
    with torch.no_grad():
        plain.ending.weight.normal_(0, 0.05)
    assert reach(encoder.train()) >= 96 > 5 * reach(plain.train())


@pytest.mark.parametrize("changes, words", [
    ({"enc_blocks": (1, 1, 1, 1, 1)}, "enc_blocks = []"),
    ({"dec_blocks": (1, 1, 1)}, "5 dec_blocks"),
    ({"stem": 2}, "stem = 1"),
    ({"encoder": "resnet18"}, "must be one of"),
])
def test_settings_it_cannot_honour_are_refused(changes, words):
    settings = {"width": 8, "enc_blocks": (), "dec_blocks": (1, 1, 1, 1, 1),
                "encoder": "efficientnet-lite0", **changes}
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        PredictorConfig(**settings)


def _dtpm_with_encoder_predictor() -> DTPM:
    torch.manual_seed(0)
    model = DTPM(preset("tiny", denoiser__semantic="none").with_overrides(ENCODER),
                 Stage2Options())
    randomise_zero_inits(model)
    with torch.no_grad():
        model.predictor.ending.weight.normal_(0, 0.05)
    return model.eval()


def test_an_adapter_file_keeps_it_and_loads_without_the_imagenet_package(tmp_path,
                                                                         monkeypatch):
    model = _dtpm_with_encoder_predictor()
    sha = save_base(tmp_path / "base.safetensors", model)
    save_adapter(tmp_path / "motion.safetensors", model, "motion-deblur", sha)
    monkeypatch.setattr(efficientnet_weights, "weights_path", lambda: None)  # not installed
    base, info = load_base(tmp_path / "base.safetensors")
    task = load_adapter(tmp_path / "motion.safetensors", base, info)
    assert isinstance(task.predictor, EncoderPredictor)
    x = torch.rand(1, 3, 45, 70) * 2 - 1
    with torch.no_grad():
        assert torch.equal(task.predictor.eval()(x), model.predictor(x))


def test_the_openvino_graph_matches_torch_fp32_and_fp16_storage_halves_it(tmp_path):
    """Stored in fp16, the file and its graph are about half the size, and torch and
    OpenVINO still compute the same (fp32, on the same rounded weights)."""
    pytest.importorskip("openvino")
    from dtpm_core.backends.graph_cache import GraphCache
    from dtpm_core.backends.graphs import predictor_graph
    from dtpm_core.backends.openvino_backend import OpenVINOSession

    model = _dtpm_with_encoder_predictor()
    sha = save_base(tmp_path / "base.safetensors", model)
    sizes = {}
    for storage in ("fp32", "fp16"):
        path = tmp_path / f"motion-{storage}.safetensors"
        save_adapter(path, model, "motion-deblur", sha, storage=storage)
        base, info = load_base(tmp_path / "base.safetensors")
        task = load_adapter(path, base, info)
        cache = GraphCache(tmp_path / f"cache-{storage}")
        session = OpenVINOSession("fp32", threads=1, cache=cache)
        predictor, _ = session.network(predictor_graph(info, task.info))
        graph_bytes = sum(f.stat().st_size for f in cache.root.rglob("*.bin"))
        sizes[storage] = (path.stat().st_size, graph_bytes)
        for i, (h, w) in enumerate([(64, 64), (37, 70), (21, 9), (100, 33)]):
            y_d = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(i)) * 2 - 1
            with torch.no_grad():
                expected = task.predictor.eval()(y_d).numpy()
            out = predictor(y_d=y_d.numpy())
            assert out.shape == expected.shape
            assert float(np.abs(out - expected).max()) < 1e-4, (storage, h, w)
            if storage == "fp16":  # the rounding itself: far below one 8-bit level
                with torch.no_grad():
                    exact = model.predictor(y_d).numpy()
                assert float(np.abs(expected - exact).max()) < 0.5 / 255
    assert sizes["fp16"][0] < 0.55 * sizes["fp32"][0]
    assert sizes["fp16"][1] < 0.55 * sizes["fp32"][1]
