"""Training configs: bundled TOML files, overrides, errors."""

import pytest

from dtpm_core.errors import ConfigError
from trainer.config import Stage2Config, TrainConfig, bundled_config, load_config
from trainer.loop import get_lr


@pytest.mark.parametrize("name", ["paper_stage1", "paper_stage2", "cpu_demo_stage1",
                                  "cpu_demo_stage2"])
def test_bundled_configs_load(name):
    config = load_config(name)
    assert bundled_config(name).is_file()
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_paper_settings_are_the_defaults():
    config = load_config("paper_stage1")
    assert (config.optim.lr, config.optim.beta1, config.optim.beta2) == (1.5e-4, 0.9, 0.999)
    assert config.data.crop == 256 and config.loop.iterations == 800_000
    assert load_config("paper_stage2").loop.iterations == 600_000
    assert config.model.build().denoiser.width == 64


def test_overrides_apply_and_unknown_keys_fail():
    config = load_config("cpu_demo_stage2", ["optim.lr=1e-3", "stage2.task=desnow",
                                             "model.overrides.denoiser.width=8",
                                             'data.clean=["a", "b"]'])
    assert config.optim.lr == 1e-3 and config.stage2.task == "desnow"
    assert config.model.build().denoiser.width == 8 and config.data.clean == ("a", "b")
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="must be a int|must be an int|must be a"):
        load_config(None, ["data.batch_size=\"four\""])
    with pytest.raises(ConfigError, match="neither a file nor a bundled"):
        load_config("no_such_config")
    with pytest.raises(ConfigError):
        load_config(None, ["model.overrides.denoiser.colour=3"])


def test_cosine_schedule_with_warmup():
    optim = load_config(None, ["optim.warmup=10", "optim.lr=1e-3", "optim.lr_min=0.0"]).optim
    assert get_lr(0, optim, 110) == pytest.approx(1e-4)
    assert get_lr(9, optim, 110) == pytest.approx(1e-3)
    assert get_lr(60, optim, 110) == pytest.approx(5e-4)
    assert get_lr(110, optim, 110) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["predictor_l1_weight", "predictor_mse_weight",
                                  "predictor_fft_weight"])
def test_negative_predictor_loss_weights_are_refused(name):
    with pytest.raises(ConfigError, match=name):
        Stage2Config(**{name: -1.0})


def test_rescale_needs_a_warm_start():
    with pytest.raises(ConfigError, match="needs stage2.init"):
        Stage2Config(rescale=True)
    assert Stage2Config(rescale=True, init="checkpoints/desnow.safetensors").rescale


def test_rebase_needs_a_warm_start():
    with pytest.raises(ConfigError, match="stage2.rebase applies to a warm start"):
        Stage2Config(rebase=True)
    assert Stage2Config(rebase=True, init="checkpoints/desnow.safetensors").rebase
