"""Batch panel: the queue with per-file status, output settings, and run controls.

It shows a `BatchRunner`'s state and forwards the person's choices; the runner and its worker
do the work.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..batch_runner import BatchRunner
from ..batch_worker import BatchSummary
from ..formats import OUTPUT_CHOICES

STATUS_COLOURS = {"queued": "#6b7280", "running": "#2563eb", "paused": "#7c3aed",
                  "done": "#15803d", "failed": "#b91c1c", "skipped": "#a16207"}


class BatchQueue(QWidget):
    outputChanged = Signal(str, str, int)  # folder, format key, quality
    referenceDirChanged = Signal(str)
    startRequested = Signal()
    itemActivated = Signal(int)

    def __init__(self, runner: BatchRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.running_text = "Running…"
        self.tree = QTreeWidget()
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["File", "Status", "Output / message"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # keep the file name ends
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setAcceptDrops(False)
        self.tree.viewport().setAcceptDrops(False)
        header = self.tree.header()
        # every column in view at any width (a fixed File width hid the others at 1024 px)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.tree.itemDoubleClicked.connect(
            lambda item, _col: self.itemActivated.emit(self.tree.indexOfTopLevelItem(item)))

        self.outdir = QLineEdit()
        self.outdir.setPlaceholderText("Choose where the restored files go")
        self.outdir.setAcceptDrops(False)
        browse = QToolButton(text="…")
        browse.setToolTip("Choose the output folder")
        browse.clicked.connect(self._browse_outdir)
        self.format = QComboBox()
        for key, choice in OUTPUT_CHOICES.items():
            self.format.addItem(choice.label, key)
        self.quality = QSpinBox(minimum=1, maximum=100, value=92)
        self.quality.setToolTip("JPEG / WebP quality")
        self.quality.setPrefix("quality ")
        self.refdir = QLineEdit()
        self.refdir.setPlaceholderText("Optional: clean references, matched by file name")
        self.refdir.setAcceptDrops(False)
        ref_browse = QToolButton(text="…")
        ref_browse.clicked.connect(self._browse_refdir)

        out_row = QHBoxLayout()
        out_row.addWidget(self.outdir, 1)
        out_row.addWidget(browse)
        fmt_row = QHBoxLayout()
        fmt_row.addWidget(self.format, 1)
        fmt_row.addWidget(self.quality)
        ref_row = QHBoxLayout()
        ref_row.addWidget(self.refdir, 1)
        ref_row.addWidget(ref_browse)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Output folder", out_row)
        form.addRow("Format", fmt_row)
        form.addRow("References", ref_row)

        self.start_button = QPushButton("Start batch")
        self.pause_button = QPushButton("Pause")
        self.cancel_button = QPushButton("Cancel")
        self.clear_button = QPushButton("Clear queue")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.summary = QLabel("Drop folders or several images on the window to fill the queue.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.clear_button)

        side = QVBoxLayout()
        side.addLayout(form)
        side.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.tree, 3)
        top.addLayout(side, 2)
        layout = QVBoxLayout(self)  # the buttons under both: the table keeps its width
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.summary)

        self.outdir.editingFinished.connect(self._emit_output)
        self.format.currentIndexChanged.connect(self._emit_output)
        self.quality.valueChanged.connect(self._emit_output)
        self.refdir.editingFinished.connect(
            lambda: self.referenceDirChanged.emit(self.refdir.text().strip()))
        self.start_button.clicked.connect(self.startRequested)
        self.pause_button.clicked.connect(self._toggle_pause)
        self.cancel_button.clicked.connect(runner.cancel)
        self.clear_button.clicked.connect(runner.clear)
        runner.queueChanged.connect(self._rebuild)
        runner.itemChanged.connect(self._update_item)
        runner.progressChanged.connect(lambda f: self.progress.setValue(round(f * 1000)))
        runner.runningChanged.connect(self._update_buttons)
        runner.pausedChanged.connect(self._update_buttons)
        runner.finished.connect(self._show_summary)
        self._rebuild()

    # ------------------------------------------------------------------ settings

    def set_output(self, folder: str, format_key: str, quality: int) -> None:
        """Show saved settings (without emitting outputChanged)."""
        for widget in (self.outdir, self.format, self.quality):
            widget.blockSignals(True)
        self.outdir.setText(folder)
        self.format.setCurrentIndex(max(0, self.format.findData(format_key)))
        self.quality.setValue(quality)
        self._sync_quality()
        for widget in (self.outdir, self.format, self.quality):
            widget.blockSignals(False)

    def set_reference_dir(self, folder: str) -> None:
        self.refdir.setText(folder)

    def _emit_output(self) -> None:
        self._sync_quality()
        self.outputChanged.emit(self.outdir.text().strip(), self.format.currentData(),
                                self.quality.value())

    def _sync_quality(self) -> None:
        self.quality.setEnabled(OUTPUT_CHOICES[self.format.currentData()].uses_quality)

    def _browse_outdir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.outdir.text())
        if folder:
            self.outdir.setText(folder)
            self._emit_output()

    def _browse_refdir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Reference folder", self.refdir.text())
        if folder:
            self.refdir.setText(folder)
            self.referenceDirChanged.emit(folder)

    # ------------------------------------------------------------------ queue display

    def _rebuild(self) -> None:
        self.tree.clear()
        runner = self.runner
        roots = [Path(r) for r in runner.roots]
        for entry in runner.entries:
            shown = entry.source.name
            for root in roots:
                if root.is_dir() and entry.source.is_relative_to(root):
                    shown = str(entry.source.relative_to(root.parent))
                    break
            item = QTreeWidgetItem([shown, "", ""])
            item.setToolTip(0, str(entry.source))
            self.tree.addTopLevelItem(item)
        for i in range(len(runner.entries)):
            self._update_item(i)
        self._update_buttons()
        if not runner.entries:
            self.summary.setText("Drop folders or several images on the window to fill the "
                                 "queue (folders are searched recursively).")
        else:
            self.summary.setText(f"{len(runner.entries)} images queued.")

    def _update_item(self, index: int) -> None:
        item = self.tree.topLevelItem(index)
        if item is None:
            return
        text = row_text(self.runner, index)
        status = self.runner.status[index]
        item.setText(1, status)
        item.setForeground(1, QBrush(QColor(STATUS_COLOURS.get(status, "#000000"))))
        item.setText(2, text)
        item.setToolTip(2, text)
        if status == "running":
            self.tree.scrollToItem(item)

    def _update_buttons(self, *_: object) -> None:
        running, paused = self.runner.running, self.runner.paused
        self.start_button.setEnabled(not running and bool(self.runner.entries))
        self.pause_button.setEnabled(running)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.cancel_button.setEnabled(running)
        self.clear_button.setEnabled(not running and bool(self.runner.entries))
        for widget in (self.outdir, self.format, self.refdir):
            widget.setEnabled(not running)
        if running:
            self.summary.setText("Paused." if paused else self.running_text)

    def _toggle_pause(self) -> None:
        if self.runner.paused:
            self.runner.resume()
        else:
            self.runner.pause()

    def _show_summary(self, summary: BatchSummary) -> None:
        text = (f"{summary.done} restored, {summary.skipped} skipped (output exists), "
                f"{summary.failed} failed")
        if summary.remaining:
            text += f", {summary.remaining} not processed (cancelled)"
        text = ("Cancelled: " if summary.cancelled else
                "Stopped: " if summary.error else "Finished: ") + text
        if summary.error:
            text += f"<br><span style='color:#b91c1c'>{html.escape(summary.error)}</span>"
        if summary.failures:
            text += "<br><b>Failures:</b><br>" + "<br>".join(
                html.escape(f"{Path(f).name}: {reason}") for f, reason in summary.failures[:8])
            if len(summary.failures) > 8:
                text += f"<br>… and {len(summary.failures) - 8} more"
        self.summary.setText(text)


def row_text(runner: BatchRunner, index: int) -> str:
    """The "Output / message" cell of a row: where the result went (or will go) and what
    became of it."""
    status, message = runner.status[index], runner.messages[index]
    output = runner.outputs[index] if index < len(runner.outputs) else ""
    if status in ("done", "skipped") and output:
        return f"{output} · {message}" if message else output
    if status in ("failed",) or (status == "queued" and message):
        return message or str(runner.entries[index].target)
    return str(runner.entries[index].target)
