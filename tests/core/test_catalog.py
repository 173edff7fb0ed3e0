"""Where installed models are found (dtpm_core.modelfiles.catalog)."""

from dtpm_core.modelfiles.catalog import resources_dir


def test_resources_dir_is_the_projects_folder(monkeypatch):
    """Without DTPM_RESOURCES (set in bundles) it is the `resources/` beside the package, with
    the bundled models' manifest: the module's depth in the package decides that."""
    monkeypatch.delenv("DTPM_RESOURCES", raising=False)
    assert (resources_dir() / "models" / "manifest.json").is_file()
