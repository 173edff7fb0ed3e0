"""The U-Net skeleton shared by the denoiser, the initial predictor and the single-pass network
(dtpm_core/networks/unet.py): its hooks, and that the three networks kept their weights' names,
shapes, order and seeded initial values (network_layouts.json, recorded before they shared
it) and still load the shipped models strictly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from model_factory import randomise_zero_inits
from network_layouts import CASES, layout
from safetensors.torch import load_file

from dtpm_core.backends.device import prepare_for_inference, to_network_layout
from dtpm_core.config import preset
from dtpm_core.modelfiles.weights import load_adapter, load_base
from dtpm_core.networks.denoiser import Denoiser
from dtpm_core.networks.inference_layers import ChannelsLastLayerNorm2d, FoldedAdaLNBlock
from dtpm_core.networks.layers import LayerNorm2d, NAFBlock
from dtpm_core.networks.predictor import InitialPredictor
from dtpm_core.networks.unet import UNet
from dtpm_core.singlepass.config import singlepass_preset
from dtpm_core.singlepass.network import SinglePassNet
from dtpm_core.singlepass.weights import load_singlepass

RECORDED = json.loads((Path(__file__).with_name("network_layouts.json")).read_text())
SHIPPED = Path(__file__).resolve().parents[2] / "resources" / "models"


@pytest.mark.parametrize("case", sorted(CASES))
def test_names_shapes_order_and_seeded_values_are_as_recorded(case):
    now, before = layout(case), RECORDED[case]
    assert sorted(now["keys"]) == sorted(before["keys"])  # weight files load
    assert now["keys"] == before["keys"]  # same order: optimiser states and checkpoints
    assert now["seeded_sha256"] == before["seeded_sha256"]  # training starts the same


@pytest.mark.skipif(not (SHIPPED / "manifest.json").is_file(), reason="no shipped models")
def test_the_shipped_models_load_strictly_into_the_same_tensors():
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    base, base_info = load_base(SHIPPED / manifest["base"])  # strict: every key, every shape
    tensors = load_file(SHIPPED / manifest["base"])
    assert all(torch.equal(v, tensors[k]) for k, v in base.denoiser.state_dict().items())
    for entry in manifest["adapters"]:
        parts = load_adapter(SHIPPED / entry["file"], base, base_info)
        tensors = load_file(SHIPPED / entry["file"])
        assert all(torch.equal(v, tensors["predictor." + k])
                   for k, v in parts.predictor.state_dict().items())
        assert len(parts.adapters) == len(base.denoiser.block_widths)
    net, _ = load_singlepass(SHIPPED / manifest["singlepass"])
    tensors = load_file(SHIPPED / manifest["singlepass"])
    assert net.adaptors is not None
    assert all(torch.equal(v, tensors[k]) for k, v in net.state_dict().items())


def _unet(**kwargs) -> UNet:
    torch.manual_seed(0)
    args = {"in_channels": 3, "width": 8, "enc_blocks": (1, 2), "middle_blocks": 2,
            "dec_blocks": (2, 1), "cond_dim": 8} | kwargs
    net = UNet(**args)
    randomise_zero_inits(net)
    return net.eval()


@pytest.mark.parametrize("size", [(16, 16), (13, 21), (1, 5)])
def test_any_size_comes_back_at_its_size(size):
    net = _unet()
    out = net.run(torch.randn(2, 3, *size), torch.randn(2, 8))
    assert out.shape == (2, 3, *size)


def test_after_block_sees_every_block_in_execution_order_with_its_level():
    net = _unet()
    seen = []

    def after_block(index, level, f):
        seen.append((index, level, f.shape[1]))
        return f

    net.run(torch.randn(1, 3, 12, 12), torch.randn(1, 8), after_block)
    assert [i for i, _, _ in seen] == list(range(len(net.block_widths)))
    assert tuple(c for _, _, c in seen) == net.block_widths == (8, 16, 16, 32, 32, 16, 16, 8)
    assert [level for _, level, _ in seen] == [0, 1, 1, 2, 2, 1, 1, 0]
    # and what it returns is what the next block gets
    base = net.run(torch.ones(1, 3, 8, 8), torch.zeros(1, 8))
    moved = net.run(torch.ones(1, 3, 8, 8), torch.zeros(1, 8), lambda i, lv, f: f + (i == 3))
    assert not torch.equal(base, moved)


def test_level_adaptor_runs_after_every_decoder_level_with_the_conditioning():
    calls = []

    class Recorder(torch.nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.channels = channels

        def forward(self, f, emb):
            calls.append((self.channels, f.shape[1], emb))
            return f

    net = _unet(level_adaptor=Recorder)
    assert [a.channels for a in net.adaptors] == [16, 8]
    emb = torch.randn(1, 8)
    net.run(torch.randn(1, 3, 8, 8), emb)
    assert [(c, n) for c, n, _ in calls] == [(16, 16), (8, 8)]
    assert all(e is emb for _, _, e in calls)
    assert _unet().adaptors is None


def test_unconditioned_blocks_for_the_predictor():
    net = _unet(cond_dim=None)
    assert all(block.modulation is None for block in net.modules() if isinstance(block, NAFBlock))
    assert net.run(torch.randn(1, 3, 9, 9)).shape == (1, 3, 9, 9)


def _networks():
    torch.manual_seed(0)
    tiny = preset("tiny", denoiser__semantic="none")
    denoiser = Denoiser(tiny.denoiser)
    predictor = InitialPredictor(tiny.predictor)
    single = SinglePassNet(singlepass_preset("tiny", adaptor_tasks=("a",)))
    x = torch.rand(1, 3, 21, 30) * 2 - 1
    level, t = torch.tensor([0.4]), torch.tensor([7])
    calls = {
        "denoiser": (denoiser, lambda m, x: m(x, x, level)),
        "predictor": (predictor, lambda m, x: m(x)),
        "single-pass": (single, lambda m, x: m(x, t)),
    }
    for module, _ in calls.values():
        randomise_zero_inits(module)
        with torch.no_grad():
            module.ending.weight.normal_(0.0, 0.1)  # the predictor's starts at zero
    return calls, x


def test_inference_layers_still_find_every_block_and_norm_of_the_three_networks():
    calls, x = _networks()
    for name, (module, call) in calls.items():
        module.eval()
        blocks = sum(type(m) is NAFBlock for m in module.modules())
        norms = sum(type(m) is LayerNorm2d for m in module.modules())
        with torch.no_grad():
            expected = call(module, x)
            prepare_for_inference(module, torch.device("cpu"), "fp32")
            got = call(module, to_network_layout(x))
        assert blocks and sum(type(m) is FoldedAdaLNBlock for m in module.modules()) == blocks
        assert sum(type(m) is ChannelsLastLayerNorm2d for m in module.modules()) == norms
        assert module.intro.weight.is_contiguous(memory_format=torch.channels_last), name
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4, msg=name)


def test_only_the_denoiser_ending_runs_in_fp32_under_bf16_autocast():
    calls, x = _networks()
    denoiser, call = calls["denoiser"]
    predictor, _ = calls["predictor"]
    features = torch.randn(1, 16, 4, 4)  # both are 16 wide at the top level
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert call(denoiser.eval(), x).dtype == torch.float32  # eps_hat (DESIGN 1.1)
        assert denoiser.end(features).dtype == torch.float32
        assert predictor.end(features).dtype == torch.bfloat16


def test_the_denoiser_adds_its_context_margin_in_eval_mode_only():
    calls, _ = _networks()
    denoiser, _ = calls["denoiser"]
    x = torch.randn(1, 6, 20, 20)
    assert denoiser.train().pad(x)[0].shape[-2:] == (32, 32)
    assert denoiser.eval().pad(x)[0].shape[-2:] == (64, 64)  # 20 + 2 * 16 -> 64
    predictor, _ = calls["predictor"]
    assert predictor.train().pad(x[:, :3])[0].shape[-2:] == (24, 24)  # 3 levels: 8
    assert predictor.eval().pad(x[:, :3])[0].shape[-2:] == (32, 32)  # 20 + 2 * 4 -> 32
