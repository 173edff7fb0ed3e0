"""The models in resources/models/ that ship with the app: they load through the catalog the app
and `dtpm-restore` read, and they restore held-out photos better than doing nothing.

Held-out means photos that training never saw (scikit-image's chelsea and the hq photos whose
number is 3 modulo 7, held out by name in scripts/collect_demo_photos.py) degraded with the
held-out degradation distribution (`degrade(..., held_out=True)`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata

from dtpm_core.engines.singlepass_restorer import SinglePassRestorer
from dtpm_core.evaluation.metrics import psnr
from dtpm_core.modelfiles.catalog import load_catalog, resolve_singlepass
from trainer.compare import held_out_pairs

REAL_RESOURCES = Path(__file__).resolve().parents[2] / "resources"
SHARED_HQ = Path(__file__).resolve().parents[3] / "shared" / "data" / "hq"
HELD_OUT_HQ = "073_sheep_field.png"  # held out: 73 % 7 == 3
SINGLEPASS = REAL_RESOURCES / "models" / "singlepass.safetensors"
TASKS = ("motion-deblur", "defocus-deblur", "derain-dehaze", "desnow", "raindrop")

needs_singlepass = pytest.mark.skipif(not SINGLEPASS.is_file(),
                                      reason="no single-pass model in resources/models")


@pytest.fixture(scope="module")
def held_out_photos(tmp_path_factory) -> list[Path]:
    """Crops of held-out photographs (chelsea, and an hq photo where ../shared has it), small
    enough for a fast test."""
    from dtpm_core.files.imageio import read_image, write_image
    folder = tmp_path_factory.mktemp("held_out")
    images = {"chelsea": skdata.chelsea()[:128, :192].astype(np.float32) / 255.0}
    if (SHARED_HQ / HELD_OUT_HQ).is_file():
        images["sheep"] = np.ascontiguousarray(read_image(SHARED_HQ / HELD_OUT_HQ).rgb[
            150:278, 300:492])
    paths = []
    for name, image in images.items():
        path = folder / f"{name}.png"
        write_image(path, image)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def singlepass_held_out_photos(tmp_path_factory) -> list[Path]:
    """The bundled single-pass model was trained (scripts/train_singlepass_models.sh, with the
    photo split of its time) on the scikit-image photographs with coffee and chelsea held
    out: crops of those two."""
    from dtpm_core.files.imageio import write_image
    folder = tmp_path_factory.mktemp("singlepass_held_out")
    paths = []
    for name in ("coffee", "chelsea"):
        image = getattr(skdata, name)()[:128, :192].astype(np.float32) / 255.0
        path = folder / f"{name}.png"
        write_image(path, image)
        paths.append(path)
    return paths


def _psnr_gain(photos: list[Path], task: str, restore) -> float:
    """Mean PSNR of `restore(degraded)` minus that of the degraded photos themselves, on the
    held-out degradations of `photos` (seed 3)."""
    pairs = held_out_pairs(photos, task, seed=3)
    before = np.mean([psnr(degraded, clean) for degraded, clean in pairs])
    after = np.mean([psnr(restore(degraded), clean) for degraded, clean in pairs])
    return float(after - before)


@needs_singlepass
def test_catalog_finds_the_shipped_single_pass_model(monkeypatch):
    monkeypatch.setenv("DTPM_RESOURCES", str(REAL_RESOURCES))
    catalog = load_catalog()
    assert resolve_singlepass(None, catalog).resolve() == SINGLEPASS.resolve()
    assert set(SinglePassRestorer(SINGLEPASS, device="cpu").tasks) == set(TASKS)


@needs_singlepass
def test_shipped_single_pass_model_removes_snow_and_rain_haze(singlepass_held_out_photos):
    restorer = SinglePassRestorer(SINGLEPASS, device="cpu")
    gains = {task: _psnr_gain(singlepass_held_out_photos, task,
                              lambda image, task=task: restorer.restore(image, task).result)
             for task in ("desnow", "derain-dehaze")}
    # measured on data/eval_clean: desnow +4.8 dB, derain-dehaze +3.1 dB
    assert gains["desnow"] > 2.0, gains
    assert gains["derain-dehaze"] > 1.0, gains


@needs_singlepass
@pytest.mark.parametrize("task", ["motion-deblur", "defocus-deblur", "raindrop"])
def test_shipped_single_pass_model_does_no_harm_on_the_hard_tasks(singlepass_held_out_photos,
                                                                  task):
    """The tiny CPU-trained network barely moves these tasks (README); it must not make the
    photo worse."""
    restorer = SinglePassRestorer(SINGLEPASS, device="cpu")
    gain = _psnr_gain(singlepass_held_out_photos, task,
                      lambda image: restorer.restore(image, task).result)
    assert gain > -0.1


BASE = REAL_RESOURCES / "models" / "base.safetensors"
needs_dtpm = pytest.mark.skipif(not BASE.is_file(), reason="no DTPM base in resources/models")


def test_shipped_models_fit_the_size_budget():
    total = sum(p.stat().st_size for p in (REAL_RESOURCES / "models").glob("*.safetensors"))
    assert total <= 60 * 1024 * 1024


@needs_dtpm
def test_catalog_lists_the_shipped_base_and_five_adapters_made_for_it(monkeypatch):
    from dtpm_core.modelfiles.verified import read_adapter_info
    from dtpm_core.modelfiles.weights import load_base
    monkeypatch.setenv("DTPM_RESOURCES", str(REAL_RESOURCES))
    catalog = load_catalog()
    assert catalog.base is not None and catalog.base.resolve() == BASE.resolve()
    assert set(catalog.adapters) == set(TASKS)
    made_for = load_base(BASE)[1].identities  # the base, or the file it was stored from
    for entry in catalog.adapters.values():
        assert read_adapter_info(entry.path).base_sha256 in made_for


@needs_dtpm
@pytest.mark.parametrize("task", TASKS)
def test_shipped_dtpm_never_costs_more_than_a_tenth_of_a_db_at_any_k(held_out_photos, task,
                                                                    monkeypatch):
    """Every K is usable (the sampling starts at the adapter's calibrated level): no K makes
    a held-out photo noticeably worse than the degraded input, for any task."""
    from dtpm_core.engines.dtpm_restorer import Restorer
    from dtpm_core.modelfiles.catalog import resolve_adapter
    monkeypatch.setenv("DTPM_RESOURCES", str(REAL_RESOURCES))
    restorer = Restorer(BASE, resolve_adapter(task), device="cpu", precision="fp32")
    for k in (1, 4, 10, 50):
        gain = _psnr_gain(held_out_photos, task,
                          lambda image, k=k: restorer.restore(image, k, seed=0).result)
        # measured here with earlier adapters: motion -0.01..+0.03, defocus +0.12..+0.17,
        # raindrop -0.02..-0.01, derain-dehaze +4.25..+4.68, desnow +3.38..+3.65 dB
        assert gain > -0.1, (task, k, gain)
        if task in ("derain-dehaze", "desnow"):
            assert gain > 2.0, (task, k, gain)


@needs_dtpm
def test_shipped_adapters_carry_their_calibration_and_held_out_scores():
    from dtpm_core.evaluation.model_scores import held_out_scores
    from dtpm_core.modelfiles.verified import read_adapter_info
    from dtpm_core.modelfiles.weights import load_base
    assert load_base(BASE)[1].calibration.note.startswith("measured on")
    for task in TASKS:
        info = read_adapter_info(BASE.parent / f"{task}.safetensors")
        assert info.calibration.note.startswith("measured on")
        assert 50 <= info.calibration.start_step <= 1000
        scores = held_out_scores(info.metrics)
        assert scores is not None and scores.images == 14 and set(scores.psnr_at) == {1, 4, 10, 50}
        for k in (1, 4, 10, 50):  # no K is known to give noise any more
            assert scores.step_note(k)[0] == "info", (task, k)


def test_the_recommended_values_are_the_rule_s_choice_from_the_saved_measurement(tmp_path):
    """resources/models/manifest.json holds what scripts/choose_defaults.py picks from the means
    it measured (docs/evidence/campaign/choose_defaults_means.json), not numbers typed in."""
    import json
    import shutil
    import subprocess
    import sys

    root = REAL_RESOURCES.parent
    bundled = REAL_RESOURCES / "models" / "manifest.json"
    copy = shutil.copy(bundled, tmp_path / "manifest.json")
    data = json.loads(bundled.read_text(encoding="utf-8"))
    for entry in data["adapters"]:
        entry.pop("recommended")
    Path(copy).write_text(json.dumps(data), encoding="utf-8")
    subprocess.run([sys.executable, str(root / "scripts" / "choose_defaults.py"), "--from-means",
                    str(root / "docs" / "evidence" / "campaign" / "choose_defaults_means.json"),
                    "--write-manifest", str(copy)], check=True, capture_output=True, cwd=root)
    assert json.loads(Path(copy).read_text(encoding="utf-8")) == \
        json.loads(bundled.read_text(encoding="utf-8"))


def test_the_model_card_is_what_the_bundled_files_say(tmp_path):
    """resources/models/MODEL_CARD.md is scripts/write_model_card.py's text for the bundled
    files (their stored training recipe, the evaluation table), not edited by hand: written
    again from a copy of the folder, it comes out the same."""
    import shutil
    import subprocess
    import sys

    root = REAL_RESOURCES.parent
    models = REAL_RESOURCES / "models"
    copy = tmp_path / "models"
    copy.mkdir()
    for path in models.iterdir():
        if path.is_file():
            shutil.copy(path, copy / path.name)
    (copy / "MODEL_CARD.md").unlink()
    subprocess.run([sys.executable, str(root / "scripts" / "write_model_card.py"), str(copy),
                    "--eval", str(root / "docs" / "evidence" / "dtpm" / "bundled_eval.md")],
                   check=True, capture_output=True, cwd=root)
    assert (copy / "MODEL_CARD.md").read_text(encoding="utf-8") == \
        (models / "MODEL_CARD.md").read_text(encoding="utf-8")
