"""Engine choice: DTPM (K diffusion steps) or the single-pass network (DESIGN 6)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QRadioButton, QWidget

from dtpm_core.options import DTPM, ENGINE_LABELS, SINGLE_PASS

from ..state import ModelsState

DTPM_TIP = ("DTPM: the diffusion texture prior, K sampling steps (the step slider): few steps "
            "favour fidelity, more steps add realistic texture")
SINGLE_PASS_TIP = ("Single-pass: one pass of the single-pass restoration network (trained "
                   "with diffusion objectives): an instant result; no steps K and no seed")
NO_DTPM_TIP = ("DTPM is unavailable: no DTPM base model and task adapter are installed. Add "
               "them with File ▸ Add Model… (files made with `dtpm-train export`)")
NO_SINGLE_PASS_TIP = ("Single-pass is unavailable: no single-pass model is installed. Add "
                      "one with File ▸ Add Model… (a .safetensors file made with `dtpm-train "
                      "singlepass` and `dtpm-train export`)")


class EnginePicker(QWidget):
    """Two radio buttons; `engineChosen` only fires for a choice made by the person."""

    engineChosen = Signal(str)  # "dtpm" or "single-pass"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.buttons = {engine: QRadioButton(ENGINE_LABELS[engine])
                        for engine in (DTPM, SINGLE_PASS)}
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
        dtpm, single_pass = self.buttons[DTPM], self.buttons[SINGLE_PASS]
        dtpm_installed = bool(state.dtpm_tasks) or not state.single_pass_installed
        dtpm.setEnabled(dtpm_installed)
        dtpm.setToolTip(DTPM_TIP if dtpm_installed else NO_DTPM_TIP)
        if dtpm_installed and state.dtpm_problem:
            dtpm.setToolTip(f"{DTPM_TIP}.\nNot for this task: {state.dtpm_problem}")
        single_pass.setEnabled(state.single_pass_installed)
        if not state.single_pass_installed:
            single_pass.setToolTip(NO_SINGLE_PASS_TIP)
        elif state.single_pass_problem:
            single_pass.setToolTip(f"{SINGLE_PASS_TIP}.\nNot for this task: "
                                   f"{state.single_pass_problem}")
        else:
            tasks = ", ".join(state.single_pass_tasks or ())
            single_pass.setToolTip(SINGLE_PASS_TIP + (f".\nTasks of the installed model: "
                                                      f"{tasks}" if tasks else ""))
        for button in self.buttons.values():
            button.blockSignals(True)
        self.buttons[state.engine].setChecked(True)
        for button in self.buttons.values():
            button.blockSignals(False)
