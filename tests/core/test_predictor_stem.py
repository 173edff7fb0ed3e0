"""The initial predictor's pixel-unshuffle stem (issue 20): any image size, same result whether
the predictor pads itself or a graph runtime pads its input (dtpm_core.backends.graphs)."""

from __future__ import annotations

import pytest
import torch

from dtpm_core.backends.graph_builders import unpadded
from dtpm_core.config import PredictorConfig
from dtpm_core.errors import ConfigError
from dtpm_core.networks.layers import pad_with_context
from dtpm_core.networks.predictor import InitialPredictor

STEM = PredictorConfig(width=16, stem=2, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1)


def _trained_like(config: PredictorConfig) -> InitialPredictor:
    torch.manual_seed(0)
    net = InitialPredictor(config)
    with torch.no_grad():  # zero-initialised parts set nonzero, as training makes them
        for name, p in net.named_parameters():
            if name.endswith((".beta", ".gamma")) or name.startswith("ending."):
                p.normal_(0, 0.1)
    return net.eval()


@pytest.mark.parametrize("size", [(16, 16), (37, 51), (9, 5)])
def test_a_stem_predictor_restores_any_size(size):
    net = _trained_like(STEM)
    x = torch.rand(1, 3, *size) * 2 - 1
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert not torch.equal(y, x)
    assert net.size_multiple == 2 ** 2 * 2 and net.context_margin() == 8  # image pixels


@pytest.mark.parametrize("config", [PredictorConfig(width=16), STEM])
def test_padding_outside_the_network_gives_the_same_prediction(config):
    net = _trained_like(config)
    x = torch.rand(1, 3, 29, 42) * 2 - 1
    padded, crop = pad_with_context(x, net.size_multiple, net.context_margin())
    with torch.no_grad():
        assert torch.allclose(unpadded(net)(padded)[(..., *crop)], net(x), atol=1e-6)


def test_a_stem_widens_the_receptive_field_at_the_same_depth():
    def reach(config: PredictorConfig) -> int:
        net = _trained_like(config)
        x = torch.zeros(1, 3, 97, 97, requires_grad=True)
        net(x)[0, :, 48, 48].sum().backward()
        cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2)) > 1e-3 * x.grad.abs().max())
        return int(cols.max() - cols.min()) + 1

    plain = PredictorConfig(width=16, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1)
    assert reach(STEM) > 1.5 * reach(plain)


def test_only_stems_of_1_2_or_4():
    with pytest.raises(ConfigError, match="stem"):
        PredictorConfig(stem=3)
