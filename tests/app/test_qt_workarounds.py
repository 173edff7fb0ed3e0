"""The guard against PySide6 6.12.0 losing references to None and True on Python 3.11: a
window outlives more Qt calls and signals than those objects had references."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtWidgets import QLabel

from dtpm_app.qt_workarounds import CHECK_INTERVAL_MS, REFERENCE_FLOOR, loses_references


def test_a_window_survives_more_qt_calls_than_none_had_references(models, make_window,
                                                                  qtbot):
    if not loses_references():
        pytest.skip("this PySide6 keeps its references: nothing to guard")
    window = make_window()
    assert window._refcount_guard is not None
    label = QLabel()
    qtbot.addWidget(label)
    calls = sys.getrefcount(None) * 3 // 4  # each one loses a reference to None
    for _ in range(calls):
        label.setText("x")
    qtbot.wait(CHECK_INTERVAL_MS + 300)  # the guard's timer hands them back
    for _ in range(calls):  # as many again: unguarded, None would be freed here
        label.setText("x")
    qtbot.wait(CHECK_INTERVAL_MS + 300)
    assert min(sys.getrefcount(None), sys.getrefcount(True)) > REFERENCE_FLOOR // 2
