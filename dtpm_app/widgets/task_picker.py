"""Task picker: the installed task adapters in a combo box, and "Add model..."."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QSizePolicy, QStyle, QWidget

from dtpm_core.options import ENGINE_LABELS, SINGLE_PASS

from ..state import ModelsState
from .panels import below_input

DTPM_ONLY = " · DTPM only"
SINGLE_PASS_ONLY = f" · {ENGINE_LABELS[SINGLE_PASS]} only"
"""Marks of the tasks that the engine in use lacks (only the other one restores them)."""
BELOW_INPUT = " · below input"
"""Mark of a task whose stored held-out score with the engine in use (DTPM at its best K, or
the single-pass network) is below the degraded input's (the model is known to make such
photos worse)."""


class TaskPicker(QWidget):
    taskChosen = Signal(str)  # the task name (e.g. "motion-deblur")
    addModelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.combo.setMinimumContentsLength(14)
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setToolTip("The restoration task (DTPM: one adapter per task on a shared "
                              "base; single-pass: one network for several tasks)")
        self.add_button = QPushButton("Add model…")
        self.add_button.setToolTip("Import a base or task adapter file (.safetensors) into "
                                   "your model folder")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.add_button)
        self.combo.activated.connect(self._on_activated)
        self.add_button.clicked.connect(self.addModelRequested)

    def set_models(self, state: ModelsState) -> None:
        """Fill the combo from the installed models and select the current task."""
        self.combo.blockSignals(True)
        self.combo.clear()
        entries = sorted(state.entries, key=lambda e: e.display_name.lower())
        for entry in entries:
            mark, tip = "", f"{entry.display_name}\ntask: {entry.task}\n{entry.path}"
            single_pass = state.engine == SINGLE_PASS
            if single_pass and state.single_pass_tasks is not None \
                    and entry.task not in state.single_pass_tasks:
                mark, tip = DTPM_ONLY, tip + "\nThe single-pass model lacks this task"
            elif not single_pass and entry.task not in state.dtpm_tasks:
                mark, tip = SINGLE_PASS_ONLY, tip + "\nOnly the single-pass model has this task"
            elif not single_pass and below_input(state.task_scores.get(entry.task)):
                scores = state.task_scores[entry.task]
                mark = BELOW_INPUT
                tip += (f"\nHeld-out score: {max(scores.psnr_at.values()):.1f} dB at its best "
                        f"K, below the degraded input's {scores.input_psnr:.1f} dB: this "
                        "model is not expected to improve such photos")
            elif single_pass and (score := state.single_pass_scores.get(entry.task)) \
                    and score.below_input:
                mark = BELOW_INPUT
                tip += (f"\nSingle-pass held-out score: {score.note()} (the evaluation "
                        f"stored in {score.source}): the single-pass model is not expected "
                        "to improve such photos")
            self.combo.addItem(entry.display_name + mark, entry.task)
            if mark:  # seen even where the combo cuts the name short
                self.combo.setItemIcon(self.combo.count() - 1, self.style().standardIcon(
                    QStyle.StandardPixmap.SP_MessageBoxWarning))
            self.combo.setItemData(self.combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        if not entries:
            self.combo.addItem("No task model installed", "")
        index = self.combo.findData(state.task or "")
        self.combo.setCurrentIndex(max(0, index))
        self.combo.setEnabled(bool(entries))
        self.combo.blockSignals(False)

    def current_task(self) -> str:
        return self.combo.currentData() or ""

    def _on_activated(self, index: int) -> None:
        task = self.combo.itemData(index)
        if task:
            self.taskChosen.emit(task)
