"""The fast CPU path (issue 17): precision choice, bf16 weights converted once with the
fp32 parts kept, channels-last, top-k MoE experts at inference, one thread count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_factory import tiny_model

from dtpm_core.backends import device as device_module
from dtpm_core.backends.device import (
    configure_threads,
    cpu_has_native_bf16,
    default_thread_count,
    resolve_precision,
)
from dtpm_core.config import Stage2Options
from dtpm_core.engines.dtpm_restorer import Restorer
from dtpm_core.engines.singlepass_restorer import SinglePassRestorer
from dtpm_core.errors import ConfigError
from dtpm_core.evaluation.metrics import psnr
from dtpm_core.modelfiles.weights import save_adapter, save_base
from dtpm_core.singlepass.config import singlepass_preset
from dtpm_core.singlepass.network import SinglePassNet
from dtpm_core.singlepass.weights import load_singlepass, save_singlepass

CPU = torch.device("cpu")


@pytest.fixture
def native_bf16(monkeypatch):
    """Make the detection say yes, so the bf16 path runs on any CPU (emulated where the CPU
    lacks it: slower, same arithmetic)."""
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda flags=None: True)


@pytest.fixture(scope="module")
def dtpm_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fastpath")
    model = tiny_model(Stage2Options(), semantic="random", seed=3)
    sha = save_base(folder / "base.safetensors", model)
    save_adapter(folder / "motion.safetensors", model, "motion-deblur", sha)
    ablation = tiny_model(Stage2Options(mode="finetune-decoder"), semantic="random", seed=3)
    save_adapter(folder / "decoder.safetensors", ablation, "motion-deblur", sha)
    return folder


@pytest.fixture(scope="module")
def photo():
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[100:196, 120:248] / 255.0, dtype=np.float32)


def test_cpu_bf16_detection_reads_the_flags():
    assert cpu_has_native_bf16(["fpu", "avx512f", "amx_bf16"])
    assert cpu_has_native_bf16(["avx512_bf16"])
    assert not cpu_has_native_bf16(["fpu", "avx2", "avx512f"])


def test_precision_auto_follows_the_cpu_and_impossible_choices_are_errors():
    assert resolve_precision(CPU, "auto", bf16_cpu=True) == "bf16"
    assert resolve_precision(CPU, "auto", bf16_cpu=False) == "fp32"
    assert resolve_precision(CPU, "fp32", bf16_cpu=True) == "fp32"
    assert resolve_precision(CPU, "bf16", bf16_cpu=True) == "bf16"
    with pytest.raises(ConfigError, match="no native bf16"):
        resolve_precision(CPU, "bf16", bf16_cpu=False)
    with pytest.raises(ConfigError, match="fp16 is not supported on the CPU"):
        resolve_precision(CPU, "fp16", bf16_cpu=True)
    with pytest.raises(ConfigError, match="unknown precision"):
        resolve_precision(CPU, "int8", bf16_cpu=True)


def test_thread_count_leaves_busy_cores_alone_and_is_set_once(monkeypatch):
    assert default_thread_count(cores=2, load=3.7) == 1
    assert default_thread_count(cores=2, load=0.3) == 2
    assert default_thread_count(cores=16, load=4.2) == 12
    # a fresh process: nothing configured yet (other tests may have set torch's count)
    monkeypatch.setattr(device_module, "_configured_threads", None)
    before = torch.get_num_threads()
    try:
        first = configure_threads(1)
        assert configure_threads(first + 3) == first == torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_bf16_restorer_converts_weights_once_and_keeps_epsilon_fp32(dtpm_files, photo,
                                                                     native_bf16):
    fast = Restorer(dtpm_files / "base.safetensors", dtpm_files / "motion.safetensors",
                    device="cpu", precision="auto")
    assert fast.precision == "bf16"
    denoiser = fast.networks.model.denoiser
    for name, param in denoiser.named_parameters():
        expected = torch.float32 if name.startswith("ending.") else torch.bfloat16
        assert param.dtype == expected, name
    assert denoiser.intro.weight.is_contiguous(memory_format=torch.channels_last)
    assert {p.dtype for p in fast.networks.task.parameters()} == {torch.bfloat16}
    x = torch.zeros(1, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eps = denoiser(x, x, torch.full((1,), 0.5), torch.zeros(1, 512),
                       adapters=fast.networks.task.adapters, guidance=x)
    assert eps.dtype == torch.float32

    exact = Restorer(dtpm_files / "base.safetensors", dtpm_files / "motion.safetensors",
                     device="cpu", precision="fp32")
    a = exact.restore(photo, [1, 4], seed=3, tile=0)
    b = fast.restore(photo, [1, 4], seed=3, tile=0)
    for k in (1, 4):
        assert b.results[k].dtype == np.float32
        assert psnr(b.results[k], a.results[k]) > 40.0, k
    # converted once: a second call gives the same bytes and leaves the weights as they were
    again = fast.restore(photo, [1, 4], seed=3, tile=0)
    assert again.result.tobytes() == b.result.tobytes()
    assert denoiser.intro.weight.dtype == torch.bfloat16


def test_bf16_ablation_overrides_take_the_denoiser_dtypes(dtpm_files, photo, native_bf16):
    restorer = Restorer(dtpm_files / "base.safetensors", dtpm_files / "decoder.safetensors",
                        device="cpu", precision="bf16")
    params = dict(restorer.networks.model.denoiser.named_parameters())
    assert restorer.networks.task.denoiser_overrides
    for name, tensor in restorer.networks.task.denoiser_overrides.items():
        assert tensor.dtype == params[name].dtype, name
    assert restorer.networks.task.denoiser_overrides["ending.weight"].dtype == torch.float32
    out = restorer.restore(photo, 2, seed=0, tile=0).result
    assert np.isfinite(out).all()


def test_bf16_on_a_cpu_without_it_is_refused_at_load(dtpm_files, monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda flags=None: False)
    with pytest.raises(ConfigError, match="no native bf16"):
        Restorer(dtpm_files / "base.safetensors", device="cpu", precision="bf16")
    assert Restorer(dtpm_files / "base.safetensors", device="cpu").precision == "fp32"


# ---------------------------------------------------------------------------------------------
# Single-pass engine: top-k experts at inference, bf16


TASKS = {"desnow": 15, "raindrop": 22}


@pytest.fixture(scope="module")
def singlepass_file(tmp_path_factory):
    torch.manual_seed(0)
    net = SinglePassNet(singlepass_preset("tiny", width=8, cond_dim=16,
                                          adaptor_tasks=tuple(TASKS)))
    with torch.no_grad():
        for adaptor in net.adaptors:
            adaptor.scale.fill_(0.5)
            for param in adaptor.router.parameters():
                param.normal_(0.0, 1.0)
    path = tmp_path_factory.mktemp("sp") / "fast.safetensors"
    save_singlepass(path, net.eval(), tasks=TASKS)
    return path


def test_top_k_runs_only_the_heaviest_experts_renormalised(singlepass_file):
    net, _ = load_singlepass(singlepass_file)
    net.eval()
    adaptor = net.adaptors[-1]
    x = torch.randn(1, adaptor.experts[0][0].in_channels, 16, 16,
                    generator=torch.Generator().manual_seed(0))
    emb = torch.randn(1, net.config.cond_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        w = adaptor.route(x, emb)[0]
        top = w.topk(2)
        expected = x + adaptor.scale * sum(top.values[j] / top.values.sum()
                                           * adaptor.experts[int(i)](x)
                                           for j, i in enumerate(top.indices))
        full = x + adaptor.scale * sum(w[i] * e(x) for i, e in enumerate(adaptor.experts))
        for fused in (True, False):  # three stacked convolutions, or expert by expert
            adaptor.fuse_at_inference = fused
            net.set_inference_top_k(0)
            torch.testing.assert_close(adaptor(x, emb), full)
            net.set_inference_top_k(len(adaptor.experts))
            torch.testing.assert_close(adaptor(x, emb), full)
            net.set_inference_top_k(2)
            torch.testing.assert_close(adaptor(x, emb), expected)
        # a batch: each image keeps its own top-k
        pair = torch.cat([x, x.flip(-1)])
        for k in (0, 2):
            net.set_inference_top_k(k)
            adaptor.fuse_at_inference = True
            batch = adaptor(pair, emb.expand(2, -1))
            adaptor.fuse_at_inference = False
            torch.testing.assert_close(batch, adaptor(pair, emb.expand(2, -1)))
        net.set_inference_top_k(2)
        # the experts left out are not run at all: broken weights there change nothing
        for i, expert in enumerate(adaptor.experts):
            if i not in top.indices.tolist():
                for param in expert.parameters():
                    param.fill_(float("nan"))
        for fused in (True, False):
            adaptor.fuse_at_inference = fused
            torch.testing.assert_close(adaptor(x, emb), expected)
    net.set_inference_top_k(1)
    net.train()  # training runs every expert, top-k or not
    assert not torch.isfinite(adaptor(x, emb)).all()
    with pytest.raises(ConfigError):
        net.set_inference_top_k(-1)


def test_top_k_changes_no_weight_and_the_file_loads_as_before(singlepass_file, tmp_path):
    restorer = SinglePassRestorer(singlepass_file, device="cpu", precision="fp32",
                                  max_experts=2)
    plain, _ = load_singlepass(singlepass_file)
    assert restorer.net.state_dict().keys() == plain.state_dict().keys()
    for name, tensor in plain.state_dict().items():
        assert torch.equal(restorer.net.state_dict()[name], tensor), name


def test_single_pass_bf16_is_close_to_fp32(singlepass_file, photo, native_bf16):
    exact = SinglePassRestorer(singlepass_file, device="cpu", precision="fp32")
    fast = SinglePassRestorer(singlepass_file, device="cpu")
    assert fast.precision == "bf16"
    assert {p.dtype for p in fast.net.parameters()} == {torch.bfloat16}
    a = exact.restore(photo, "desnow", tile=0).result
    b = fast.restore(photo, "desnow", tile=0).result
    assert b.dtype == np.float32
    assert psnr(b, a) > 40.0


def test_fused_layer_norm_matches_layernorm2d_and_keeps_the_weights():
    from dtpm_core.networks.inference_layers import (
        ChannelsLastLayerNorm2d,
        FoldedAdaLNBlock,
        use_fused_layer_norms,
    )
    from dtpm_core.networks.layers import LayerNorm2d, NAFBlock

    torch.manual_seed(0)
    block = NAFBlock(8, 16)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.5)
    x = torch.randn(2, 8, 9, 11)
    cond = torch.randn(2, 16)
    before = {k: v.clone() for k, v in block.state_dict().items()}
    expected = block(x, cond)
    assert use_fused_layer_norms(block) == 2
    assert type(block.norm1) is ChannelsLastLayerNorm2d
    assert type(block) is FoldedAdaLNBlock
    assert block.state_dict().keys() == before.keys()
    for name, tensor in block.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    channels_last = x.contiguous(memory_format=torch.channels_last)
    # one image: AdaLN folded into the fused norm; a batch: fused norms, AdaLN as before
    torch.testing.assert_close(block(channels_last[:1], cond[:1]), expected[:1], atol=2e-5,
                               rtol=1e-5)
    torch.testing.assert_close(block(channels_last, cond), expected, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(block(x, cond), expected)  # other layouts: the original
    plain = NAFBlock(8)  # unconditioned (the initial predictor's)
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_(0.0, 0.5)
    expected = plain(x)
    use_fused_layer_norms(plain)
    assert type(plain) is FoldedAdaLNBlock
    torch.testing.assert_close(plain(channels_last[:1]), expected[:1], atol=2e-5, rtol=1e-5)
    norm = LayerNorm2d(8)
    use_fused_layer_norms(norm)
    out = norm(channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last)
