"""Test-wide settings: offline, offscreen, deterministic, and tiny models built in fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_TORCH_HOME = SHARED / "data" / "torch"

# Nothing downloads in tests (DESIGN 5): hub weights come from ../shared when it has them,
# otherwise the code runs with random weights and says so.
os.environ["DTPM_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if SHARED_TORCH_HOME.is_dir():
    os.environ.setdefault("TORCH_HOME", str(SHARED_TORCH_HOME))


REAL_RESOURCES = Path(__file__).resolve().parents[1] / "resources"


@pytest.fixture(scope="session")
def resources_without_models(tmp_path_factory) -> Path:
    """A copy of resources/ (icons, samples) without the bundled models, so that tests see the
    same installation whatever models the checkout ships (tests of the shipped models read
    REAL_RESOURCES explicitly)."""
    import shutil
    folder = tmp_path_factory.mktemp("resources")
    for name in ("icons", "samples"):
        shutil.copytree(REAL_RESOURCES / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def graph_cache_folder(tmp_path_factory) -> Path:
    """One cache of converted OpenVINO graphs for the session (each tiny model is converted
    once), never the user's."""
    return tmp_path_factory.mktemp("graph_cache")


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch, resources_without_models,
                        graph_cache_folder):
    """Keep user model folders, settings and the converted-graph cache of the person running
    the tests out of reach, and the bundled models too."""
    monkeypatch.setenv("DTPM_USER_MODELS", str(tmp_path_factory.mktemp("user_models")))
    monkeypatch.setenv("DTPM_RESOURCES", str(resources_without_models))
    monkeypatch.setenv("DTPM_GRAPH_CACHE", str(graph_cache_folder))
