"""Where installed models are found (dtpm_core.modelfiles.catalog), and the K and texture
strength the manifest recommends per adapter (dtpm_core.modelfiles.recommended)."""

import json

import pytest

from dtpm_core.errors import WeightsError
from dtpm_core.modelfiles.catalog import (
    bundled_models_dir,
    entry_for_adapter,
    load_catalog,
    resources_dir,
)
from dtpm_core.modelfiles.recommended import Recommendation, write_recommendations


def test_resources_dir_is_the_projects_folder(monkeypatch):
    """Without DTPM_RESOURCES (set in bundles) it is the `resources/` beside the package, with
    the bundled models' manifest: the module's depth in the package decides that."""
    monkeypatch.delenv("DTPM_RESOURCES", raising=False)
    assert (resources_dir() / "models" / "manifest.json").is_file()


# ------------------------------------------------------------------ recommended K and strength

def _user_manifest(folder, monkeypatch, **entry):
    folder.mkdir(exist_ok=True)
    manifest = {"adapters": [{"task": "mine", "file": "mine.safetensors", **entry}]}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    monkeypatch.setenv("DTPM_USER_MODELS", str(folder))
    return folder / "manifest.json"


def test_the_bundled_adapters_carry_their_measured_recommendation(monkeypatch, tmp_path):
    """The values of docs/evidence/campaign/choose_defaults.md, written by the script."""
    monkeypatch.delenv("DTPM_RESOURCES", raising=False)
    monkeypatch.setenv("DTPM_USER_MODELS", str(tmp_path / "none"))
    catalog = load_catalog()
    assert {task: entry.recommended for task, entry in catalog.adapters.items()} == {
        "motion-deblur": Recommendation(1, 0.25), "defocus-deblur": Recommendation(1, 0.5),
        "derain-dehaze": Recommendation(1, 0.0), "desnow": Recommendation(1, 0.0),
        "raindrop": Recommendation(2, 0.25)}
    data = json.loads((bundled_models_dir() / "manifest.json").read_text(encoding="utf-8"))
    assert "choose_defaults" in data["recommended_by"]


def test_an_adapter_without_a_recommendation_has_none(tmp_path, monkeypatch):
    _user_manifest(tmp_path / "user", monkeypatch)
    entry = load_catalog().adapters["mine"]
    assert entry.recommended is None
    assert entry_for_adapter(tmp_path / "user" / "mine.safetensors", load_catalog()) == entry
    assert entry_for_adapter(tmp_path / "elsewhere.safetensors", load_catalog()) is None


@pytest.mark.parametrize("bad, words", [
    ({"steps": 0, "strength": 0.5}, "steps must be a whole number from 1 to 50"),
    ({"steps": 2.5, "strength": 0.5}, "steps must be a whole number"),
    ({"steps": True, "strength": 0.5}, "steps must be a whole number"),
    ({"steps": 2, "strength": 2.5}, "strength must be a number from 0 to 2"),
    ({"steps": 2, "strength": "0.5"}, "strength must be a number"),
    ({"steps": 2}, "missing: strength"),
    ({"steps": 2, "strength": 0.5, "eta": 0}, "unknown: eta"),
    ([1, 0.5], "must be an object"),
])
def test_a_bad_recommendation_is_an_error_naming_the_manifest(tmp_path, monkeypatch, bad,
                                                              words):
    manifest = _user_manifest(tmp_path / "user", monkeypatch, recommended=bad)
    with pytest.raises(WeightsError) as caught:
        load_catalog()
    message = str(caught.value)
    assert str(manifest) in message and "'mine'" in message and words in message


def test_write_recommendations_keeps_the_rest_of_the_manifest(tmp_path):
    manifest = tmp_path / "manifest.json"
    original = {"base": "base.safetensors", "default_task": "a", "singlepass": "sp.safetensors",
                "adapters": [{"task": "a", "display_name": "A", "file": "a.safetensors"},
                             {"task": "b", "file": "b.safetensors",
                              "recommended": {"steps": 9, "strength": 1.5}}]}
    manifest.write_text(json.dumps(original), encoding="utf-8")
    left_out = write_recommendations(manifest, {"a": Recommendation(1, 0.25),
                                                "c": Recommendation(4, 0.5)}, "a test run")
    assert left_out == ["c"]
    data = json.loads(manifest.read_text(encoding="utf-8"))
    assert data["adapters"][0] == {"task": "a", "display_name": "A", "file": "a.safetensors",
                                   "recommended": {"steps": 1, "strength": 0.25}}
    assert data["adapters"][1] == original["adapters"][1]  # not measured this time: kept
    assert data["recommended_by"] == "a test run"
    assert {k: data[k] for k in ("base", "default_task", "singlepass")} == \
        {k: original[k] for k in ("base", "default_task", "singlepass")}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temporary left
