"""Start-up: the screenshot mode, torch kept off the start-up path, the empty state and
"Add model..."."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from app_helpers import make_image, wait_result

from dtpm_core.files.imageio import read_image

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", DTPM_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]), **extra)
    return env


def test_screenshot_mode_writes_the_window_with_the_image(models, tmp_path):
    image = make_image(tmp_path / "photo.png", 48, 64)
    out = tmp_path / "shots" / "window.png"
    proc = subprocess.run(
        [sys.executable, "-m", "dtpm_app", "--screenshot", str(out), "--size", "1100x720",
         "--models", str(models), "--settings-dir", str(tmp_path / "settings"), str(image)],
        env=_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shot = read_image(out).rgb
    assert shot.shape[:2] == (720, 1100)
    assert shot.std() > 0.05  # not a blank window
    assert "screenshot saved" in proc.stdout
    assert (tmp_path / "settings" / "settings.json").is_file()


def test_window_appears_without_importing_torch(tmp_path):
    code = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from dtpm_app.main_window import MainWindow\n"
        "import dtpm_app.__main__\n"
        "w = MainWindow(); w.show(); app.processEvents()\n"
        "print('torch' in sys.modules)\n"
        "w.shutdown()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=_env(
        DTPM_SETTINGS_DIR=str(tmp_path), DTPM_USER_MODELS=str(tmp_path / "none")),
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_empty_state_then_add_model(model_dir, tmp_path, make_window, qtbot, image_file):
    window = make_window(default_k=1)
    window.start([image_file])
    qtbot.waitUntil(lambda: window.controller.idle, timeout=30_000)
    assert window.controller.models_ready is False
    body = window.empty.body.text()
    assert "dtpm-train export" in body and "Add model" in body
    assert str(os.environ["DTPM_USER_MODELS"]) in body
    # an image was opened, so the view shows it, with a warning that no model is installed
    assert window.stack.currentWidget() is window.compare
    assert window.banner.isVisible() and "No model" in window.banner.text()

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\0" * 64)
    window.controller.add_models([bad])
    qtbot.waitUntil(lambda: window.banner.level == "error", timeout=30_000)
    assert "bad.safetensors" in window.banner.text()

    window.controller.add_models([model_dir / "motion-deblur.safetensors",
                                  model_dir / "base.safetensors"])
    wait_result(qtbot, window)
    user = Path(os.environ["DTPM_USER_MODELS"])
    manifest = json.loads((user / "manifest.json").read_text())
    assert [a["task"] for a in manifest["adapters"]] == ["motion-deblur"]
    assert (user / manifest["base"]).is_file()
    assert window.task_picker.current_task() == "motion-deblur"
    assert not [p for p in user.iterdir() if p.name.endswith((".partial", ".tmp"))]


def test_empty_state_without_any_image(make_window, qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("DTPM_RESOURCES", str(tmp_path / "no-resources"))
    window = make_window()
    window.start()
    qtbot.waitUntil(lambda: window.controller.idle, timeout=10_000)
    assert window.stack.currentWidget() is window.empty
    assert not window.task_picker.combo.isEnabled()


def test_save_as_formats_keep_the_source_safe(models, image_file, make_window, qtbot,
                                              tmp_path):
    window = make_window(default_k=1)
    window.start([image_file])
    wait_result(qtbot, window)
    c = window.controller
    for key, name, depth in (("png16", "r16.png", 16), ("jpeg", "r.jpg", 8),
                             ("tiff", "r.tif", 8), ("webp", "r.webp", 8)):
        with qtbot.waitSignal(c.saved, timeout=30_000):
            c.save_result(tmp_path / name, key, 90)
        saved = read_image(tmp_path / name)
        assert saved.bit_depth == depth and saved.rgb.shape == (48, 64, 3)
    window.copy_action.trigger()
    from PySide6.QtWidgets import QApplication

    copied = QApplication.clipboard().image()
    assert (copied.width(), copied.height()) == (64, 48)
    expected = c.current_result()
    assert np.abs(read_image(tmp_path / "r16.png").rgb - expected).max() < 1e-4
    source = image_file.read_bytes()
    c.save_result(image_file, "png8", 90)
    qtbot.waitUntil(lambda: window.banner.level == "error", timeout=30_000)
    assert "overwrite" in window.banner.text() and image_file.read_bytes() == source


@pytest.mark.parametrize("argv", [["--help"]])
def test_cli_help(argv):
    proc = subprocess.run([sys.executable, "-m", "dtpm_app", *argv], env=_env(),
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and "--screenshot" in proc.stdout
