"""Split view: wheel zoom keeps the point under the cursor, drag pans, the divider follows."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from dtpm_app.widgets.split_view import WHEEL_STEP, SplitView, to_qimage


@pytest.fixture
def view(qtbot):
    view = SplitView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    rng = np.random.default_rng(0)
    left = to_qimage(rng.random((150, 200, 3), dtype=np.float32))
    right = to_qimage(rng.random((150, 200, 3), dtype=np.float32))
    view.set_images(left, right, ("Input", "Result"))
    return view


def _mouse(view, kind, pos, buttons=Qt.MouseButton.LeftButton):
    button = Qt.MouseButton.NoButton if kind == QMouseEvent.Type.MouseMove else \
        Qt.MouseButton.LeftButton
    held = Qt.MouseButton.NoButton if kind == QMouseEvent.Type.MouseButtonRelease else buttons
    event = QMouseEvent(kind, QPointF(pos), view.viewport().mapToGlobal(QPointF(pos)), button,
                        held, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), event)


def _wheel(view, pos, notches=1):
    event = QWheelEvent(QPointF(pos), view.viewport().mapToGlobal(QPointF(pos)), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), event)


def test_wheel_zoom_keeps_the_point_under_the_cursor(view):
    assert view.has_image
    cursor = QPointF(97, 81)
    for notches in (1, 2, -1):
        zoom, before = view.zoom, view.scene_point(cursor)
        _wheel(view, cursor, notches)
        assert view.zoom == pytest.approx(zoom * WHEEL_STEP ** notches)
        after = view.scene_point(cursor)
        tolerance = 0.6 / view.zoom  # scroll positions are whole viewport pixels
        assert abs(after.x() - before.x()) <= tolerance
        assert abs(after.y() - before.y()) <= tolerance
    # the transform really scales by the zoom
    assert view.transform().m11() == pytest.approx(view.zoom)


def test_drag_pans_the_image_with_the_mouse(view):
    start, end = QPoint(80, 150), QPoint(150, 190)
    grabbed = view.scene_point(QPointF(start))
    _mouse(view, QMouseEvent.Type.MouseButtonPress, start)
    _mouse(view, QMouseEvent.Type.MouseMove, QPoint(110, 170))
    _mouse(view, QMouseEvent.Type.MouseMove, end)
    _mouse(view, QMouseEvent.Type.MouseButtonRelease, end)
    now = view.scene_point(QPointF(end))
    assert now.x() == pytest.approx(grabbed.x(), abs=0.6 / view.zoom)
    assert now.y() == pytest.approx(grabbed.y(), abs=0.6 / view.zoom)
    assert view.divider == pytest.approx(0.5)  # panning leaves the divider alone


def test_divider_follows_the_mouse(view, qtbot):
    x = round(view.divider_x())
    moved = []
    view.dividerMoved.connect(moved.append)
    _mouse(view, QMouseEvent.Type.MouseButtonPress, QPoint(x + 3, 100))
    _mouse(view, QMouseEvent.Type.MouseMove, QPoint(250, 120))
    _mouse(view, QMouseEvent.Type.MouseMove, QPoint(300, 130))
    _mouse(view, QMouseEvent.Type.MouseButtonRelease, QPoint(300, 130))
    assert view.divider == pytest.approx(300 / view.viewport().width())
    assert moved and moved[-1] == pytest.approx(view.divider)
    # the right image is clipped at the divider, in scene coordinates
    clip = view._clip.rect()
    assert clip.left() == pytest.approx(view.scene_point(QPointF(300, 0)).x(), abs=1e-6)


def test_fit_and_actual_size(view):
    view.fit()
    fitted = view.zoom
    assert fitted == pytest.approx(min((400 - 16) / 200, (300 - 16) / 150), rel=1e-3)
    view.actual_size()
    assert view.zoom == 1.0
    assert view.transform().m11() == 1.0
