"""Engine choice: DTPM (K diffusion steps) or Fast (the single-pass network, DESIGN 6)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QRadioButton, QWidget

from ..fast_engine import DTPM, ENGINE_LABELS, FAST
from ..state import ModelsState

DTPM_TIP = ("DTPM: the diffusion texture prior, K sampling steps (the step slider): few steps "
            "favour fidelity, more steps add realistic texture")
FAST_TIP = ("Fast: one pass of the single-pass restoration network (trained with diffusion "
            "objectives): an instant result; no steps K and no seed")
NO_DTPM_TIP = ("DTPM is unavailable: no DTPM base model and task adapter are installed. Add "
               "them with File ▸ Add Model… (files made with `dtpm-train export`)")
NO_FAST_TIP = ("Fast (single-pass) is unavailable: no single-pass model is installed. Add one "
               "with File ▸ Add Model… (a .safetensors file made with `dtpm-train singlepass` "
               "and `dtpm-train export`)")


class EnginePicker(QWidget):
    """Two radio buttons; `engineChosen` only fires for a choice made by the person."""

    engineChosen = Signal(str)  # "dtpm" or "fast"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.buttons = {DTPM: QRadioButton(ENGINE_LABELS[DTPM]),
                        FAST: QRadioButton(ENGINE_LABELS[FAST])}
        self.group = QButtonGroup(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Engine"))
        for engine, button in self.buttons.items():
            self.group.addButton(button)
            layout.addWidget(button)
            button.toggled.connect(lambda on, e=engine: self._on_toggled(e, on))
        layout.addStretch(1)
        self.buttons[DTPM].setChecked(True)
        self.set_models(ModelsState("none", (), None, False, Path(".")))

    def _on_toggled(self, engine: str, on: bool) -> None:
        if on:
            self.engineChosen.emit(engine)

    def set_models(self, state: ModelsState) -> None:
        """Show the engine in use; an engine without an installed model is disabled, with
        the reason in its tooltip."""
        dtpm, fast = self.buttons[DTPM], self.buttons[FAST]
        dtpm_installed = bool(state.dtpm_tasks) or not state.fast_installed
        dtpm.setEnabled(dtpm_installed)
        dtpm.setToolTip(DTPM_TIP if dtpm_installed else NO_DTPM_TIP)
        if dtpm_installed and state.dtpm_problem:
            dtpm.setToolTip(f"{DTPM_TIP}.\nNot for this task: {state.dtpm_problem}")
        fast.setEnabled(state.fast_installed)
        if not state.fast_installed:
            fast.setToolTip(NO_FAST_TIP)
        elif state.fast_problem:
            fast.setToolTip(f"{FAST_TIP}.\nNot for this task: {state.fast_problem}")
        else:
            tasks = ", ".join(state.fast_tasks) if state.fast_tasks is not None else ""
            fast.setToolTip(FAST_TIP + (f".\nTasks of the installed model: {tasks}"
                                        if tasks else ""))
        for button in self.buttons.values():
            button.blockSignals(True)
        self.buttons[state.engine].setChecked(True)
        for button in self.buttons.values():
            button.blockSignals(False)
