"""Adding adapter files in the app (Models > Add model files): which base an adapter fits."""

import pytest
import torch

from dtpm_app.model_store import install_models, scores_of_fitting_adapters
from dtpm_core.config import Stage2Options, preset
from dtpm_core.modelfiles.catalog import ModelEntry
from dtpm_core.modelfiles.weights import load_base, save_adapter, save_base, store_again
from dtpm_core.networks.model import DTPM

EVAL = {"eval": [{"method": "input", "psnr": "20.0", "image": "a"},
                 {"method": "initial", "psnr": "23.0", "image": "a"},
                 {"method": "K=4", "psnr": "22.5", "image": "a"}]}


@pytest.fixture()
def files(tmp_path):
    torch.manual_seed(3)
    model = DTPM(preset("tiny", denoiser__semantic="none"), Stage2Options()).eval()
    base = tmp_path / "base.safetensors"
    sha = save_base(base, model)
    adapter = tmp_path / "desnow-mine.safetensors"
    save_adapter(adapter, model, "desnow", sha, display_name="Snow", metrics=EVAL)
    foreign = tmp_path / "derain-foreign.safetensors"
    save_adapter(foreign, model, "derain-dehaze", "f" * 64)
    half = tmp_path / "base16.safetensors"
    store_again(base, half, storage="fp16")
    return base, half, adapter, foreign


def test_an_adapter_fits_its_base_and_the_base_stored_again_in_fp16(files, tmp_path):
    base, half, adapter, foreign = files
    for in_use in (base, half):
        report = install_models([adapter, foreign], load_base(in_use)[1].identities,
                                folder=tmp_path / f"models-{in_use.stem}")
        assert [m.task for m in report.installed] == ["desnow"]
        assert len(report.failed) == 1 and "derain-foreign" in report.failed[0][0]
        assert "was trained on base model ffffffffffff" in report.failed[0][1]


def test_a_base_added_with_its_adapters_is_the_one_they_are_checked_against(files, tmp_path):
    base, half, adapter, foreign = files
    report = install_models([adapter, half], folder=tmp_path / "models")
    assert sorted(m.kind for m in report.installed) == ["adapter", "base"]
    assert not report.failed


def test_stored_scores_are_shown_for_adapters_of_the_base_or_its_copy(files):
    base, half, adapter, foreign = files
    entries = {"desnow": ModelEntry("desnow", "Snow", adapter),
               "derain-dehaze": ModelEntry("derain-dehaze", "Rain", foreign)}
    for in_use in (base, half):
        scores = scores_of_fitting_adapters(in_use, entries)
        assert list(scores) == ["desnow"]
        assert scores["desnow"].initial_psnr == pytest.approx(23.0)


def test_the_model_list_shows_nothing_for_a_damaged_or_missing_file(files, tmp_path):
    from dtpm_app.model_store import header_metadata
    from dtpm_core.modelfiles.verified import header_metadata as strict_header_metadata

    adapter = files[2]
    assert header_metadata(adapter) == strict_header_metadata(adapter)
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\xff" * 8 + adapter.read_bytes()[8:])
    assert header_metadata(damaged) == {}
    assert header_metadata(tmp_path / "absent.safetensors") == {}
    assert header_metadata(None) == {}
