"""The single-pass network with a pixel-unshuffle stem (issue 22): the network itself at any
size and through OpenVINO, its warm start from a full-resolution file
(trainer.singlepass.stem), and `dtpm-train singlepass continue` training it."""

import numpy as np
import pytest
import torch
from fast_settings import FAST
from torch.nn import functional as F

from dtpm_core.backends.graph_builders import unpadded
from dtpm_core.errors import ConfigError
from dtpm_core.networks.layers import pad_with_context
from dtpm_core.singlepass.config import SinglePassConfig, singlepass_preset
from dtpm_core.singlepass.network import SinglePassNet
from dtpm_core.singlepass.weights import load_singlepass, save_singlepass
from trainer.cli import main as train_main
from trainer.singlepass.stem import stem_config, with_stem, write_stem_warm_start

TASKS = {"motion-deblur": 50, "desnow": 15}


def _trained_like(config: SinglePassConfig, seed: int = 0) -> SinglePassNet:
    torch.manual_seed(seed)
    net = SinglePassNet(config)
    with torch.no_grad():  # zero-initialised parts set nonzero, as training makes them
        for name, p in net.named_parameters():
            if name.endswith((".beta", ".gamma", ".scale")):
                p.normal_(0, 0.3)
    return net.eval()


def _source() -> SinglePassNet:
    return _trained_like(singlepass_preset("tiny", width=8, cond_dim=16,
                                           adaptor_tasks=tuple(TASKS)))


@pytest.mark.parametrize("size", [(16, 16), (37, 51), (9, 5)])
def test_a_stem_network_restores_any_size_and_pads_as_its_graph_does(size):
    net = with_stem(_source())
    assert net.config.stem == 2 and net.size_multiple == 2 ** 3 * 2
    x = torch.rand(1, 3, *size) * 2 - 1
    t = torch.full((1,), 15, dtype=torch.long)
    with torch.no_grad():
        y = net(x, t)
        padded, crop = pad_with_context(x, net.size_multiple, net.context_margin())
        outside = unpadded(net)(padded, t)[(..., *crop)]
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.equal(y, x)
    assert torch.allclose(outside, y, atol=1e-5)


def test_the_warm_start_keeps_the_lower_levels_and_the_linear_path_to_them():
    source = _source()
    net = with_stem(source)
    assert net.config.width == 16 and net.config.enc_blocks == (1, 1, 1)
    state, old = net.state_dict(), source.state_dict()
    assert torch.equal(state["encoders.0.0.conv1.weight"], old["encoders.1.0.conv1.weight"])
    assert torch.equal(state["decoders.2.0.conv1.weight"], old["decoders.2.0.conv1.weight"])
    assert torch.equal(state["adaptors.0.scale"], old["adaptors.0.scale"])
    assert torch.equal(state["middle.0.conv1.weight"], old["middle.0.conv1.weight"])
    # intro on 2 x 2 cells = the source's intro then its first down-sampling, exactly
    x = torch.randn(2, 3, 20, 28)
    f = torch.randn(2, 16, 10, 14)
    with torch.no_grad():
        assert torch.allclose(net.intro(F.pixel_unshuffle(x, 2)),
                              source.downs[0](source.intro(x)), atol=1e-5)
        assert torch.allclose(F.pixel_shuffle(net.ending(f), 2),
                              source.ending(source.ups[-1](f)), atol=1e-5)


def test_only_a_full_resolution_network_with_two_levels_gets_a_stem():
    with pytest.raises(ConfigError, match="stem already"):
        stem_config(with_stem(_source()))
    one_level = _trained_like(singlepass_preset("tiny", width=8, cond_dim=16, enc_blocks=(1,),
                                                dec_blocks=(1,)))
    with pytest.raises(ConfigError, match="two levels"):
        stem_config(one_level)
    with pytest.raises(ConfigError, match="stem"):
        singlepass_preset("tiny", stem=3)


def test_the_stem_graph_matches_torch_fp32(tmp_path):
    pytest.importorskip("openvino")
    from dtpm_core.backends.openvino_backend import OpenVINOSession
    from dtpm_core.singlepass.graph import singlepass_graph
    from dtpm_core.singlepass.info import read_singlepass_info

    path = tmp_path / "stem.safetensors"
    save_singlepass(path, with_stem(_source()), tasks=TASKS)
    net, _ = load_singlepass(path)
    net.set_inference_top_k(2)
    network, _ = OpenVINOSession("fp32", threads=1).network(
        singlepass_graph(read_singlepass_info(path), 2))
    for seed, (h, w) in enumerate([(24, 40), (37, 19)]):
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
        t = torch.full((1,), 50, dtype=torch.long)
        with torch.no_grad():
            expected = net(x, t).numpy()
        assert np.abs(network(x=x.numpy(), t=t.numpy()) - expected).max() < 1e-4


def test_continue_trains_the_warm_start_with_the_stem_overrides(tmp_path, clean_folder):
    source = tmp_path / "full.safetensors"
    save_singlepass(source, _source(), tasks=TASKS)
    start = tmp_path / "stem.safetensors"
    write_stem_warm_start(source, start)
    sets = []
    for item in (*FAST, 'singlepass.preset="tiny"', "singlepass.overrides.width=16",
                 "singlepass.overrides.cond_dim=16", "singlepass.overrides.stem=2",
                 "singlepass.overrides.enc_blocks=[1, 1, 1]",
                 "singlepass.overrides.dec_blocks=[1, 1, 1]", "singlepass.omega_batches=2",
                 "data.synthetic_length=8"):
        sets += ["--set", item]
    run = tmp_path / "run"
    assert train_main(["singlepass", "continue", "--init", str(start), "--run-dir", str(run),
                       "--tasks", "motion-deblur,desnow",
                       "--iterations", "2", "--quiet", "--clean", str(clean_folder),
                       *sets]) == 0
    before, _ = load_singlepass(start)
    after, info = load_singlepass(run / "singlepass.safetensors")
    assert after.config.stem == 2 and info.tasks == TASKS
    assert any(not torch.equal(v, before.state_dict()[k]) for k, v in after.state_dict().items())
