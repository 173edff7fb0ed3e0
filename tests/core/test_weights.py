"""Weight files: round trip, corruption, wrong base, wrong kind, strict keys."""

import json

import pytest
import torch
from model_factory import tiny_model

from dtpm_core.config import Stage2Options
from dtpm_core.errors import BaseMismatchError, ConfigError, WeightsError
from dtpm_core.modelfiles.verified import read_adapter_info
from dtpm_core.modelfiles.weights import load_adapter, load_base, save_adapter, save_base


@pytest.fixture()
def saved(tmp_path):
    model = tiny_model(Stage2Options(), seed=3)
    base_path, adapter_path = tmp_path / "base.safetensors", tmp_path / "derain.safetensors"
    sha = save_base(base_path, model, training={"iterations": 7}, metrics={"psnr": 30.5})
    save_adapter(adapter_path, model, "derain-dehaze", sha, display_name="Rain + haze",
                 metrics={"psnr@4": 28.0})
    return model, base_path, adapter_path


def test_fp16_storage_halves_the_file_and_loads_the_rounded_weights_in_fp32(tmp_path):
    from safetensors import safe_open

    model = tiny_model(Stage2Options(), seed=3)
    sha = save_base(tmp_path / "base.safetensors", model)
    for storage in ("fp32", "fp16"):
        save_adapter(tmp_path / f"{storage}.safetensors", model, "desnow", sha, storage=storage)
    full, half = (tmp_path / f"{s}.safetensors" for s in ("fp32", "fp16"))
    assert half.stat().st_size < 0.6 * full.stat().st_size
    with safe_open(str(half), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    base, info = load_base(tmp_path / "base.safetensors")
    parts = load_adapter(half, base, info)
    for name, value in model.predictor.state_dict().items():
        loaded = parts.predictor.state_dict()[name]
        assert loaded.dtype == torch.float32
        assert torch.equal(loaded, value.half().float()), name


def test_a_storage_that_cannot_hold_the_weights_is_refused(tmp_path):
    model = tiny_model(Stage2Options(), seed=3)
    with pytest.raises(ConfigError, match="weight storage must be one of"):
        save_adapter(tmp_path / "a.safetensors", model, "desnow", "0" * 64, storage="int8")
    with torch.no_grad():
        next(model.predictor.parameters()).view(-1)[0] = 1e6  # beyond fp16's 65504
    with pytest.raises(ConfigError, match="fp16 cannot hold"):
        save_adapter(tmp_path / "b.safetensors", model, "desnow", "0" * 64, storage="fp16")
    assert not (tmp_path / "b.safetensors").exists()


def test_round_trip_gives_identical_weights_and_metadata(saved):
    model, base_path, adapter_path = saved
    base, info = load_base(base_path)
    for name, value in model.denoiser.state_dict().items():
        assert torch.equal(base.denoiser.state_dict()[name], value), name
    assert info.config == model.config and info.training == {"iterations": 7}
    assert info.metrics == {"psnr": 30.5}
    parts = load_adapter(adapter_path, base, info)
    assert parts.info.task == "derain-dehaze" and parts.info.display_name == "Rain + haze"
    assert parts.info.stage2 == Stage2Options()
    for name, value in model.adapters.state_dict().items():
        assert torch.equal(parts.adapters.state_dict()[name], value)
    for name, value in model.predictor.state_dict().items():
        assert torch.equal(parts.predictor.state_dict()[name], value)
    assert not parts.denoiser_overrides


def test_files_are_safetensors_with_json_metadata(saved):
    _, base_path, _ = saved
    data = base_path.read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    meta = header["__metadata__"]
    assert meta["kind"] == "dtpm-base" and json.loads(meta["config"])["preset"] == "tiny"
    assert len(meta["content_sha256"]) == 64


def test_corrupted_tensor_bytes_are_refused(saved, tmp_path):
    _, base_path, _ = saved
    data = bytearray(base_path.read_bytes())
    data[-100] ^= 0xFF  # flip bits inside the tensor payload; the header stays valid
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupted"):
        load_base(broken)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_files_are_refused_clearly(saved, tmp_path, damage):
    _, base_path, _ = saved
    data = base_path.read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00\x01not a model" * 9,
                     "empty": b""}[damage])
    with pytest.raises(WeightsError, match="bad.safetensors"):
        load_base(bad)


def test_adapter_for_another_base_is_refused(saved, tmp_path):
    _, _, adapter_path = saved
    other = tiny_model(Stage2Options(), seed=9)
    other_path = tmp_path / "other_base.safetensors"
    save_base(other_path, other)
    base, info = load_base(other_path)
    with pytest.raises(BaseMismatchError, match="trained on base model"):
        load_adapter(adapter_path, base, info)


def test_base_and_adapter_are_not_interchangeable(saved):
    _, base_path, adapter_path = saved
    with pytest.raises(WeightsError, match="expected a base model"):
        load_base(adapter_path)
    base, info = load_base(base_path)
    with pytest.raises(WeightsError, match="expected a adapter|expected an adapter|adapter"):
        load_adapter(base_path, base, info)


def test_missing_file_and_non_dtpm_safetensors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_base(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(WeightsError, match="not a DTPM model"):
        load_base(plain)


def test_ablation_adapter_carries_its_denoiser_weights(tmp_path):
    model = tiny_model(Stage2Options(mode="finetune-decoder"), seed=4)
    sha = save_base(tmp_path / "b.safetensors", model)
    with torch.no_grad():
        model.denoiser.ending.weight.add_(1.0)  # the "fine-tuned" decoder
    save_adapter(tmp_path / "a.safetensors", model, "motion-deblur", sha)
    base, info = load_base(tmp_path / "b.safetensors")
    parts = load_adapter(tmp_path / "a.safetensors", base, info)
    assert parts.adapters is None
    assert torch.equal(parts.denoiser_overrides["ending.weight"], model.denoiser.ending.weight)
    assert set(parts.denoiser_overrides) == set(model.denoiser.decoder_parameter_names())
    assert read_adapter_info(tmp_path / "a.safetensors").stage2.mode == "finetune-decoder"


def test_a_file_stored_again_in_fp16_keeps_its_metadata_and_takes_new_metrics(saved, tmp_path):
    """`dtpm-train export --file`: a campaign checkpoint (no run folder left) ships in fp16
    with its evaluation attached; config, task, calibration and recipe stay as they were."""
    from dtpm_core.diffusion.calibration import Calibration
    from trainer import cli as train_cli

    model, base_path, adapter_path = saved
    save_adapter(adapter_path, model, "derain-dehaze", read_adapter_info(adapter_path).base_sha256,
                 display_name="Rain + haze", training={"iterations": 9},
                 calibration=Calibration(residual_scale=0.25, start_step=700))
    before = read_adapter_info(adapter_path)
    assert before.calibration.residual_scale == 0.25
    metrics_csv = tmp_path / "eval.csv"
    metrics_csv.write_text("method,psnr\ninitial,22.9\n")
    out = tmp_path / "again.safetensors"
    assert train_cli.main(["export", "--file", str(adapter_path), "-o", str(out),
                           "--storage", "fp16", "--metrics", str(metrics_csv)]) == 0
    after = read_adapter_info(out)
    assert out.stat().st_size < 0.6 * adapter_path.stat().st_size
    assert after.metrics == {"eval": [{"method": "initial", "psnr": "22.9"}]}
    for field in ("task", "display_name", "base_sha256", "config", "stage2", "training",
                  "calibration"):
        assert getattr(after, field) == getattr(before, field), field
    base, info = load_base(base_path)
    parts = load_adapter(out, base, info)
    for name, value in model.predictor.state_dict().items():
        assert torch.equal(parts.predictor.state_dict()[name], value.half().float()), name


def test_storing_a_file_again_refuses_what_it_cannot_honour(saved, tmp_path, capsys):
    from trainer import cli as train_cli

    model, base_path, adapter_path = saved
    out = tmp_path / "x.safetensors"
    for flags, message in ((["--graphs"], "--graphs needs --run-dir"),
                           (["--raw"], "--raw needs --run-dir")):
        assert train_cli.main(["export", "--file", str(adapter_path), "-o", str(out),
                               *flags]) != 0
        assert message in capsys.readouterr().err
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(adapter_path.read_bytes()[:-40])
    assert train_cli.main(["export", "--file", str(damaged), "-o", str(out)]) != 0
    assert "damaged.safetensors" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):  # one source: a run or a file
        train_cli.main(["export", "--file", str(adapter_path), "--run-dir", "r", "-o",
                        str(out)])


def test_a_base_stored_again_in_fp16_keeps_the_adapters_of_the_file_it_came_from(saved, tmp_path):
    """The bundle stores its base in fp16: the adapters trained on the fp32 file (they name
    its hash) load on the copy; an adapter of any other base is still refused."""
    from dtpm_core.modelfiles.weights import store_again

    model, base_path, adapter_path = saved
    half = tmp_path / "base16.safetensors"
    store_again(base_path, half, storage="fp16")
    original, original_info = load_base(base_path)
    copy, copy_info = load_base(half)
    assert copy_info.sha256 != original_info.sha256
    assert copy_info.stored_from == original_info.sha256
    assert copy_info.identities == {copy_info.sha256, original_info.sha256}
    for name, value in original.denoiser.state_dict().items():
        assert torch.equal(copy.denoiser.state_dict()[name], value.half().float()), name
    load_adapter(adapter_path, copy, copy_info)
    again = tmp_path / "base32.safetensors"  # back to fp32: still the same original
    store_again(half, again, storage="fp32")
    assert load_base(again)[1].stored_from == original_info.sha256
    other = tiny_model(Stage2Options(), seed=4)
    foreign = tmp_path / "foreign.safetensors"
    save_adapter(foreign, other, "desnow", "f" * 64)
    with pytest.raises(BaseMismatchError):
        load_adapter(foreign, copy, copy_info)


def test_a_single_pass_file_stored_again_takes_new_metrics_and_keeps_its_weights(tmp_path,
                                                                                 capsys):
    """A fine-tuned single-pass file gets its evaluation written into it, as an adapter
    does; fp16 storage, which the single-pass network is not checked in, is refused."""
    from dtpm_core.singlepass.config import singlepass_preset
    from dtpm_core.singlepass.info import read_singlepass_info
    from dtpm_core.singlepass.network import SinglePassNet
    from dtpm_core.singlepass.weights import load_singlepass, save_singlepass
    from trainer import cli as train_cli

    torch.manual_seed(0)
    net = SinglePassNet(singlepass_preset("tiny", width=8, cond_dim=16,
                                          adaptor_tasks=("desnow",))).eval()
    source = tmp_path / "fast.safetensors"
    save_singlepass(source, net, tasks={"desnow": 15}, training={"iterations": 600})
    metrics_csv = tmp_path / "eval.csv"
    metrics_csv.write_text("task,method,psnr\ndesnow,single-pass,23.4\n", encoding="utf-8")
    out = tmp_path / "again.safetensors"
    assert train_cli.main(["export", "--file", str(source), "-o", str(out), "--metrics",
                           str(metrics_csv)]) == 0
    before, after = read_singlepass_info(source), read_singlepass_info(out)
    assert after.metrics == {"eval": [{"task": "desnow", "method": "single-pass",
                                       "psnr": "23.4"}]}
    assert (after.sha256, after.tasks, after.training) == \
        (before.sha256, before.tasks, before.training)
    loaded, _ = load_singlepass(out)
    for name, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    refused = tmp_path / "half.safetensors"
    assert train_cli.main(["export", "--file", str(source), "-o", str(refused),
                           "--storage", "fp16"]) != 0
    assert "fp32 only" in capsys.readouterr().err
    assert not refused.exists()
