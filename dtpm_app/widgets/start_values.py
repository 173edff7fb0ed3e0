"""The line under the texture strength that says where K and the strength come from: the
values measured best for the task's adapter, the defaults (an adapter without a measurement)
or the person's own, with a button back to the task's values."""

from __future__ import annotations

import html

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from ..task_values import TaskValues

MEASURED_TIP = (
    "K={k} and texture strength {s:g} were measured best for this task's adapter: the lowest "
    "perceptual (EfficientNet-Lite0) feature distance within 0.3 dB PSNR of the initial "
    "prediction on held-out photos (scripts/choose_defaults.py, stored in the model "
    "manifest). A K or strength you set is remembered for this task.")
DEFAULTS_TIP = (
    "This adapter has no measured recommendation in its model manifest: it starts from "
    "K={k} and texture strength {s:g}. A K or strength you set is remembered for this task.")
STYLE = "color:#6b7280"


def describe(values: TaskValues) -> tuple[str, str, str]:
    """(line, tooltip, button text or "" for no button) for the values in use."""
    start = values.start
    what = f"K={start.steps}, strength {start.strength:g}" if start.strength else \
        "strength 0 (the initial prediction)"
    tip = (MEASURED_TIP if values.measured else DEFAULTS_TIP).format(k=start.steps,
                                                                     s=start.strength)
    if values.at_start:
        line = "✓ Recommended for this task" if values.measured else \
            "Defaults (no measured recommendation)"
        return line, tip, ""
    line = f"Your values · {'recommended' if values.measured else 'defaults'}: {what}"
    return line, tip, "Use recommended" if values.measured else "Use defaults"


class StartValuesRow(QWidget):
    """Where the K and strength in use come from, and one click back to the task's values."""

    resetRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setStyleSheet(STYLE)
        self.label.setWordWrap(True)
        self.button = QToolButton()
        self.button.clicked.connect(self.resetRequested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        self.button.hide()
        self.hide()  # until a task is known

    def set_values(self, values: TaskValues) -> None:
        line, tip, button = describe(values)
        self.label.setText(f"<small>{html.escape(line)}</small>")
        for widget in (self, self.label):
            widget.setToolTip(tip)
        self.button.setText(button)
        self.button.setToolTip("Back to the values " + ("measured for" if values.measured
                                                        else "the defaults give") +
                               " this task; forgets your own K and strength for it")
        self.button.setVisible(bool(button))
        self.setVisible(bool(values.task))
