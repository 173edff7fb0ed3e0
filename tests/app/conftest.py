"""App test fixtures: untrained tiny models in a tmp model folder, small images, a window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from app_helpers import make_image

from dtpm_core.config import Stage2Options, preset
from dtpm_core.modelfiles.weights import save_adapter, save_base
from dtpm_core.networks.model import DTPM

TASKS = {"motion-deblur": "Motion deblurring (test)", "defocus-deblur": "Defocus deblurring (test)"}
HELD_OUT_METRICS = {"eval": [  # what `dtpm-train export --metrics` stores, for the step hint
    {"image": image, "method": method, "steps": steps, "psnr": psnr}
    for image in ("a.png", "b.png")
    for method, steps, psnr in (("input", "", "25.0"), ("initial", "", "25.5"),
                                ("K=1", "1", "11.0"), ("K=4", "4", "24.0"))]}
"""Held-out scores of the motion-deblur test adapter: noise at K = 1, fine at K = 4."""


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DTPM_SETTINGS_DIR", str(tmp_path_factory.mktemp("settings")))


@pytest.fixture(autouse=True)
def _automatic_garbage_collection_after_each_test():
    """A window moves garbage collection to the GUI thread's event loop for the application's
    life (`qt_workarounds.collect_garbage_in_gui_thread`); the tests after these run no event
    loop, so it goes back to automatic after each test (the next window moves it again)."""
    yield
    from dtpm_app.qt_workarounds import gui_thread_collector

    collector = gui_thread_collector()
    if collector is not None:
        collector.stop()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The app tests run the GUI and a worker side by side on a small machine: one intra-op
    thread keeps their timings steady (restored afterwards for the other test folders)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """An untrained tiny base and two task adapters on it, with a manifest."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = DTPM(preset("tiny", denoiser__semantic="none"), Stage2Options()).eval()
    sha = save_base(folder / "base.safetensors", model)
    entries = []
    for i, (task, name) in enumerate(TASKS.items()):
        with torch.no_grad():  # make the adapters differ from each other
            for param in model.predictor.parameters():
                param.add_(0.05 * i * torch.randn_like(param))
        save_adapter(folder / f"{task}.safetensors", model, task, sha, display_name=name,
                     metrics=HELD_OUT_METRICS if task == "motion-deblur" else None)
        entries.append({"task": task, "display_name": name, "file": f"{task}.safetensors"})
    manifest = {"base": "base.safetensors", "adapters": entries}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


@pytest.fixture
def models(model_dir, monkeypatch) -> Path:
    """Point the app's user model folder at the test models."""
    monkeypatch.setenv("DTPM_USER_MODELS", str(model_dir))
    return model_dir


@pytest.fixture
def image_file(tmp_path) -> Path:
    return make_image(tmp_path / "photo.png")


@pytest.fixture
def make_window(qtbot):
    """Build MainWindows that are shut down (threads joined) after the test."""
    from dtpm_app.main_window import MainWindow
    from dtpm_app.settings import load_settings

    windows = []

    def build(**overrides):
        settings = load_settings()
        for key, value in overrides.items():
            setattr(settings, key, value)
        window = MainWindow(settings)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield build
    for window in windows:
        window.shutdown()
