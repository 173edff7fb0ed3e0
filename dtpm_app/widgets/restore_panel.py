"""The side panel: the controls (task, engine, sampling, Restore / Cancel) on top, at the
height they need, and the trade-off plot (PSNR and a perceptual distance against K) below in
whatever height is left, scrolling on its own: the controls are never pushed out of view and
the plot starts right under them instead of below the fold."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from .engine_picker import EnginePicker
from .panels import RestoreControls
from .task_picker import TaskPicker
from .tradeoff_plot import TradeoffPlot

PANEL_MIN_WIDTH, PANEL_MAX_WIDTH = 320, 560


class RestorePanel(QWidget):
    def __init__(self, restore_action: QAction, cancel_action: QAction,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task_picker = TaskPicker()
        self.engine_picker = EnginePicker()
        self.controls = RestoreControls()
        self.restore_button, self.cancel_button = QPushButton("Restore"), QPushButton("Cancel")
        self.restore_button.clicked.connect(restore_action.trigger)
        self.cancel_button.clicked.connect(cancel_action.trigger)
        self.restore_button.setToolTip(restore_action.toolTip())
        self.cancel_button.setToolTip(cancel_action.toolTip())
        buttons = QHBoxLayout()
        buttons.addWidget(self.restore_button)
        buttons.addWidget(self.cancel_button)
        task_box = QGroupBox("Task")
        task_layout = QVBoxLayout(task_box)
        task_layout.addWidget(self.task_picker)
        task_layout.addWidget(self.engine_picker)
        self.steps_box = QGroupBox("Sampling")
        steps_layout = QVBoxLayout(self.steps_box)
        steps_layout.addWidget(self.controls)
        steps_layout.addLayout(buttons)
        self.controls_panel = panel = QWidget()
        column = QVBoxLayout(panel)
        column.setContentsMargins(6, 6, 6, 0)
        column.addWidget(task_box)
        column.addWidget(self.steps_box)
        self.tradeoff = TradeoffPanel()
        self.plot, self.reference_label = self.tradeoff.plot, self.tradeoff.reference_label
        self.plot_box = QGroupBox("Fidelity / texture trade-off")
        plot_layout = QVBoxLayout(self.plot_box)
        plot_layout.setContentsMargins(2, 2, 2, 2)
        plot_layout.addWidget(self.tradeoff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 6)
        layout.addWidget(panel)
        plot_row = QHBoxLayout()
        plot_row.setContentsMargins(6, 0, 6, 0)
        plot_row.addWidget(self.plot_box)
        layout.addLayout(plot_row, 1)
        self.setMinimumWidth(PANEL_MIN_WIDTH)
        self.setMaximumWidth(PANEL_MAX_WIDTH)

    def set_models_installed(self, installed: bool) -> None:
        """Without a model only the task box (with "Add model...") is of use."""
        self.steps_box.setEnabled(installed)
        self.plot_box.setEnabled(installed)


class TradeoffPanel(QScrollArea):
    """The trade-off plot and its reference line, scrolling in its own dock."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = TradeoffPlot()
        self.reference_label = QLabel()
        self.reference_label.setWordWrap(True)
        panel = QWidget()
        column = QVBoxLayout(panel)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.plot, 1)
        column.addWidget(self.reference_label)
        self.setWidget(panel)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(PANEL_MIN_WIDTH)
        self.setMaximumWidth(PANEL_MAX_WIDTH)
