"""The DTPM networks: presets, adapters, Stage II freezing and the objectives."""

import pytest
import torch
from model_factory import tiny_model

from dtpm_core.config import PRESETS, ModelConfig, Stage2Options, preset
from dtpm_core.diffusion.objectives import stage1_loss, stage2_loss, stage2_problem
from dtpm_core.errors import ConfigError
from dtpm_core.networks.adapters import AdapterSet
from dtpm_core.networks.model import DTPM, configure_stage2_trainable


def _inputs(seed=0, size=40):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, size, size + 8, generator=g)
    cond = torch.rand(2, 3, size, size + 8, generator=g) * 2 - 1
    level = torch.tensor([0.3, 0.9])
    return x, cond, level


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_keeps_the_shape(name):
    model = DTPM(preset(name, denoiser__semantic="none"), Stage2Options()).eval()
    x, cond, level = _inputs(size=32)
    with torch.no_grad():
        out = model.predict_noise(x, cond, level, None, guidance=cond)
    assert out.shape == x.shape


def test_config_json_round_trip_and_unknown_keys():
    config = preset("small", denoiser__semantic="random")
    assert ModelConfig.from_json(config.to_json()) == config
    with pytest.raises(ConfigError, match="unknown"):
        config.with_overrides({"denoiser.colour": 3})
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")


def test_fresh_adapters_leave_the_base_output_unchanged():
    model = tiny_model(Stage2Options(), seed=1)
    # a fresh AdapterSet, as Stage II starts: zero-initialised M_out
    model.adapters = AdapterSet(model.denoiser.block_widths, model.config.adapter.ratio)
    x, cond, level = _inputs()
    guidance = torch.rand_like(cond) * 2 - 1
    with torch.no_grad():
        base = model.denoiser(x, cond, level)
        adapted = model.predict_noise(x, cond, level, None, guidance=guidance)
    assert torch.equal(base, adapted)
    # and a trained (non-zero) adapter does change it: the check above is not vacuous
    with torch.no_grad():
        model.adapters.adapters[0].m_out.weight.fill_(0.05)
        changed = model.predict_noise(x, cond, level, None, guidance=guidance)
    assert (changed - base).abs().max() > 1e-4


def test_semantic_code_conditions_the_denoiser():
    model = tiny_model(semantic="random")
    x, cond, level = _inputs()
    image_a = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    image_b = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        code_a, code_b = model.semantic_code(image_a), model.semantic_code(image_b)
        assert code_a.shape == (2, 512)
        out_a = model.denoiser(x, cond, level, code_a)
        out_b = model.denoiser(x, cond, level, code_b)
    assert (out_a - out_b).abs().max() > 1e-5
    # the seeded random encoder is the same in every process
    again = tiny_model(semantic="random")
    with torch.no_grad():
        assert torch.equal(again.semantic_code(image_a), code_a)


def test_semantic_none_works_without_a_code():
    model = tiny_model(semantic="none")
    assert model.semantic is None and model.denoiser.semantic_mlp is None
    x, cond, level = _inputs()
    with torch.no_grad():
        assert model.denoiser(x, cond, level, None).shape == x.shape


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_stage2_step_leaves_every_base_weight_bit_identical():
    model = tiny_model(Stage2Options(), semantic="random")
    model.train()
    base_before = _snapshot(model.denoiser)
    semantic_before = _snapshot(model.semantic)
    task_before = _snapshot(model.predictor)
    params = configure_stage2_trainable(model)
    optimizer = torch.optim.Adam(params, lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        degraded = torch.rand(2, 3, 32, 32, generator=g)
        clean = torch.rand(2, 3, 32, 32, generator=g)
        optimizer.zero_grad()
        stage2_loss(model, degraded, clean, generator=g).backward()
        optimizer.step()
    for name, value in _snapshot(model.denoiser).items():
        assert torch.equal(value, base_before[name]), name
    for name, value in _snapshot(model.semantic).items():
        assert torch.equal(value, semantic_before[name]), name
    changed = [k for k, v in _snapshot(model.predictor).items() if not torch.equal(v, task_before[k])]
    assert changed  # the task parts did learn


@pytest.mark.parametrize("options,expect", [
    (Stage2Options(), {"adapters", "predictor"}),
    (Stage2Options(mode="finetune-encoder"), {"predictor", "encoder"}),
    (Stage2Options(mode="finetune-decoder"), {"predictor", "decoder"}),
    (Stage2Options(mode="finetune-both"), {"predictor", "encoder", "decoder", "middle"}),
    (Stage2Options(use_predictor=False), {"adapters"}),
    (Stage2Options(from_scratch=True), {"adapters", "predictor", "encoder", "decoder", "middle"}),
])
def test_only_the_intended_parameters_get_gradients(options, expect):
    model = tiny_model(options)
    configure_stage2_trainable(model)
    g = torch.Generator().manual_seed(0)
    stage2_loss(model, torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g),
                generator=g).backward()

    def group(name):
        if name.startswith("adapters."):
            return "adapters"
        if name.startswith("predictor."):
            return "predictor"
        if name.startswith("denoiser.") and any(
                name.startswith(f"denoiser.{p}") for p in ("intro", "encoders", "downs")):
            return "encoder"
        if name.startswith("denoiser.") and any(
                name.startswith(f"denoiser.{p}") for p in ("ups", "decoders", "ending")):
            return "decoder"
        if name.startswith("denoiser."):
            return "middle"
        return "other"

    with_grad = {group(n) for n, p in model.named_parameters()
                 if p.grad is not None and p.grad.abs().sum() > 0}
    requires = {group(n) for n, p in model.named_parameters() if p.requires_grad}
    assert requires == expect
    assert with_grad <= expect and "other" not in requires
    assert (model.adapters is not None) == options.uses_adapters
    assert (model.predictor is not None) == options.use_predictor


def test_stage1_loss_trains_the_denoiser():
    torch.manual_seed(0)
    model = DTPM(preset("tiny", denoiser__semantic="none")).train()
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(4, 3, 32, 32, generator=g)
    smooth = torch.nn.functional.avg_pool2d(clean, 5, 1, 2, count_include_pad=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for step in range(30):
        optimizer.zero_grad()
        loss = stage1_loss(model, clean, smooth, generator=torch.Generator().manual_seed(step))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(map(lambda v: v == v, losses))  # finite
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_stage2_loss_is_seeded():
    model = tiny_model(Stage2Options())
    d = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    c = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    a = stage2_loss(model, d, c, generator=torch.Generator().manual_seed(5))
    b = stage2_loss(model, d, c, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("weights, term", [
    ({"predictor_l1_weight": 0.5}, lambda x0: 0.5 * x0.abs().mean()),
    ({"predictor_mse_weight": 3.0}, lambda x0: 3.0 * x0.square().mean()),
    ({"predictor_l1_weight": 0.5, "predictor_mse_weight": 3.0},
     lambda x0: 0.5 * x0.abs().mean() + 3.0 * x0.square().mean()),
    ({"predictor_fft_weight": 2.0},
     lambda x0: 2.0 * torch.view_as_real(torch.fft.rfft2(x0, norm="ortho")).abs().mean()),
])
def test_stage2_auxiliary_predictor_losses_add_their_term(weights, term):
    model = tiny_model(Stage2Options())
    # an untrained predictor is the identity: give it an output so that x0 is not y_g - y_d
    torch.nn.init.normal_(model.predictor.ending.weight, std=0.1,
                          generator=torch.Generator().manual_seed(2))
    d = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    c = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    plain = stage2_loss(model, d, c, generator=torch.Generator().manual_seed(5))
    with_terms = stage2_loss(model, d, c, generator=torch.Generator().manual_seed(5), **weights)
    x0 = stage2_problem(model, d, c).x0
    torch.testing.assert_close(with_terms - plain, term(x0))


def test_the_noise_prediction_stays_fp32_under_bf16_autocast():
    # at t = T the x0 estimate multiplies eps_hat's error by ~157: bf16 rounding is too coarse
    model = tiny_model(None, semantic="none")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eps_hat = model.denoiser(x, x, torch.tensor([0.5]), None)
    assert eps_hat.dtype == torch.float32


def test_the_frequency_loss_is_the_spectrums_l1_and_keeps_the_energy():
    from dtpm_core.diffusion.objectives import frequency_l1

    g = torch.Generator().manual_seed(0)
    error = torch.randn(2, 3, 16, 24, generator=g)
    spectrum = torch.fft.fft2(error, norm="ortho")
    # orthonormal: the spectrum holds the error's energy (Parseval), at any crop size
    torch.testing.assert_close(spectrum.abs().square().sum(), error.square().sum())
    half = torch.fft.rfft2(error, norm="ortho")
    expected = (half.real.abs().sum() + half.imag.abs().sum()) / (2 * half.numel())
    torch.testing.assert_close(frequency_l1(error), expected)
    assert frequency_l1(torch.zeros(1, 3, 8, 8)) == 0
    # a blur's error (fine detail) and a flat offset of the same RMS weigh differently
    detail = torch.randn(1, 1, 32, 32, generator=g)
    offset = torch.full_like(detail, float(detail.square().mean().sqrt()))
    assert frequency_l1(detail) > 3 * frequency_l1(offset) > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert frequency_l1(error.bfloat16()).dtype == torch.float32
