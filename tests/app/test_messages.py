"""Help > About, file naming rules of Save, and messages that describe the current state."""

from __future__ import annotations

from pathlib import Path

from app_helpers import make_image, wait_result
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from dtpm_app import __version__
from dtpm_app.formats import OUTPUT_CHOICES
from dtpm_app.saving import free_path, result_name, save_target
from dtpm_app.settings import AppSettings
from dtpm_app.widgets.about import AboutDialog


def test_save_names_say_what_they_hold_and_a_typed_extension_wins(tmp_path):
    png8, png16, tiff = (OUTPUT_CHOICES[k] for k in ("png8", "png16", "tiff"))
    assert result_name(Path("/a/beach.jpg"), "dtpm-K4", ".png") == "beach_restored_dtpm-K4.png"
    assert save_target("/x/print.jpg", png8) == (Path("/x/print.jpg"), OUTPUT_CHOICES["jpeg"])
    assert save_target("/x/print.JPEG", tiff)[1].key == "jpeg"
    assert save_target("/x/print.png", png16) == (Path("/x/print.png"), png16)  # the depth
    assert save_target("/x/print", tiff) == (Path("/x/print.tif"), tiff)
    assert save_target("/x/print.v2", png8) == (Path("/x/print.v2.png"), png8)
    taken = tmp_path / "a.png"
    assert free_path(taken) == taken
    taken.write_bytes(b"1")
    (tmp_path / "a-2.png").write_bytes(b"2")
    assert free_path(taken) == tmp_path / "a-3.png"


def test_recent_files_are_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = AppSettings(recent_files=["relative/old.png", str(tmp_path / "kept.png")])
    settings = settings.validated()  # a relative entry of an older version opens nowhere
    assert settings.recent_files == [str(tmp_path / "kept.png")]
    settings.add_recent("photo.png")
    assert settings.recent_files[0] == str(tmp_path / "photo.png")


def test_about_shows_version_model_card_and_licences(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("DTPM_USER_MODELS", str(tmp_path))
    (tmp_path / "MODEL_CARD.md").write_text("# Model card\n\nTrained on photos by "
                                            "*Jane Doe*, CC BY 4.0.\n", encoding="utf-8")
    dialog = AboutDialog()
    qtbot.addWidget(dialog)
    tabs = [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]
    assert tabs == ["About", "Model card", "Licences"]
    assert __version__ in dialog.tabs.widget(0).text()
    assert "Jane Doe" in dialog.model_card.toPlainText()
    assert "CC BY 4.0" in dialog.model_card.toPlainText()
    assert "LGPL-3.0" in dialog.tabs.widget(2).toPlainText()


def test_help_about_opens_the_dialog(models, make_window, qtbot):
    window = make_window()
    seen = []

    def close_it() -> None:
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, AboutDialog):
            seen.append(dialog.windowTitle())
            dialog.reject()
        else:
            QTimer.singleShot(20, close_it)

    QTimer.singleShot(20, close_it)
    about = next(a for a in window.menuBar().actions() if a.text() == "&Help").menu().actions()[0]
    about.trigger()
    assert seen == ["About DTPM Studio"]
    view = next(a for a in window.menuBar().actions() if a.text() == "&View").menu()
    assert all(a.text().replace("&", "").strip(" ⇄") for a in view.actions()
               if not a.isSeparator())  # every item has a name


def test_a_success_clears_the_error_banner(models, tmp_path, image_file, make_window, qtbot):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    window = make_window(default_k=1)
    window.start([broken])
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=30_000)
    assert window.banner.level == "error"
    window.controller.open_image(image_file)
    wait_result(qtbot, window)
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=10_000)
    assert window.status_text.text().startswith("Showing DTPM, K=1")


def test_a_folder_on_the_command_line_says_how_to_start_the_batch(models, tmp_path,
                                                                  make_window, qtbot):
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    for i in range(2):
        make_image(shoot / f"p{i}.png", seed=i)
    window = make_window()
    window.start([shoot])
    assert window.batch_dock.isVisible() and len(window.batch.entries) == 2
    assert window.banner.isVisible() and "Start batch" in window.banner.text()
    assert "2 images queued" in window.banner.text()
