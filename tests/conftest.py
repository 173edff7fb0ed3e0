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


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Keep user model folders and settings of the person running the tests out of reach."""
    monkeypatch.setenv("DTPM_USER_MODELS", str(tmp_path_factory.mktemp("user_models")))
