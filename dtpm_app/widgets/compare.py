"""The comparison area: what each side of the split view shows (two combos) and the view.

"Result" is the result of the engine in use; "DTPM result" and "Single-pass result" name an
engine, so that the two can sit side by side whichever engine is in use (the controller
computes a result a side shows when it is not cached)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QImage
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dtpm_core.options import DTPM, ENGINE_LABELS, SINGLE_PASS

from ..state import Display
from ..texture_strength import AS_TRAINED
from .split_view import SplitView, to_qimage

SINGLE_PASS_LABEL = ENGINE_LABELS[SINGLE_PASS]
SIDES = {"input": "Input", "initial": "Initial prediction", "result": "Result",
         DTPM: "DTPM result", SINGLE_PASS: f"{SINGLE_PASS_LABEL} result",
         "reference": "Reference"}
"""Keys: dtpm_app.settings.SIDE_CHOICES."""


class CompareArea(QWidget):
    """Two side choosers above a `SplitView`; shows a controller `Display`."""

    sidesChanged = Signal(str, str)  # what the left and right sides show (keys of SIDES)

    def __init__(self, swap_action: QAction, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display = Display()
        self._qimages: dict[int, tuple[np.ndarray, QImage]] = {}
        self.view = SplitView()
        self.view.set_placeholder("Drop an image here (Shift: as reference) or a folder "
                                  "for batch\nor use File ▸ Open")
        self.left_side, self.right_side = QComboBox(), QComboBox()
        for combo in (self.left_side, self.right_side):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(9)  # narrow windows cut the names short...
            full = combo.minimumSizeHint().width() + combo.fontMetrics().horizontalAdvance(
                "x" * (len(max(SIDES.values(), key=len)) - 9))
            combo.setMaximumWidth(full)  # ...wide ones show them whole
            combo.setToolTip("What this side of the divider shows (Result: the engine in use)")
            for key, label in SIDES.items():
                combo.addItem(label, key)
            combo.currentIndexChanged.connect(self._on_sides)
        swap = QToolButton()
        swap.setDefaultAction(swap_action)
        bar = QHBoxLayout()
        bar.setContentsMargins(8, 4, 8, 4)
        bar.addWidget(QLabel("Left"))
        bar.addWidget(self.left_side, 1)
        bar.addWidget(swap)
        bar.addWidget(QLabel("Right"))
        bar.addWidget(self.right_side, 1)
        bar.addStretch(2)
        self.bar = QWidget()
        self.bar.setLayout(bar)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.bar)
        layout.addWidget(self.view, 1)

    def sides(self) -> tuple[str, str]:
        return self.left_side.currentData(), self.right_side.currentData()

    def set_sides(self, left: str, right: str) -> None:
        for combo, key in ((self.left_side, left), (self.right_side, right)):
            combo.setCurrentIndex(max(0, combo.findData(key)))

    def swap(self) -> None:
        left, right = self.left_side.currentIndex(), self.right_side.currentIndex()
        self.left_side.setCurrentIndex(right)
        self.right_side.setCurrentIndex(left)

    def _on_sides(self) -> None:
        self.refresh()
        self.sidesChanged.emit(*self.sides())

    def set_display(self, display: Display) -> None:
        self.display = display
        self.refresh()

    def shown_images(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The arrays the split view shows now (left, right)."""
        left, right = self.sides()
        return self._side(left)[0], self._side(right)[0]

    def refresh(self) -> None:
        left, right = self.sides()
        (left_image, left_text), (right_image, right_text) = self._side(left), self._side(right)
        self.view.set_images(self._qimage(left_image), self._qimage(right_image),
                             (left_text, right_text))

    def _qimage(self, array: np.ndarray | None) -> QImage | None:
        """8-bit copies for display, converted once per array."""
        if array is None:
            return None
        cached = self._qimages.get(id(array))
        if cached is not None and cached[0] is array:
            return cached[1]
        image = to_qimage(array)
        if len(self._qimages) > 8:
            self._qimages.clear()
        self._qimages[id(array)] = (array, image)
        return image

    def _side(self, key: str) -> tuple[np.ndarray | None, str]:
        """What a side shows; the input stands in (and says so) while the rest is missing."""
        d = self.display
        if key == "result":
            if d.engine == SINGLE_PASS:
                return self._single_pass(f"Result · {SINGLE_PASS_LABEL}")
            return self._dtpm("Result")
        if key == DTPM:
            return self._dtpm("DTPM")
        if key == SINGLE_PASS:
            return self._single_pass(SINGLE_PASS_LABEL)
        if key == "initial":
            if d.initial is None:
                return d.input, "Input (initial prediction not ready)"
            return d.initial, "Initial prediction"
        if key == "reference":
            if d.reference is None:
                return d.input, "Input (no reference set)"
            return d.reference, "Reference"
        return d.input, "Input"

    def _dtpm(self, title: str) -> tuple[np.ndarray | None, str]:
        d = self.display
        if d.result is None and d.dtpm_problem:
            return d.input, f"Input ({d.dtpm_problem})"
        if d.result is None:
            who = "" if title == "Result" else f"{title} "
            return d.input, (f"Input ({who}restoring…)" if d.pending
                             else f"Input (no {who}result)")
        text = f"{title} · K={d.result_k}" + (f", strength {d.strength:g}"
                                             if d.strength != AS_TRAINED else "")
        if d.result_seed is not None:  # shown while the new seed's result is computed
            text += f", seed {d.result_seed}"
        wanted = [f"K={d.wanted_k}"] if d.result_k != d.wanted_k else []
        if d.result_seed is not None:
            wanted.append(f"seed {d.wanted_seed}")
        computing = ", ".join(wanted) or f"K={d.wanted_k}"
        return d.result, text + (f" (computing {computing}…)" if d.pending else "")

    def _single_pass(self, title: str) -> tuple[np.ndarray | None, str]:
        d = self.display
        if d.single_pass is not None:
            return d.single_pass, title
        if d.single_pass_problem:
            return d.input, f"Input ({d.single_pass_problem})"
        return d.input, (f"Input ({SINGLE_PASS_LABEL} restoring…)" if d.single_pass_pending
                         else f"Input (no {SINGLE_PASS_LABEL} result)")
