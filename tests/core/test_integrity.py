"""Issue 16, case 4 and issue 21, item 2: what changes results is covered by a checksum (a
file without one is refused unless the user allows it), and a non-finite result is an error
naming the model file. The files are edited the way a user with a script would
(metadata rewritten, hashes left as they were), then used through `dtpm-restore`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from model_factory import tiny_config, tiny_model
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from dtpm_core.cli import main
from dtpm_core.config import Stage2Options
from dtpm_core.diffusion.calibration import Calibration
from dtpm_core.errors import WeightsError
from dtpm_core.files.batch_report import EXIT_SOME_FAILED, EXIT_USAGE
from dtpm_core.modelfiles.unverified import UNVERIFIED_ENV
from dtpm_core.modelfiles.verified import METADATA_HASH_KEY, read_adapter_info, seal_metadata
from dtpm_core.modelfiles.weights import content_sha256, load_base, save_adapter, save_base
from dtpm_core.networks.model import DTPM
from dtpm_core.singlepass.config import singlepass_preset
from dtpm_core.singlepass.network import SinglePassNet
from dtpm_core.singlepass.weights import load_singlepass, save_singlepass

SHIPPED = Path(__file__).resolve().parents[2] / "resources" / "models"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("integrity")
    model = tiny_model(Stage2Options(), seed=5)
    sha = save_base(folder / "base.safetensors", model,
                    calibration=Calibration(residual_scale=0.1, start_step=400, x0_clip=3.0))
    save_adapter(folder / "motion.safetensors", model, "motion-deblur", sha)
    other = tiny_model(Stage2Options(), seed=6)
    save_base(folder / "other_base.safetensors", other)
    torch.manual_seed(0)
    net = SinglePassNet(singlepass_preset("tiny", width=8, cond_dim=16))
    save_singlepass(folder / "fast.safetensors", net, tasks={"desnow": 15})
    return folder


def _photo(path: Path) -> Path:
    pixels = np.random.default_rng(0).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _edit(source: Path, target: Path, **changes: str) -> Path:
    """Copy `source` with some metadata values replaced, hashes untouched."""
    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    save_file(tensors, str(target), metadata={**metadata, **changes})
    return target


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata())


def _restore(files: Path, tmp_path: Path, base: Path, adapter: Path) -> int:
    return main([str(_photo(tmp_path / "a.png")), "-o", str(tmp_path / "out"), "--base",
                 str(base), "--adapter", str(adapter), "--steps", "1", "-q"])


def test_edited_diffusion_schedule_is_refused(files, tmp_path, capsys):
    config = json.loads(_metadata(files / "base.safetensors")["config"])
    config["diffusion"]["beta_end"] = 0.03
    edited = _edit(files / "base.safetensors", tmp_path / "base.safetensors",
                   config=json.dumps(config))
    assert _restore(files, tmp_path, edited, files / "motion.safetensors") == EXIT_USAGE
    assert "metadata" in capsys.readouterr().err
    assert not (tmp_path / "out" / "a.png").exists()


def test_edited_calibration_is_refused(files, tmp_path):
    edited = _edit(files / "base.safetensors", tmp_path / "base.safetensors",
                   calibration=Calibration(residual_scale=1.0).to_json())
    with pytest.raises(WeightsError, match="corrupted or was edited"):
        load_base(edited)


def test_adapter_pointed_at_another_base_is_refused(files, tmp_path, capsys):
    """The issue's case: an adapter's base_sha256 edited to the base at hand was accepted."""
    other = files / "other_base.safetensors"
    other_sha = _metadata(other)["content_sha256"]
    edited = _edit(files / "motion.safetensors", tmp_path / "motion.safetensors",
                   base_sha256=other_sha)
    assert _restore(files, tmp_path, other, edited) == EXIT_USAGE
    assert "corrupted or was edited" in capsys.readouterr().err


def test_edited_single_pass_t_mat_is_refused(files, tmp_path, capsys):
    edited = _edit(files / "fast.safetensors", tmp_path / "fast.safetensors",
                   tasks=json.dumps({"desnow": 40}))
    code = main([str(_photo(tmp_path / "a.png")), "-o", str(tmp_path / "out"), "--engine",
                 "single-pass", "--model", str(edited), "-q"])
    assert code == EXIT_USAGE and "corrupted or was edited" in capsys.readouterr().err


def _without_checksum(source: Path, target: Path, drop: tuple[str, ...] = (METADATA_HASH_KEY,),
                      **changes: str) -> Path:
    """Copy `source` with the checksum entries `drop` deleted (and other values changed)."""
    metadata = {**_metadata(source), **changes}
    for key in drop:
        metadata.pop(key, None)
    with safe_open(str(source), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    save_file(tensors, str(target), metadata=metadata)
    return target


def test_content_hash_identifies_the_model(files):
    metadata = _metadata(files / "base.safetensors")
    model, info = load_base(files / "base.safetensors")
    assert metadata["content_sha256"] == content_sha256(model.base_state_dict()) == info.sha256


def test_deleting_the_metadata_hash_does_not_turn_the_check_off(files, tmp_path, capsys):
    """Issue 21, item 2: an adapter's calibration edited and its metadata_sha256 deleted
    restored with exit 0 (a 5.6 dB noise image); a file without a checksum is refused unless
    the user asks for it with --allow-unverified-models."""
    edited = _without_checksum(files / "motion.safetensors", tmp_path / "motion.safetensors",
                               calibration=Calibration(residual_scale=9.0).to_json())
    assert _restore(files, tmp_path, files / "base.safetensors", edited) == EXIT_USAGE
    err = capsys.readouterr().err
    assert str(edited) in err and "no checksum" in err and "--allow-unverified-models" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("drop", [(METADATA_HASH_KEY,), (METADATA_HASH_KEY, "content_sha256")])
def test_files_without_a_checksum_load_only_when_allowed(files, tmp_path, monkeypatch, drop):
    legacy = _without_checksum(files / "base.safetensors", tmp_path / "legacy.safetensors", drop)
    with pytest.raises(WeightsError, match="no checksum") as err:
        load_base(legacy)
    assert str(legacy) in str(err.value) and UNVERIFIED_ENV in str(err.value)
    monkeypatch.setenv(UNVERIFIED_ENV, "1")
    model, info = load_base(legacy)
    assert info.calibration.start_step == 400
    assert info.sha256 == _metadata(files / "base.safetensors")["content_sha256"]


def test_a_wrong_checksum_is_refused_even_when_unverified_files_are_allowed(files, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv(UNVERIFIED_ENV, "1")
    edited = _edit(files / "base.safetensors", tmp_path / "base.safetensors",
                   calibration=Calibration(residual_scale=1.0).to_json())
    with pytest.raises(WeightsError, match="corrupted or was edited"):
        load_base(edited)
    # the metadata hash covers content_sha256: deleting that one is an edit too
    stripped = _without_checksum(files / "base.safetensors", tmp_path / "stripped.safetensors",
                                 ("content_sha256",))
    with pytest.raises(WeightsError, match="corrupted or was edited"):
        load_base(stripped)


def test_allow_unverified_models_option_of_dtpm_restore(files, tmp_path, monkeypatch):
    monkeypatch.setenv(UNVERIFIED_ENV, "0")  # restored after the test (the option sets it)
    legacy = _without_checksum(files / "motion.safetensors", tmp_path / "motion.safetensors")
    code = main([str(_photo(tmp_path / "a.png")), "-o", str(tmp_path / "out"), "--base",
                 str(files / "base.safetensors"), "--adapter", str(legacy), "--steps", "1",
                 "-q", "--allow-unverified-models"])
    assert code == 0 and (tmp_path / "out" / "a.png").is_file()


def test_single_pass_file_without_checksum_is_refused(files, tmp_path, capsys):
    legacy = _without_checksum(files / "fast.safetensors", tmp_path / "fast.safetensors",
                               tasks=json.dumps({"desnow": 40}))
    code = main([str(_photo(tmp_path / "a.png")), "-o", str(tmp_path / "out"), "--engine",
                 "single-pass", "--model", str(legacy), "-q"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and str(legacy) in err and "no checksum" in err


@pytest.mark.skipif(not (SHIPPED / "base.safetensors").is_file(), reason="no shipped models")
@pytest.mark.parametrize("name", sorted(p.name for p in SHIPPED.glob("*.safetensors")))
def test_every_shipped_model_carries_its_checksums(name):
    metadata = _metadata(SHIPPED / name)
    assert METADATA_HASH_KEY in metadata and "content_sha256" in metadata
    if metadata["kind"] == "dtpm-singlepass":
        assert load_singlepass(SHIPPED / name)[1].tasks
    elif metadata["kind"] == "dtpm-base":
        assert load_base(SHIPPED / name)[1].sha256 == metadata["content_sha256"]
    else:
        assert read_adapter_info(SHIPPED / name).base_sha256


@pytest.mark.skipif(not (SHIPPED / "singlepass.safetensors").is_file(),
                    reason="no shipped single-pass model")
def test_edited_task_table_of_the_shipped_single_pass_model_is_refused(tmp_path, capsys):
    """Issue 21, item 2: the shipped file had no metadata checksum, so an edited task table
    restored with exit 0 and a different image."""
    tasks = json.loads(_metadata(SHIPPED / "singlepass.safetensors")["tasks"])
    edited = _edit(SHIPPED / "singlepass.safetensors", tmp_path / "singlepass.safetensors",
                   tasks=json.dumps({**tasks, "desnow": 45}))
    code = main([str(_photo(tmp_path / "a.png")), "-o", str(tmp_path / "out"), "--engine",
                 "single-pass", "--model", str(edited), "--task", "desnow", "-q"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and str(edited) in err
    assert not (tmp_path / "out" / "a.png").exists()


def test_nan_weights_fail_the_image_and_write_nothing(tmp_path, capsys):
    model = tiny_model(Stage2Options(), seed=5)
    with torch.no_grad():
        next(model.predictor.parameters()).fill_(float("nan"))
    sha = save_base(tmp_path / "base.safetensors", model)  # a valid hash over NaN weights
    save_adapter(tmp_path / "nan.safetensors", model, "motion-deblur", sha)
    code = _restore(tmp_path, tmp_path, tmp_path / "base.safetensors", tmp_path / "nan.safetensors")
    assert code == EXIT_SOME_FAILED
    err = capsys.readouterr().err
    assert "NaN" in err and "nan.safetensors" in err
    assert not (tmp_path / "out" / "a.png").exists()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_single_pass_nan_or_inf_weights_fail_the_image(tmp_path, capsys, bad):
    torch.manual_seed(0)
    net = SinglePassNet(singlepass_preset("tiny", width=8, cond_dim=16))
    with torch.no_grad():
        net.ending.bias.fill_(bad)
    save_singlepass(tmp_path / "fast.safetensors", net, tasks={"desnow": 15})
    code = main([str(_photo(tmp_path / "a.png")), "-o", str(tmp_path / "out"), "--engine",
                 "single-pass", "--model", str(tmp_path / "fast.safetensors"), "-q"])
    assert code == EXIT_SOME_FAILED
    err = capsys.readouterr().err
    assert "NaN or infinite" in err and "fast.safetensors" in err
    assert not (tmp_path / "out" / "a.png").exists()


def test_shape_mismatch_is_reported_in_a_few_lines(tmp_path):
    """Tensors of a width-16 model under a width-24 config (hashes valid: a bad export)."""
    model = DTPM(tiny_config()).eval()
    save_base(tmp_path / "base.safetensors", model)
    metadata = _metadata(tmp_path / "base.safetensors")
    config = json.loads(metadata["config"])
    config["denoiser"]["width"] = 24
    with safe_open(str(tmp_path / "base.safetensors"), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    save_file(tensors, str(tmp_path / "wide.safetensors"),
              metadata=seal_metadata({**metadata, "config": json.dumps(config)}))
    with pytest.raises(WeightsError) as err:
        load_base(tmp_path / "wide.safetensors")
    message = str(err.value)
    assert "tensor(s) differ" in message and "more)" in message
    assert message.count("\n") == 0 and len(message) < 1200


def test_header_metadata_reads_kind_without_verifying_and_refuses_damage(files, tmp_path):
    """The one header reader (`file_kind` and the app's model list use it)."""
    from dtpm_core.modelfiles.verified import KIND_ADAPTER, file_kind, header_metadata

    adapter = files / "motion.safetensors"
    assert file_kind(adapter) == KIND_ADAPTER
    assert header_metadata(adapter)["task"] == "motion-deblur"
    # a header whose length field points past any sane size: damaged, said so
    damaged = tmp_path / "damaged.safetensors"
    data = bytearray(adapter.read_bytes())
    data[:8] = (1 << 40).to_bytes(8, "little")
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        file_kind(damaged)
    with pytest.raises(WeightsError, match="not found"):
        header_metadata(tmp_path / "absent.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(WeightsError, match="not a DTPM model"):
        file_kind(plain)
