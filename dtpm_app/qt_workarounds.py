"""Two guards for Qt objects under Python: garbage collected in the GUI thread only, and a
reference-count bug of PySide6 6.12.0 under Python 3.11.

Python's cyclic garbage collector runs in whichever thread happens to allocate past its
threshold. A cycle that holds a Qt object (a closed window and the lambdas connected to its
signals, say) collected in the engine worker's thread destroys that object off the GUI thread,
which Qt does not allow: measured, a segmentation fault in the app tests, the collector
running in the worker while it read a model file, a previous test's window in the garbage.
`collect_garbage_in_gui_thread` turns automatic collection off and runs it, with the same
thresholds, from the GUI thread's event loop (as long as the application lives).

The reference-count bug:

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
import gc
import sys

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

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


GC_INTERVAL_MS = 250
"""How often the GUI thread checks the collector's counts (a check costs microseconds)."""


class GuiThreadGarbageCollector(QObject):
    """Python's automatic garbage collection, moved to the GUI thread: the same generations and
    thresholds (`gc.get_threshold()`), checked every GC_INTERVAL_MS by a timer."""

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.collections = 0
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(GC_INTERVAL_MS)
        self._timer.timeout.connect(self.check)
        self._timer.start()

    def check(self) -> None:
        counts = gc.get_count()
        generation = -1
        for index, (count, threshold) in enumerate(zip(counts, self.thresholds, strict=True)):
            if threshold and count > threshold:
                generation = index
        if generation >= 0:
            gc.collect(generation)
            self.collections += 1

    def stop(self) -> None:
        """Collect now (in this, the GUI thread), then automatic collection back where it
        was (in any thread) and this collector removed."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()
        self.setParent(None)
        self.deleteLater()


def gui_thread_collector() -> GuiThreadGarbageCollector | None:
    """The application's GUI-thread collector, None where none is installed."""
    app = QCoreApplication.instance()
    return app.findChild(GuiThreadGarbageCollector) if app is not None else None


def collect_garbage_in_gui_thread() -> GuiThreadGarbageCollector | None:
    """Install the GUI-thread collector once per application (owned by it, so that it lives as
    long as the application; the same one afterwards); None without a QCoreApplication."""
    app = QCoreApplication.instance()
    if app is None:
        return None
    held = gui_thread_collector()
    return held if held is not None else GuiThreadGarbageCollector(app)
