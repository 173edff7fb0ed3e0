"""The side panel: task, sampling controls and the trade-off plot, in a scroll area so that
small screens scroll it instead of growing the window."""

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


class RestorePanel(QScrollArea):
    def __init__(self, restore_action: QAction, cancel_action: QAction,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task_picker = TaskPicker()
        self.engine_picker = EnginePicker()
        self.controls = RestoreControls()
        self.plot = TradeoffPlot()
        self.reference_label = QLabel()
        self.reference_label.setWordWrap(True)
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
        self.plot_box = QGroupBox("Fidelity / texture trade-off")
        plot_layout = QVBoxLayout(self.plot_box)
        plot_layout.addWidget(self.plot, 1)
        plot_layout.addWidget(self.reference_label)
        panel = QWidget()
        column = QVBoxLayout(panel)
        column.setContentsMargins(6, 6, 6, 6)
        column.addWidget(task_box)
        column.addWidget(self.steps_box)
        column.addWidget(self.plot_box, 1)
        self.setWidget(panel)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(340)
        self.setMaximumWidth(560)

    def set_models_installed(self, installed: bool) -> None:
        """Without a model only the task box (with "Add model...") is of use."""
        self.steps_box.setEnabled(installed)
        self.plot_box.setEnabled(installed)
