"""Split view: two images of the same size, one each side of a draggable divider.

The divider sits at a fraction of the viewport width, so it stays put while zooming and
panning. The wheel zooms around the cursor (the scene point under it stays under it), a drag
pans, a drag on the divider moves it. The right image is clipped to the right of the divider
by a parent item that clips its children.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QWidget,
)

MIN_ZOOM, MAX_ZOOM = 0.02, 32.0
WHEEL_STEP = 1.25  # zoom factor per wheel notch (120 units)
GRAB_PX = 8  # how close to the divider a press grabs it
SCENE_MARGIN = 200_000.0  # free panning room around the image, in scene units
BACKGROUND = QColor(38, 40, 43)


def to_qimage(rgb: np.ndarray) -> QImage:
    """(H, W, 3) float in [0, 1] -> an 8-bit RGB QImage that owns its pixels."""
    pixels = np.ascontiguousarray(
        (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))  # (H, W, 3)
    height, width = pixels.shape[:2]
    return QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


class SplitView(QGraphicsView):
    zoomChanged = Signal(float)
    dividerMoved = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(BACKGROUND)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setMouseTracking(True)
        self.setAcceptDrops(False)  # drops go to the main window
        self.viewport().setAcceptDrops(False)
        self.setMinimumSize(320, 240)
        self._left = QGraphicsPixmapItem()
        self._clip = QGraphicsRectItem()
        self._clip.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, True)
        self._clip.setPen(Qt.PenStyle.NoPen)
        self._right = QGraphicsPixmapItem(self._clip)
        for item in (self._left, self._clip):
            self.scene().addItem(item)
        self._clip.setZValue(1)
        self._labels = ("", "")
        self._placeholder = "Drop an image or a folder here"
        self._image_rect = QRectF()
        self._divider = 0.5
        self._zoom = 1.0
        self._drag: str | None = None  # "divider" or "pan"
        self._last = QPointF()

    # ------------------------------------------------------------------ content

    def set_images(self, left: QImage | None, right: QImage | None,
                   labels: tuple[str, str] = ("", "")) -> None:
        """Show `left` and `right` (same size; either may be None). A new size refits."""
        size = next((im.size() for im in (left, right) if im is not None), None)
        self._left.setPixmap(QPixmap.fromImage(left) if left is not None else QPixmap())
        self._right.setPixmap(QPixmap.fromImage(right) if right is not None else QPixmap())
        self._labels = labels
        rect = QRectF(0, 0, size.width(), size.height()) if size is not None else QRectF()
        if rect != self._image_rect:
            self._image_rect = rect
            margin = SCENE_MARGIN
            self.setSceneRect(rect.adjusted(-margin, -margin, margin, margin))
            if not rect.isEmpty():
                self.fit()
        self._update_clip()
        self.viewport().update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.viewport().update()

    @property
    def has_image(self) -> bool:
        return not self._image_rect.isEmpty()

    # ------------------------------------------------------------------ zoom and pan

    @property
    def zoom(self) -> float:
        return self._zoom

    @property
    def divider(self) -> float:
        """Divider position as a fraction of the viewport width."""
        return self._divider

    def divider_x(self) -> float:
        return self._divider * self.viewport().width()

    def set_divider(self, fraction: float) -> None:
        self._divider = min(1.0, max(0.0, float(fraction)))
        self._update_clip()
        self.viewport().update()
        self.dividerMoved.emit(self._divider)

    def fit(self) -> None:
        """Whole image in view, centred."""
        if self._image_rect.isEmpty():
            return
        view = self.viewport().rect()
        scale = min((view.width() - 16) / self._image_rect.width(),
                    (view.height() - 16) / self._image_rect.height())
        self._set_zoom(max(MIN_ZOOM, min(MAX_ZOOM, scale)))
        self.centerOn(self._image_rect.center())
        self._update_clip()

    def actual_size(self, anchor: QPointF | None = None) -> None:
        """1:1 (one image pixel per screen pixel) around the image point at `anchor`
        (viewport px; default the view's centre), moved as little as needed for the image to
        fill the view (or, when smaller than the view, to be centred in it): an earlier pan
        never leaves the image partly off screen beside an empty margin."""
        if anchor is None:
            anchor = QPointF(self.viewport().rect().center())
        point = self._to_scene(QPointF(anchor))
        self._set_zoom(1.0)
        self.centerOn(self._clamped_centre(point))
        self._update_clip()

    def _clamped_centre(self, point: QPointF) -> QPointF:
        """`point`, moved so that a view centred on it shows as much of the image as fits."""
        rect = self._image_rect
        if rect.isEmpty():
            return point
        half_w = self.viewport().width() / self._zoom / 2
        half_h = self.viewport().height() / self._zoom / 2

        def clamp(value: float, low: float, high: float, half: float) -> float:
            if high - low <= 2 * half:
                return (low + high) / 2  # the whole image fits: centre it
            return min(max(value, low + half), high - half)

        return QPointF(clamp(point.x(), rect.left(), rect.right(), half_w),
                       clamp(point.y(), rect.top(), rect.bottom(), half_h))

    def visible_image_rect(self) -> QRectF:
        """The part of the image in view, in image pixels (tests and the status bar)."""
        view = self._to_scene(QPointF(0, 0)), self._to_scene(
            QPointF(self.viewport().width(), self.viewport().height()))
        return QRectF(view[0], view[1]).intersected(self._image_rect)

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom by `factor` keeping the scene point under `anchor` (viewport px) in place."""
        if anchor is None:
            anchor = QPointF(self.viewport().rect().center())
        before = self._to_scene(anchor)
        self._set_zoom(min(MAX_ZOOM, max(MIN_ZOOM, self._zoom * factor)))
        drift = self._to_view(before) - anchor  # viewport px the anchor point moved
        self._scroll_by(drift.x(), drift.y())
        self._update_clip()

    def _set_zoom(self, zoom: float) -> None:
        self.resetTransform()
        self.scale(zoom, zoom)
        self._zoom = zoom
        mode = (Qt.TransformationMode.SmoothTransformation if zoom < 1.0
                else Qt.TransformationMode.FastTransformation)  # show pixels when zoomed in
        self._left.setTransformationMode(mode)
        self._right.setTransformationMode(mode)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, zoom < 1.0)
        self.zoomChanged.emit(zoom)

    def _scroll_by(self, dx: float, dy: float) -> None:
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() + round(dx))
        v.setValue(v.value() + round(dy))

    def _to_scene(self, p: QPointF) -> QPointF:
        return self.viewportTransform().inverted()[0].map(p)

    def _to_view(self, p: QPointF) -> QPointF:
        return self.viewportTransform().map(p)

    def scene_point(self, viewport_pos: QPointF) -> QPointF:
        """The image coordinates under a viewport position (tests and status bar)."""
        return self._to_scene(QPointF(viewport_pos))

    # ------------------------------------------------------------------ events

    def wheelEvent(self, event: QWheelEvent) -> None:
        notches = event.angleDelta().y() / 120.0
        if notches:
            self.zoom_by(WHEEL_STEP ** notches, event.position())
        event.accept()

    def _near_divider(self, x: float) -> bool:
        return self.has_image and abs(x - self.divider_x()) <= GRAB_PX

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            pos = event.position()
            left_on_divider = (event.button() == Qt.MouseButton.LeftButton
                               and self._near_divider(pos.x()))
            self._drag = "divider" if left_on_divider else "pan"
            self._last = pos
            if self._drag == "pan":
                self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._drag == "divider":
            self.set_divider(pos.x() / max(1, self.viewport().width()))
        elif self._drag == "pan":
            delta = pos - self._last
            self._scroll_by(-delta.x(), -delta.y())
            self._update_clip()
        else:
            shape = (Qt.CursorShape.SplitHCursor if self._near_divider(pos.x())
                     else Qt.CursorShape.OpenHandCursor)
            self.viewport().setCursor(shape)
        self._last = pos
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None:
            self.mouseMoveEvent(event)
            self._drag = None
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.fit()
        event.accept()

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        super().scrollContentsBy(dx, dy)
        self._update_clip()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._update_clip()

    # ------------------------------------------------------------------ drawing

    def _update_clip(self) -> None:
        rect = self._image_rect
        if rect.isEmpty():
            self._clip.setRect(QRectF())
            return
        x = self._to_scene(QPointF(self.divider_x(), 0)).x()
        x = min(max(x, rect.left()), rect.right())
        self._clip.setRect(QRectF(x, rect.top(), rect.right() - x, rect.height()))

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        view = self.viewport().rect()
        if not self.has_image:
            painter.setPen(QColor(170, 174, 180))
            font = QFont(painter.font())
            font.setPointSizeF(font.pointSizeF() * 1.3)
            painter.setFont(font)
            painter.drawText(view, Qt.AlignmentFlag.AlignCenter, self._placeholder)
            painter.restore()
            return
        x = self.divider_x()
        painter.setPen(QPen(QColor(255, 255, 255, 220), 1.5))
        painter.drawLine(QPointF(x, 0), QPointF(x, view.height()))
        centre = QPointF(x, view.height() / 2)
        painter.setBrush(QColor(255, 255, 255, 230))
        painter.setPen(QPen(QColor(0, 0, 0, 90), 1))
        painter.drawEllipse(centre, 13, 13)
        painter.setBrush(QColor(60, 60, 60))
        for sign in (-1, 1):  # two small arrows: "drag me sideways"
            tip = centre + QPointF(sign * 8, 0)
            path = QPainterPath(tip)
            path.lineTo(centre + QPointF(sign * 3, -5))
            path.lineTo(centre + QPointF(sign * 3, 5))
            path.closeSubpath()
            painter.drawPath(path)
        self._draw_label(painter, self._labels[0], QPointF(12, 12), left=True)
        self._draw_label(painter, self._labels[1], QPointF(view.width() - 12, 12), left=False)
        painter.restore()

    def _draw_label(self, painter: QPainter, text: str, corner: QPointF, left: bool) -> None:
        if not text:
            return
        metrics = painter.fontMetrics()
        width, height = metrics.horizontalAdvance(text) + 16, metrics.height() + 8
        x = corner.x() if left else corner.x() - width
        box = QRectF(x, corner.y(), width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(QColor(0, 0, 0, 150)))
        painter.drawRoundedRect(box, 5, 5)
        painter.setPen(QColor(240, 240, 240))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
