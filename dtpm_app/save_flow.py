"""Save, Save As and Copy of the result on screen, with the questions they ask.

Save (Ctrl+S) writes the result on screen next to the last file saved for this photo, under a
name that says what it holds ("photo_restored_dtpm-K4.png", "..._dtpm-K4-strength0.5.png",
"..._single-pass.png"); the first Save of a photo is a Save As. A file of that name is never
replaced silently: the person chooses Replace, Keep both (the new one gets "-2", "-3"...) or
Cancel. A result already saved (the file written for it is still there, whatever its name)
is not asked about again. In Save As a typed extension picks the format
(dtpm_app.saving.save_target).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QFileDialog,
    QInputDialog,
    QMessageBox,
    QWidget,
)

from .controller import Controller
from .formats import OUTPUT_CHOICES, SAVE_CHOICES, OutputChoice, choice_for_filter, dialog_filter
from .saving import ShownResult, default_choice, free_path, result_name, save_target
from .settings import AppSettings
from .widgets.split_view import to_qimage

REPLACE, KEEP_BOTH = "replace", "keep both"


class SaveFlow:
    """The window's Save / Save As / Copy (see the module docstring)."""

    def __init__(self, window: QWidget, controller: Controller, settings: AppSettings,
                 show_message) -> None:
        self.window, self.controller, self.settings = window, controller, settings
        self.show_message = show_message  # (level, title, text)
        self.folder: Path | None = None  # where this photo's results went last
        self.choice: OutputChoice = default_choice(settings.output_format)
        self._last: tuple[Path, tuple] | None = None  # (file, result key) saved last
        self._writing: tuple[Path, tuple] | None = None  # (file, result key) being written
        controller.saved.connect(self._on_saved)

    def new_image(self) -> None:
        """Another photo: its first Save asks where (a Save As)."""
        self.folder, self._last, self._writing = None, None, None

    def _shown(self, verb: str) -> ShownResult | None:
        shown = self.controller.shown_result()
        if shown is None:
            if self.controller.session.image is None:
                self.show_message("warning", f"Nothing to {verb}",
                                  "Open an image and wait for its result first.")
            elif self.controller.busy:
                self.show_message("warning", f"Nothing to {verb} yet",
                                  "The result for the current settings is being computed "
                                  "(see the status bar) and no earlier one fits them; "
                                  f"{verb} once it is shown.")
            else:
                self.show_message("warning", f"Nothing to {verb}",
                                  f"There is no result on screen: {self.controller.shown_text()}")
        return shown

    def save(self) -> None:
        shown, image = self._shown("save"), self.controller.session.image
        if shown is None or image is None:
            return
        if self.folder is None:
            self.save_as()
            return
        target = self.folder / result_name(image.path, shown.tag, self.choice.suffix)
        last = self._last
        if last is not None and last[1] == shown.key and last[0].exists() \
                and last[0].parent == self.folder and last[0].suffix == target.suffix:
            # (also after Keep both, which saved it under another name)
            self.show_message("info", "Already saved", f"{shown.label} is in {last[0]}")
            return
        if target.exists():
            answer = self.ask_replace(target)
            if answer is None:
                return
            if answer == KEEP_BOTH:
                target = free_path(target)
        self._write(target, self.choice, shown)

    def save_as(self) -> None:
        shown, image = self._shown("save"), self.controller.session.image
        if shown is None or image is None:
            return
        folder = self.folder or image.path.parent
        filters = [dialog_filter(OUTPUT_CHOICES[k]) for k in SAVE_CHOICES]
        dialog = QFileDialog(self.window, "Save result",
                             str(folder / result_name(image.path, shown.tag, self.choice.suffix)),
                             ";;".join(filters))
        dialog.setObjectName("save-dialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.selectNameFilter(dialog_filter(self.choice))
        if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.selectedFiles():
            return
        typed = Path(dialog.selectedFiles()[0])
        target, choice = save_target(typed, choice_for_filter(dialog.selectedNameFilter()))
        if target != typed and target.exists():  # the dialog asked about another name
            answer = self.ask_replace(target)
            if answer is None:
                return
            if answer == KEEP_BOTH:
                target = free_path(target)
        if choice.uses_quality:
            quality, ok = QInputDialog.getInt(self.window, f"{choice.label} quality",
                                              "Quality (1-100)", self.settings.quality, 1, 100)
            if not ok:
                return
            self.settings.quality = quality
        self._write(target, choice, shown)

    def ask_replace(self, target: Path) -> str | None:
        """REPLACE, KEEP_BOTH or None (cancel) for an existing `target`."""
        box = QMessageBox(QMessageBox.Icon.Question, "Replace file?",
                          f"{target.name} already exists in {target.parent}.",
                          parent=self.window)
        box.setObjectName("replace-dialog")
        box.setInformativeText(f"Replace it, or keep both and save this result as "
                               f"{free_path(target).name}?")
        replace = box.addButton("Replace", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Keep both", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(keep)
        box.exec()
        clicked = box.clickedButton()
        return REPLACE if clicked is replace else KEEP_BOTH if clicked is keep else None

    def _write(self, target: Path, choice: OutputChoice, shown: ShownResult) -> None:
        self.folder, self.choice, self._writing = target.parent, choice, (target, shown.key)
        self.controller.save_result(target, choice.key, self.settings.quality, shown)

    def _on_saved(self, path: object) -> None:
        """A write finished: that result is saved (a failed write leaves `_last` as it was)."""
        if self._writing is not None:
            self._last, self._writing = (Path(str(path)), self._writing[1]), None

    def copy(self) -> None:
        shown = self._shown("copy")
        if shown is not None:
            QApplication.clipboard().setImage(to_qimage(shown.image))
            self.show_message("info", "Copied", f"{shown.label} to the clipboard")
