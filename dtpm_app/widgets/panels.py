"""Small parts of the main window: the message banner, the empty state and the step/seed/
texture strength/ensemble/device controls."""

from __future__ import annotations

import html
import random
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dtpm_core.evaluation.model_scores import HeldOutScores
from dtpm_core.options import SINGLE_PASS

from ..settings import DEVICE_CHOICES, MAX_STEPS, MAX_STRENGTH, STRENGTH_DECIMALS
from ..task_values import TaskValues
from .start_values import StartValuesRow

STEPS_HINT = "<small>← fidelity &nbsp;·&nbsp; texture →</small>"
SINGLE_PASS_HINT = ("<small>Single-pass engine: one network pass, no steps, seed or texture "
                    "strength</small>")
ENSEMBLE_HINT = ("<small>Single-pass engine: 8 flipped/rotated passes averaged, no steps, "
                 "seed or texture strength</small>")
STRENGTH_HINT = "<small>0 = none · 1 = as trained</small>"
STRENGTH_ZERO_HINT = ("<small>Texture strength 0: the result is the initial prediction, K "
                      "changes nothing</small>")
STRENGTH_STEP = 0.05
HINT_STYLE = "color:#6b7280"
WARNING_HINT_STYLE = "color:#b45309; font-weight:bold"
SETTLE_MS = 300
"""A step change reaches the controller once the slider or spin box rested this long (or the
slider is released): only the K the person stops at is restored."""
BANNER_STYLES = {
    "error": "background:#fde8e8; border:1px solid #f5b5b5; color:#7f1d1d;",
    "warning": "background:#fff6db; border:1px solid #f0d58a; color:#713f12;",
    "info": "background:#e7f0fe; border:1px solid #b3cdf7; color:#1e3a8a;",
}


def below_input(scores: HeldOutScores | None, k: int | None = None) -> bool:
    """The stored held-out PSNR at `k` (None: at the best K evaluated) is below the degraded
    input's: on such photos the model is known to make things worse."""
    if scores is None or not scores.psnr_at:
        return False
    value = max(scores.psnr_at.values()) if k is None else scores.psnr_at.get(k)
    return value is not None and value < scores.input_psnr


class MessageBanner(QFrame):
    """A dismissable one-message strip above the image: errors never block the window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(text="✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.level, self.title = "", ""
        self.hide()

    def show_message(self, level: str, title: str, text: str) -> None:
        self.level, self.title = level, title
        self.setStyleSheet(f"#banner {{{BANNER_STYLES.get(level, BANNER_STYLES['info'])}"
                           " border-radius:4px;} #banner QLabel {border:none;}")
        self.label.setText(f"<b>{html.escape(title)}</b> &nbsp;{html.escape(text)}")
        self.show()

    def text(self) -> str:
        return self.label.text()


class EmptyState(QWidget):
    """Shown instead of the image while no model is installed: says how to get one."""

    addModelRequested = Signal()
    openFolderRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("No restoration model installed")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.title.setFont(font)
        self.body = QLabel()
        self.body.setWordWrap(True)
        self.body.setTextFormat(Qt.TextFormat.RichText)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.setMaximumWidth(560)
        add = QPushButton("Add model…")
        add.setDefault(True)
        add.setMinimumHeight(32)
        add.clicked.connect(self.addModelRequested)
        folder = QPushButton("Open model folder")
        folder.setMinimumHeight(32)
        folder.clicked.connect(self.openFolderRequested)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(add)
        buttons.addWidget(folder)
        buttons.addStretch(1)
        column = QVBoxLayout()
        column.addStretch(2)
        column.addWidget(self.title, 0, Qt.AlignmentFlag.AlignHCenter)
        column.addSpacing(10)
        body_row = QHBoxLayout()  # stretches, not an alignment: the label then gets the
        body_row.addStretch(1)  # height its wrapped text needs at its real width
        body_row.addWidget(self.body, 8)
        body_row.addStretch(1)
        column.addLayout(body_row)
        column.addSpacing(16)
        column.addLayout(buttons)
        column.addStretch(3)
        self.setLayout(column)
        self.set_folder(Path("."), has_base=False)

    def set_folder(self, folder: Path, has_base: bool, error: str = "") -> None:
        missing = ("a task adapter" if has_base else "a base model and a task adapter")
        error_html = (f"<p style='color:#b91c1c'>{html.escape(error)}</p>" if error else "")
        self.body.setText(
            f"<p>DTPM Studio needs {missing} (<code>.safetensors</code> files) to restore "
            "photos. You can:</p><ul>"
            "<li>click <b>Add model…</b> and choose the files (a base and one adapter per "
            "task, e.g. motion deblurring);</li>"
            "<li>or train and export your own with <code>dtpm-train export</code>, which "
            "writes them to your model folder:</li></ul>"
            f"<p align='center'><code>{html.escape(str(folder))}</code></p>"
            "<p>Models appear in the task list as soon as they are added. Until then you can "
            "still open images and fill the batch queue.</p>" + error_html)


class RestoreControls(QWidget):
    """Steps (slider + spin box), seed, texture strength, the single-pass engine's ensemble, device
    and tile size."""

    stepsChanged = Signal(int)  # once K rests (SETTLE_MS) or the slider is released
    stepsMoved = Signal(int)  # every slider position, for cheap feedback
    seedChanged = Signal(int)
    strengthChanged = Signal(float)
    deviceChanged = Signal(str)
    tileChanged = Signal(int)
    ensembleChanged = Signal(bool)
    recommendedRequested = Signal()  # back to the task's own K and strength

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(1, MAX_STEPS)
        self.slider.setPageStep(5)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(5)
        self.slider.setToolTip("Sampling steps K: few steps favour fidelity (PSNR), more "
                               "steps add realistic texture (LPIPS)")
        self.steps = QSpinBox(minimum=1, maximum=MAX_STEPS)
        self.steps.setToolTip(self.slider.toolTip())
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        self.seed.setToolTip("Seed of the starting noise: same image, task, K and seed give "
                             "the same result")
        self.dice = dice = QToolButton(text="Random")
        dice.setToolTip("New random seed")
        dice.clicked.connect(lambda: self.seed.setValue(random.randrange(0, 100_000)))
        self.strength = QDoubleSpinBox(minimum=0.0, maximum=MAX_STRENGTH,
                                       singleStep=STRENGTH_STEP, decimals=STRENGTH_DECIMALS,
                                       value=1.0)
        self.strength.setToolTip(
            "Texture strength: the scale of the texture layer DTPM generates on top of the "
            "initial prediction (the paper's alpha). 0 = the initial prediction only (smooth, "
            "no added texture), 1 = as trained, above 1 = more texture than trained for. "
            "The trade-off plot is measured at strength 1")
        self.ensemble = QCheckBox("8-way ensemble (8x slower)")
        self.ensemble.setToolTip("Single-pass engine: restore the 8 flipped and rotated "
                                 "versions of the image and average them (8 network passes "
                                 "instead of one; DTPM does not use it)")
        self.ensemble.setEnabled(False)  # until the single-pass engine is in use
        self.device = QComboBox()
        for name in DEVICE_CHOICES:
            self.device.addItem({"auto": "Auto (GPU if any)", "cpu": "CPU",
                                 "cuda": "CUDA GPU", "mps": "Apple GPU (MPS)"}[name], name)
        self.tile = QSpinBox(minimum=0, maximum=8192, singleStep=64)
        self.tile.setSpecialValueText("off")
        self.tile.setSuffix(" px")
        self.tile.setToolTip("Largest tile for large images (smaller uses less memory, larger "
                             "repeats less work where tiles overlap; off: the whole image at "
                             "once)")

        steps_row = QHBoxLayout()
        steps_row.addWidget(self.slider, 1)
        steps_row.addWidget(self.steps)
        self.hint = hint = QLabel(STEPS_HINT)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setWordWrap(True)
        hint.setStyleSheet(HINT_STYLE)
        self._dtpm, self._scores = True, None
        self._single_pass_score = None  # dtpm_app.single_pass_scores.SinglePassScore
        self._pending_k: int | None = None  # K moved to but not yet sent
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(dice)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.steps_label, self.seed_label = QLabel("Steps K"), QLabel("Seed")
        self.strength_label = QLabel("Texture strength")
        self.strength_label.setToolTip(self.strength.toolTip())
        form.addRow(self.steps_label, steps_row)
        form.addRow("", hint)
        form.addRow(self.seed_label, seed_row)
        self.strength_hint = QLabel(STRENGTH_HINT)
        self.strength_hint.setStyleSheet(HINT_STYLE)
        self.strength_hint.setWordWrap(True)
        self.strength_hint.setToolTip(self.strength.toolTip())
        strength_row = QHBoxLayout()  # across both columns: as a form label, "Texture
        strength_row.addWidget(self.strength_label)  # strength" would narrow every field
        strength_row.addWidget(self.strength)
        strength_row.addWidget(self.strength_hint, 1)
        form.addRow(strength_row)
        self.start_values = StartValuesRow()
        self.start_values.resetRequested.connect(self.recommendedRequested)
        form.addRow(self.start_values)
        form.addRow("", self.ensemble)
        device_row = QHBoxLayout()  # one row: the panel must fit a 700 px high window
        device_row.addWidget(self.device, 1)
        self.tile_label = QLabel("Tile")
        self.tile_label.setToolTip(self.tile.toolTip())
        device_row.addWidget(self.tile_label)
        device_row.addWidget(self.tile)
        form.addRow("Device", device_row)
        self._form = form
        form.setRowVisible(self.ensemble, False)  # until the single-pass engine is in use

        self.slider.valueChanged.connect(self._on_slider)
        self.steps.valueChanged.connect(self.slider.setValue)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self.flush)
        self.slider.sliderReleased.connect(self.flush)
        self.seed.valueChanged.connect(self.seedChanged)
        self.strength.valueChanged.connect(self.strengthChanged)
        self.strength.valueChanged.connect(self._update_hint)
        self.device.currentIndexChanged.connect(
            lambda: self.deviceChanged.emit(self.device.currentData()))
        self.tile.valueChanged.connect(self.tileChanged)
        self.ensemble.toggled.connect(self._update_hint)
        self.ensemble.toggled.connect(self.ensembleChanged)
        for spin in (self.steps, self.seed, self.strength, self.tile):
            spin.setKeyboardTracking(False)  # typing "123" is one change, not three

    def set_values(self, k: int, seed: int, device: str, tile: int,
                   ensemble: bool = False, strength: float = 1.0) -> None:
        widgets = (self.slider, self.steps, self.seed, self.strength, self.device, self.tile,
                   self.ensemble)
        for widget in widgets:
            widget.blockSignals(True)
        self.slider.setValue(k)
        self.steps.setValue(k)
        self.seed.setValue(seed)
        self.strength.setValue(strength)
        self.device.setCurrentIndex(max(0, self.device.findData(device)))
        self.tile.setValue(tile)
        self.ensemble.setChecked(ensemble)
        for widget in widgets:
            widget.blockSignals(False)
        self._update_hint()

    def set_task_values(self, values: TaskValues) -> None:
        """Show the K and strength in use (moved by a task change, "Use recommended" or a
        large photo: no change signal goes back) and where they come from."""
        if (values.steps, values.strength) != (self.slider.value(), self.strength.value()):
            self._settle.stop()  # a K still settling belonged to the values before
            self._pending_k = None
            for widget in (self.slider, self.steps, self.strength):
                widget.blockSignals(True)
            self.slider.setValue(values.steps)
            self.steps.setValue(values.steps)
            self.strength.setValue(values.strength)
            for widget in (self.slider, self.steps, self.strength):
                widget.blockSignals(False)
            self.stepsMoved.emit(values.steps)  # the trade-off plot's marker
            self._update_hint()
        self.start_values.set_values(values)

    def set_engine(self, engine: str) -> None:
        """The steps, the seed and the texture strength belong to DTPM, the ensemble to the
        single-pass engine, which is one pass (or eight with the ensemble): the hint under
        the slider says so."""
        self._dtpm = engine != SINGLE_PASS
        for widget in (self.slider, self.steps, self.seed, self.dice, self.strength,
                       self.steps_label, self.seed_label, self.strength_label,
                       self.strength_hint, self.start_values):
            widget.setEnabled(self._dtpm)
        self.ensemble.setEnabled(not self._dtpm)
        self._form.setRowVisible(self.ensemble, not self._dtpm)  # no room kept for it in DTPM
        self._update_hint()

    def set_scores(self, scores: HeldOutScores | None) -> None:
        """The loaded adapter's held-out scores: the hint under the slider then says how the
        model did at the chosen K, and warns where it is known to give noise."""
        self._scores = scores
        self._update_hint()

    def set_single_pass_score(self, score: object | None) -> None:
        """The single-pass network's held-out score for the task (a SinglePassScore): with
        that engine the hint warns where it is below the degraded input."""
        self._single_pass_score = score
        self._update_hint()

    def _update_hint(self) -> None:
        if not self._dtpm:
            score = self._single_pass_score
            if score is not None and score.below_input:
                self.hint.setText(f"<small>{html.escape(f'⚠ Single-pass: {score.note()}')}: "
                                  "below the degraded input, not expected to improve such "
                                  "photos</small>")
                self.hint.setStyleSheet(WARNING_HINT_STYLE)
                return
            self.hint.setText(ENSEMBLE_HINT if self.ensemble.isChecked() else SINGLE_PASS_HINT)
            self.hint.setStyleSheet(HINT_STYLE)
            return
        if self.strength.value() == 0.0:
            self.hint.setText(STRENGTH_ZERO_HINT)
            self.hint.setStyleSheet(HINT_STYLE)
            return
        k = self.slider.value()
        level, note = self._scores.step_note(k) if self._scores else ("", "")
        if note and self.strength.value() != 1.0:  # how the held-out evaluation ran
            note = note.replace(f"K={k}", f"K={k} at strength 1", 1)
        if level == "info" and below_input(self._scores, k):  # as clear as the noise warning
            level, note = "warning", (f"⚠ {note}: below the degraded input, this model is "
                                      "not expected to improve such photos")
        elif level == "warning":
            note = f"⚠ {note}"
        self.hint.setText(f"<small>{html.escape(note)}</small>" if note else STEPS_HINT)
        self.hint.setStyleSheet(WARNING_HINT_STYLE if level == "warning" else HINT_STYLE)

    def _on_slider(self, k: int) -> None:
        self.steps.blockSignals(True)
        self.steps.setValue(k)
        self.steps.blockSignals(False)
        self._update_hint()
        self.stepsMoved.emit(k)
        self._pending_k = k
        if not self.slider.isSliderDown():  # a drag waits for the release
            self._settle.start()

    def flush(self) -> None:
        """Deliver the step change now (slider released, tests, shortcuts)."""
        self._settle.stop()
        if self._pending_k is not None:
            k, self._pending_k = self._pending_k, None
            self.stepsChanged.emit(k)
