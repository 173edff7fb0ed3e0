"""The window's file choosers: open a photo, a folder for the batch, a reference, model files,
and the user's model folder. They start where the person is working (the current photo's
folder, else the last folder used), remember the folder chosen, and hand what was chosen on;
they change nothing themselves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QWidget

from dtpm_core.files.imageio import SUPPORTED_EXTENSIONS
from dtpm_core.modelfiles.catalog import user_models_dir

from .controller import Controller
from .settings import AppSettings

IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in sorted(SUPPORTED_EXTENSIONS)) + ")"
MODEL_FILTER = "DTPM models (*.safetensors)"


class FileDialogs:
    """The choosers of one window; `open_paths(paths)` opens a chosen folder for the batch."""

    def __init__(self, parent: QWidget, controller: Controller, settings: AppSettings,
                 open_paths: Callable[[list[Path]], None]) -> None:
        self.parent, self.controller, self.settings = parent, controller, settings
        self.open_paths = open_paths

    def start_dir(self) -> str:
        """Where the dialogs open: the current photo's folder, else the last one used."""
        image = self.controller.session.image
        if image is not None and image.path.parent.is_dir():
            return str(image.path.parent)
        return self.settings.last_dir or str(Path.home())

    def choose_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.parent, "Open image", self.start_dir(),
                                              IMAGE_FILTER)
        if path:
            self.settings.last_dir = str(Path(path).parent)
            self.controller.open_image(path)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.parent, "Folder to restore",
                                                  self.start_dir())
        if folder:
            self.settings.last_dir = folder
            self.open_paths([Path(folder)])

    def choose_reference(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.parent, "Reference (clean) image",
                                              self.start_dir(), IMAGE_FILTER)
        if path:
            self.settings.last_dir = str(Path(path).parent)
            self.controller.set_reference(path)

    def choose_models(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self.parent, "Add model files",
                                                self.start_dir(), MODEL_FILTER)
        if paths:
            self.controller.add_models(paths)

    @staticmethod
    def open_model_folder() -> None:
        """The user's model folder in the file manager (made first if missing)."""
        folder = user_models_dir()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
