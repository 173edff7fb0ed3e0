"""A guard against a reference-count bug of PySide6 6.12.0 under Python 3.11.

Measured with PySide6 6.12.0 on Python 3.11: every call of a Qt method returning nothing
(`QLabel.setText`, `QWidget.setEnabled`...) drops one reference to `None`, and every signal
delivered to a Python callable drops one reference to `True` (200 calls: -200). From Python
3.12 on these objects are immortal and losing references is harmless, which is presumably
why it goes unnoticed; on 3.11 the counts run down during a session until Python aborts
("none_dealloc: deallocating None" / "bool_dealloc"), which the app tests met at the end of
long runs. These objects are never meant to be freed, so handing the lost references back
changes nothing else. The guard first checks whether the running PySide6 loses them and does
nothing where it does not.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, QTimer, Signal

REFERENCE_FLOOR = 200_000
"""References to None, True and False kept at least (hours of a busy window's calls)."""
CHECK_INTERVAL_MS = 1_000
_SINGLETONS = (None, True, False)
_incref = ctypes.PYFUNCTYPE(None, ctypes.py_object)(("Py_IncRef", ctypes.pythonapi))


class _Probe(QObject):
    fired = Signal(int)


def loses_references() -> bool:
    """Whether Qt calls or signals lose references to None or True in this process."""
    probe = _Probe()
    probe.fired.connect(lambda _value: None)
    before = [sys.getrefcount(x) for x in _SINGLETONS]
    for _ in range(8):
        probe.setObjectName("probe")  # a Qt method returning nothing
        probe.fired.emit(0)  # a signal to a Python callable
    lost = [b - sys.getrefcount(x) for x, b in zip(_SINGLETONS, before, strict=True)]
    for value, count in zip(_SINGLETONS, lost, strict=True):
        for _ in range(max(0, count)):
            _incref(value)  # what the probe itself cost
    return max(lost) >= 6  # one of the 8 is hidden by the bookkeeping


def top_up(floor: int = REFERENCE_FLOOR) -> None:
    """Give None, True and False references up to `floor` (never given back: they live as
    long as the process)."""
    for value in _SINGLETONS:
        for _ in range(max(0, floor - sys.getrefcount(value))):
            _incref(value)


def keep_singletons_alive(parent: QObject) -> QTimer | None:
    """Where this PySide6 loses references, top them up now and every CHECK_INTERVAL_MS (a
    timer owned by `parent`); None where it does not."""
    if not loses_references():
        return None
    top_up()
    timer = QTimer(parent)
    timer.setInterval(CHECK_INTERVAL_MS)
    timer.timeout.connect(lambda: top_up())
    timer.start()
    return timer
