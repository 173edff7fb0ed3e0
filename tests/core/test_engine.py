"""The engine interface (issue 14): both engines load from a spec and return one result
type, the same bytes as their restorers; options an engine cannot honour are errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from model_factory import tiny_model

from dtpm_core.config import Stage2Options
from dtpm_core.engines.dtpm_restorer import Restorer
from dtpm_core.engines.engine import (
    DTPMSpec,
    EngineResult,
    SinglePassSpec,
    check_options,
    load_engine,
    spec_from_options,
)
from dtpm_core.engines.singlepass_restorer import SinglePassRestorer
from dtpm_core.errors import Cancelled, ConfigError
from dtpm_core.modelfiles.weights import save_adapter, save_base
from dtpm_core.options import DEFAULT_TILE
from dtpm_core.singlepass.config import singlepass_preset
from dtpm_core.singlepass.network import SinglePassNet
from dtpm_core.singlepass.weights import save_singlepass


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engines")
    model = tiny_model(Stage2Options(), seed=5)
    sha = save_base(folder / "base.safetensors", model)
    save_adapter(folder / "motion.safetensors", model, "motion-deblur", sha)
    save_adapter(folder / "snow.safetensors", tiny_model(Stage2Options(), seed=6), "desnow", sha)
    torch.manual_seed(0)
    net = SinglePassNet(singlepass_preset("tiny"))
    save_singlepass(folder / "fast.safetensors", net, tasks={"desnow": 30, "raindrop": 10})
    save_singlepass(folder / "one.safetensors", net, tasks={"desnow": 30})
    return folder


@pytest.fixture(scope="module")
def photo():
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[100:164, 120:216] / 255.0, dtype=np.float32)


def test_dtpm_engine_gives_the_restorer_bytes_and_switches_adapters(files, photo):
    spec = DTPMSpec(files / "base.safetensors", files / "motion.safetensors", steps=(1, 4),
                    seed=2, device="cpu", precision="fp32", tile=0, backend="torch")
    engine = load_engine(spec)
    result = engine.restore(photo)
    assert isinstance(result, EngineResult) and result.engine == "dtpm"
    assert result.task == "motion-deblur" and engine.tasks == ("motion-deblur",)
    expected = Restorer(files / "base.safetensors", files / "motion.safetensors", device="cpu",
                        precision="fp32").restore(photo, [1, 4], seed=2, tile=0)
    assert np.array_equal(result.image, expected.result)
    assert np.array_equal(result.initial, expected.initial)
    assert set(result.by_steps) == {1, 4}
    snow = engine.restore(photo, replace(spec, adapter=files / "snow.safetensors", steps=(4,)))
    assert snow.task == "desnow" and engine.tasks == ("desnow",)
    assert not np.array_equal(snow.image, result.image)


def test_strength_zero_runs_no_ddim_pass_and_gives_the_initial_prediction(files, photo):
    """Texture strength 0 (the recommendation for rain + haze and snow): the result is the
    initial prediction, bit for bit, and the denoiser never runs; progress counts only the
    initial prediction's passes (one per tile), so a bar reaches its end."""
    spec = DTPMSpec(files / "base.safetensors", files / "motion.safetensors", steps=(1, 4),
                    device="cpu", precision="fp32", tile=32, backend="torch")
    engine = load_engine(spec)
    denoiser_calls = []
    engine.restorer.networks.model.denoiser.register_forward_hook(
        lambda *_: denoiser_calls.append(1))
    seen = []
    zero = engine.restore(photo, replace(spec, strength=0.0), progress=seen.append)
    tiles = len(seen)
    assert denoiser_calls == [] and tiles > 1  # 64x96 in 32 px tiles: several windows
    assert [(p.done, p.total) for p in seen] == [(i, tiles) for i in range(1, tiles + 1)]
    assert set(zero.by_steps) == {1, 4}
    for image in zero.by_steps.values():
        assert np.array_equal(image, zero.initial)
    as_trained = engine.restore(photo, progress=seen.append)
    assert denoiser_calls and np.array_equal(as_trained.initial, zero.initial)
    assert not np.array_equal(as_trained.image, zero.image)
    assert seen[-1].total == tiles * (1 + 1 + 4)  # with texture: every DDIM pass is counted


def test_single_pass_engine_gives_the_restorer_bytes(files, photo):
    spec = SinglePassSpec(files / "fast.safetensors", task="raindrop", device="cpu",
                          precision="fp32", tile=0, backend="torch")
    result = load_engine(spec).restore(photo)
    expected = SinglePassRestorer(files / "fast.safetensors", "cpu", precision="fp32").restore(
        photo, "raindrop", tile=0)
    assert result.engine == "single-pass" and result.task == "raindrop"
    assert np.array_equal(result.image, expected.result)
    assert result.initial is None and result.by_steps == {}


def test_single_pass_task_must_be_chosen_when_the_file_has_several(files, photo):
    with pytest.raises(ConfigError, match="restores 2 tasks"):
        load_engine(SinglePassSpec(files / "fast.safetensors", device="cpu")).restore(photo)
    alone = load_engine(SinglePassSpec(files / "one.safetensors", device="cpu")).restore(photo)
    assert alone.task == "desnow"
    with pytest.raises(ConfigError, match="not in"):
        load_engine(SinglePassSpec(files / "one.safetensors", task="raindrop",
                                   device="cpu")).restore(photo)


@pytest.mark.parametrize("engine, options, refused", [
    ("single-pass", {"model": "m", "steps": 4}, "steps"),
    ("single-pass", {"model": "m", "adapter": "motion-deblur"}, "adapter"),
    ("dtpm", {"base": "b", "task": "desnow"}, "task"),
    ("dtpm", {"base": "b", "ensemble": True}, "ensemble"),
])
def test_an_option_the_engine_cannot_honour_is_an_error(engine, options, refused):
    with pytest.raises(ConfigError, match=f"the {engine} engine has no option {refused}"):
        spec_from_options(engine, **options)


def test_specs_from_options_and_unknown_engines():
    spec = spec_from_options("dtpm", base="b.safetensors", steps=10)
    assert spec.steps == (10,) and spec.tile == DEFAULT_TILE == 2048 and spec.precision == "auto"
    with pytest.raises(ConfigError, match="unknown engine"):
        spec_from_options("fast", model="m")
    assert spec.texture_colour == "luminance"
    with pytest.raises(ConfigError, match="texture colour must be one of luminance, rgb"):
        spec_from_options("dtpm", base="b.safetensors", texture_colour="sepia")
    with pytest.raises(ConfigError, match="texture_colour"):
        spec_from_options("single-pass", model="m", texture_colour="rgb")


def test_a_spec_for_other_weights_needs_another_engine(files, photo):
    engine = load_engine(SinglePassSpec(files / "one.safetensors", device="cpu"))
    with pytest.raises(ConfigError, match="load another engine"):
        engine.restore(photo, SinglePassSpec(files / "fast.safetensors", device="cpu"))
    with pytest.raises(ConfigError, match="load another engine"):
        engine.restore(photo, replace(engine.spec, precision="bf16"))


def test_both_engines_report_progress_and_cancel(files, photo):
    specs = [DTPMSpec(files / "base.safetensors", files / "motion.safetensors", device="cpu"),
             SinglePassSpec(files / "one.safetensors", device="cpu", ensemble=True)]
    for spec in specs:
        seen = []
        with pytest.raises(Cancelled):
            # a first use of the OpenVINO backend reports "converting" before the passes
            load_engine(spec).restore(photo, progress=seen.append, should_stop=lambda seen=seen:
                                      sum(p.stage != "converting" for p in seen) >= 2)
        passes = [p for p in seen if p.stage != "converting"]
        assert len(passes) == 2 and passes[-1].total > 2


def test_prepare_fails_before_the_first_image_and_names_the_task(files):
    several = load_engine(SinglePassSpec(files / "fast.safetensors", device="cpu"))
    with pytest.raises(ConfigError, match=r"restores 2 tasks \(desnow, raindrop\)"):
        several.prepare()
    assert several.prepare(replace(several.spec, task="raindrop")) == "raindrop"
    with pytest.raises(ConfigError, match="not in"):
        several.prepare(replace(several.spec, task="motion-deblur"))
    dtpm = load_engine(DTPMSpec(files / "base.safetensors", device="cpu"))
    with pytest.raises(ConfigError, match="needs a task adapter"):
        dtpm.prepare()
    assert dtpm.prepare(replace(dtpm.spec, adapter=files / "snow.safetensors")) == "desnow"


def test_check_options_refuses_before_any_file_is_resolved():
    check_options("dtpm", ["steps", "seed", "tile"])
    with pytest.raises(ConfigError, match="the single-pass engine has no option steps"):
        check_options("single-pass", ["task", "steps"])


def test_precision_none_is_the_process_preference(files, monkeypatch):
    from dtpm_core.backends import device
    monkeypatch.setattr(device, "_precision_preference", "fp16")
    with pytest.raises(ConfigError, match="fp16 is not supported"):
        load_engine(SinglePassSpec(files / "one.safetensors", device="cpu", precision=None))
    monkeypatch.setattr(device, "_precision_preference", "fp32")
    engine = load_engine(SinglePassSpec(files / "one.safetensors", device="cpu", precision=None))
    assert engine.precision == "fp32"


def test_engines_describe_their_files_and_load_without_torch_at_import(files):
    dtpm = load_engine(DTPMSpec(files / "base.safetensors", device="cpu", precision="fp32"))
    assert dtpm.adapter_info is None and len(dtpm.info.sha256) == 64
    dtpm.prepare(DTPMSpec(files / "base.safetensors", files / "snow.safetensors",
                          device="cpu", precision="fp32"))
    assert dtpm.adapter_info.task == "desnow"
    single = load_engine(SinglePassSpec(files / "fast.safetensors", device="cpu"))
    assert single.info.path == files / "fast.safetensors" and single.info.sha256
    import subprocess
    import sys
    code = "import sys, dtpm_core.engines.engine; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"  # the app builds specs on its start-up path

