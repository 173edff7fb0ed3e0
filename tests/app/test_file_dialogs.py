"""The window's file choosers: they open where the person is working, remember the folder
chosen, open what was chosen, and do nothing when the dialog is cancelled."""

from __future__ import annotations

from pathlib import Path

from app_helpers import make_image
from PySide6.QtWidgets import QFileDialog


def _answer(monkeypatch, method: str, value, seen: list) -> None:
    def dialog(parent, caption, directory, *filters):
        seen.append((caption, directory, filters))
        return value
    monkeypatch.setattr(QFileDialog, method, staticmethod(dialog))


def test_open_starts_in_the_last_folder_and_remembers_the_new_one(models, make_window, qtbot,
                                                                  tmp_path, monkeypatch):
    window = make_window(last_dir=str(tmp_path))
    photo = make_image(tmp_path / "shoot" / "a.png")
    seen: list = []
    _answer(monkeypatch, "getOpenFileName", (str(photo), ""), seen)
    window.open_action.trigger()
    qtbot.waitUntil(lambda: window.controller.session.image is not None, timeout=30_000)
    caption, directory, filters = seen[0]
    assert caption == "Open image" and directory == str(tmp_path)
    assert "*.png" in filters[0] and "*.jpg" in filters[0]
    assert window.controller.session.image.path == photo
    assert window.settings.last_dir == str(photo.parent)
    # the next dialog opens beside the photo open now
    _answer(monkeypatch, "getOpenFileName", ("", ""), seen)  # cancelled: nothing changes
    window.open_action.trigger()
    assert seen[1][1] == str(photo.parent)
    assert window.controller.session.image.path == photo


def test_a_folder_chosen_fills_the_batch_queue(models, make_window, qtbot, tmp_path,
                                               monkeypatch):
    for name in ("a.png", "b.png"):
        make_image(tmp_path / "shoot" / name)
    window = make_window()
    _answer(monkeypatch, "getExistingDirectory", str(tmp_path / "shoot"), [])
    window.open_folder_action.trigger()
    assert sorted(Path(e.source).name for e in window.batch.entries) == ["a.png", "b.png"]
    assert window.settings.last_dir == str(tmp_path / "shoot")


def test_model_files_chosen_are_added(model_dir, make_window, qtbot, tmp_path, monkeypatch):
    added: list = []
    window = make_window()
    monkeypatch.setattr(window.controller, "add_models", added.append)
    seen: list = []
    _answer(monkeypatch, "getOpenFileNames", ([str(model_dir / "base.safetensors")], ""), seen)
    window.add_model_action.trigger()
    assert added == [[str(model_dir / "base.safetensors")]]
    assert seen[0][2] == ("DTPM models (*.safetensors)",)
