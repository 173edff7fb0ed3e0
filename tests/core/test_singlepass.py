"""Single-pass engine (DESIGN 6): schedule, network, MoE adaptors and training losses."""

from __future__ import annotations

import pytest
import torch

from dtpm_core.errors import ConfigError
from dtpm_core.singlepass.config import SINGLEPASS_PRESETS, SinglePassConfig, singlepass_preset
from dtpm_core.singlepass.network import (
    SinglePassNet,
    loss_gradients,
    orthogonality_loss,
    parameter_importance,
    regulariser,
    restoration_loss,
    snapshot,
    tmddp_loss,
    trainable_parameters,
)
from dtpm_core.singlepass.schedule import (
    MATCHED_TIME_STEPS,
    SIGMA_MAX,
    TASK_TIME_STEPS,
    noisy_input,
    sample_time_steps,
    sigma_bars,
    time_step_for,
)

TINY = singlepass_preset("tiny", width=8, cond_dim=16)


def _randomise_residual_scales(net: torch.nn.Module, seed: int = 0) -> None:
    """NAFBlocks start as the identity (beta = gamma = 0); give them weight so that every
    parameter influences the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("beta", "gamma")) or ".modulation." in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def _net(config: SinglePassConfig = TINY, seed: int = 0) -> SinglePassNet:
    torch.manual_seed(seed)
    net = SinglePassNet(config)
    _randomise_residual_scales(net, seed)
    return net


def _clean(batch: int = 4, size: int = 16, seed: int = 1) -> torch.Tensor:
    """Smooth clean crops in [0, 1]: (B, 3, size, size)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, size // 4, size // 4, generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear",
                                           align_corners=False)


# --- schedule -------------------------------------------------------------------------------

def test_schedule_check_values():
    table = sigma_bars()
    assert table.shape == (51,) and table.dtype == torch.float64
    assert table[0] == 0.0
    assert torch.all(table[1:] > table[:-1])
    for t, expected in {4: 2.9, 8: 5.2, 15: 8.0, 27: 9.8}.items():
        assert abs(float(table[t]) * 255 - expected) < 0.15, (t, float(table[t]) * 255)
    assert abs(float(table[-1]) - SIGMA_MAX) < 0.005 * SIGMA_MAX


def test_noisy_input_has_the_intended_noise_level():
    table = sigma_bars()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 128, 128, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor([15, 4])
    x_t = noisy_input(x0, t, eps, table)
    for i in range(2):
        std = float((x_t[i] - x0[i]).std())
        assert abs(std - float(table[t[i]])) < 0.02 * float(table[t[i]])


def test_time_step_tables_and_sampling():
    assert MATCHED_TIME_STEPS["snow"] == 15 and MATCHED_TIME_STEPS["low-light"] == 38
    assert TASK_TIME_STEPS == {"motion-deblur": 50, "defocus-deblur": 50, "derain-dehaze": 47,
                               "desnow": 15, "raindrop": 22}
    assert time_step_for("desnow") == 15
    with pytest.raises(ConfigError, match="calibrate"):
        time_step_for("sepia")
    t = sample_time_steps(4000, torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and int(t.min()) == 1 and int(t.max()) == 50


# --- network --------------------------------------------------------------------------------

def test_odd_sizes_keep_their_shape_and_residual_form():
    net = _net()
    x = torch.rand(2, 3, 33, 27) * 2 - 1
    y = net(x, torch.tensor([3, 50]))
    assert y.shape == x.shape
    with torch.no_grad():
        net.ending.weight.zero_()
        net.ending.bias.zero_()
    assert torch.equal(net(x, torch.tensor([3, 50])), x)  # y = x - f with f = 0


def test_time_step_conditions_the_output():
    net = _net()
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert not torch.allclose(net(x, torch.tensor([4])), net(x, torch.tensor([47])))


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_small_presets_run(name):
    net = SinglePassNet(SINGLEPASS_PRESETS[name])
    x = torch.rand(1, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        y = net(x, torch.tensor([15]))
    assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["paper", "reference"])
def test_large_presets_build(name):
    net = SinglePassNet(SINGLEPASS_PRESETS[name])
    count = sum(p.numel() for p in net.parameters())
    assert count > 5_000_000


def test_config_round_trip_and_errors():
    config = singlepass_preset("reference", adaptor_tasks=("desnow", "raindrop"))
    assert SinglePassConfig.from_dict(config.to_dict()) == config
    assert SINGLEPASS_PRESETS["reference"].enc_blocks == (2, 2, 4, 28)
    with pytest.raises(ConfigError):
        SinglePassConfig.from_dict({"widht": 8})
    with pytest.raises(ConfigError):
        singlepass_preset("huge")


def test_restore_works_in_unit_range():
    net = _net()
    image = torch.rand(1, 3, 20, 20)
    out = net.restore(image, 15)
    assert out.shape == image.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0


# --- MoE adaptors ---------------------------------------------------------------------------

def test_fresh_adaptor_changes_nothing_and_scale_does():
    with_adaptors = SinglePassConfig(**{**TINY.to_dict(), "adaptor_tasks": ("desnow",)})
    net = _net(with_adaptors)
    plain = SinglePassNet(TINY)
    missing, unexpected = plain.load_state_dict(net.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("adaptors.") for k in unexpected)
    assert len(net.adaptors) == TINY.levels and len(net.adaptors[0].experts) == 10
    x = torch.rand(2, 3, 20, 24) * 2 - 1
    t = torch.tensor([15, 22])
    assert torch.equal(net(x, t), plain(x, t))
    with torch.no_grad():
        for adaptor in net.adaptors:
            adaptor.scale.fill_(0.5)
    assert not torch.allclose(net(x, t), plain(x, t))


def test_router_weights_sum_to_one():
    config = SinglePassConfig(**{**TINY.to_dict(), "adaptor_tasks": ("desnow",)})
    net = _net(config)
    adaptor = net.adaptors[-1]  # after the last decoder level: width C
    f = torch.randn(3, TINY.width, 8, 8)
    w = adaptor.route(f, net.time_embedding(torch.tensor([4, 15, 50])))
    assert w.shape == (3, 10)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(3))
    assert (w > 0).all()


# --- losses ---------------------------------------------------------------------------------

def test_restoration_loss_has_its_frequency_term():
    y, gt = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    y[..., 0, 0] = 1.0
    l1 = 3 / (3 * 64)
    # rfft2 of a unit impulse is 1 everywhere (real 1, imaginary 0): mean |.| over re,im = 0.5
    assert abs(float(restoration_loss(y, gt)) - (l1 + 0.1 * 0.5)) < 1e-6
    assert float(restoration_loss(gt, gt)) == 0.0


def test_parameter_importance_and_regulariser():
    net = _net()
    table = sigma_bars()
    batches = [_clean(2, 16, seed) for seed in range(3)]
    omega = parameter_importance(net, batches, table, torch.Generator().manual_seed(0))
    assert set(omega) == set(trainable_parameters(net))
    assert sum(float(o.sum()) for o in omega.values()) > 0
    theta0 = snapshot(net)
    assert float(regulariser(net, theta0, omega).detach()) == 0.0

    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    tmddp_loss(net, batches[0], torch.Generator().manual_seed(1), table).backward()
    opt.step()
    opt.zero_grad()
    reg = regulariser(net, theta0, omega)
    assert float(reg.detach()) > 0
    reg.backward()
    for name, p in trainable_parameters(net).items():
        d = p.detach() - theta0[name]
        expected = 0.2 * omega[name] * torch.sign(d) + omega[name].square() * d
        torch.testing.assert_close(p.grad, expected, rtol=1e-5, atol=1e-8)


def test_orthogonality_term_back_propagates():
    net = _net()
    table = sigma_bars()
    params = list(trainable_parameters(net).values())
    degraded, gt = _clean(2, 16, 5), _clean(2, 16, 6)

    def res_loss() -> torch.Tensor:
        t = torch.full((2,), 15, dtype=torch.long)
        y = (net(degraded * 2 - 1, t) + 1) / 2
        return restoration_loss(y, gt)

    def gen_loss() -> torch.Tensor:
        return tmddp_loss(net, _clean(2, 16, 7), torch.Generator().manual_seed(3), table)

    plain = torch.autograd.grad(res_loss(), params)
    l_res = res_loss()
    g_res = loss_gradients(l_res, params)
    orth = orthogonality_loss(loss_gradients(gen_loss(), params), g_res)
    assert 0.0 < float(orth.detach()) < 2.0
    orth_grad = torch.autograd.grad(orth, params, retain_graph=True, allow_unused=True)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in orth_grad)
    combined = torch.autograd.grad(l_res + orth, params)
    assert any(not torch.allclose(a, b) for a, b in zip(combined, plain, strict=True))
    assert abs(float(orthogonality_loss(g_res, g_res).detach())) < 1e-4


def test_tmddp_loss_decreases_with_training():
    net = _net(seed=2)
    table = sigma_bars()
    clean = _clean(4, 16, 9)

    def evaluate() -> float:
        with torch.no_grad():
            return float(tmddp_loss(net, clean, torch.Generator().manual_seed(123), table))

    before = evaluate()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        loss = tmddp_loss(net, clean, g, table)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate()
    assert after < 0.7 * before, (before, after)
