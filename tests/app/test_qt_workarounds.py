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


def test_garbage_is_collected_in_the_gui_thread_never_in_a_worker(models, make_window, qtbot):
    """A cycle dropped while a worker thread allocates is freed by the GUI thread's timer,
    not by the worker (where freeing a Qt object crashes the app)."""
    import gc
    import threading

    from dtpm_app.qt_workarounds import GC_INTERVAL_MS, collect_garbage_in_gui_thread

    make_window()
    collector = collect_garbage_in_gui_thread()
    assert collector is not None and collect_garbage_in_gui_thread() is collector  # one
    assert not gc.isenabled()
    freed_in: list[str] = []

    class Node:
        def __del__(self) -> None:
            freed_in.append(threading.current_thread().name)

    node = Node()
    node.self = node  # a cycle: only the collector frees it
    del node

    def allocate() -> None:  # far past every threshold: automatic collection would run here
        for _ in range(20):
            junk = [[i] for i in range(sum(collector.thresholds) * 10)]
            for item in junk:
                item.append(item)  # cycles, counted by the collector
            del junk

    worker = threading.Thread(target=allocate, name="worker")
    worker.start()
    worker.join()
    assert freed_in == []
    qtbot.waitUntil(lambda: freed_in != [], timeout=10 * GC_INTERVAL_MS + 5000)
    assert freed_in == [threading.main_thread().name]
    assert collector.collections > 0
