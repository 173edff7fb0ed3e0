"""PSNR and a perceptual distance against the number of sampling steps K, with a marker at
the current K.

Two stacked plots share a logarithmic K axis (1, 2, 4, 10, 20, 50 evenly apart). Items are
created once and updated with `setData` (pyqtgraph habit). Dragging the marker asks for
another K. The single-pass engine's result, measured against the same target on the same
preview, is a dashed horizontal line labelled "single-pass" (it has no K) where the label
finds room beside the line without touching the curve (at either end or the middle, above or
below it), and in the caption above the plots always; while that engine is in use the K
marker is hidden.

The perceptual distance is LPIPS where its AlexNet has ImageNet weights; otherwise (or without
torch) the worker measures the EffNet-Lite0 feature distance (real ImageNet features, installed
by pip; on OpenVINO from the graph shipped with the models where torch is missing), and the
axis, the status and the tooltip name it, so it is never mistaken for LPIPS. The curve's
`backbone` reads "<metric>: <backbone>" (see `InferenceWorker._measure`); until the first
point is measured it is empty and the axis says only "Distance", so that a label once shown
never changes for the same number. LPIPS on a random trunk (only without the EfficientNet
package) is flagged in the status line.
"""

from __future__ import annotations

import html
import math

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from dtpm_core.options import SINGLE_PASS

from ..state import CurveState

TICK_KS = (1, 2, 4, 10, 20, 50)
PSNR_COLOUR = "#3b82f6"
LPIPS_COLOUR = "#f97316"
MARKER_COLOUR = "#e11d48"
SINGLE_PASS_COLOUR = "#059669"
AXIS_TEXT = "#374151"
MIN_HEIGHT = 190  # of the two plots, with their K axis: fits a 1024x700 window
AXIS_LINE = "#9ca3af"
MIN_X_PAD = 0.06  # log10 units either side of K = 1 and K = max_k
LABEL_CLEARANCE_PX = 5  # between the "single-pass" label and the curve (its dots: 3.5 px)
# dtpm_core.evaluation.metrics.FEATURE_DISTANCE_NAME
FEATURE_DISTANCE = "EffNet-Lite0 feature distance"
FEATURE_DISTANCE_NOTE = (
    "LPIPS's formula on EfficientNet-Lite0 features with real ImageNet weights, without "
    "LPIPS's learned calibration: it ranks results like a perceptual distance, but its scale is "
    "its own and it is not LPIPS. Shown because LPIPS cannot run here: its AlexNet ImageNet "
    "weights are not in the torch hub cache (LPIPS on a random trunk would mean little), or "
    "PyTorch is not installed (the CPU bundle runs this network on OpenVINO).")


def _x(k: float) -> float:
    return math.log10(k)


def distance_metric(backbone: str) -> tuple[str, str]:
    """(metric name, its backbone) from a curve's "<metric>: <backbone>" (LPIPS if unnamed;
    "" while nothing was measured)."""
    if not backbone:
        return "", ""
    name, sep, rest = backbone.partition(": ")
    return (name, rest) if sep and name in ("LPIPS", FEATURE_DISTANCE) else ("LPIPS", backbone)


def _crosses(p: tuple[float, float], q: tuple[float, float],
             rect: tuple[float, float, float, float]) -> bool:
    """The segment p-q meets the rectangle (x0, y0, x1, y1) (Liang-Barsky clipping)."""
    x0, y0, x1, y1 = rect
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for edge_p, edge_q in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0),
                           (dy, y1 - p[1])):
        if edge_p == 0:
            if edge_q < 0:
                return False
            continue
        t = edge_q / edge_p
        if edge_p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def label_spot(points: list[tuple[float, float]], y: float, size: tuple[float, float],
               x_range: tuple[float, float], view: tuple[float, float, float, float],
               clearance: tuple[float, float]) -> tuple[float, tuple[float, float]] | None:
    """Where a label of `size` (data units) beside the horizontal line at `y` touches neither
    the polyline `points` nor the view's edges `view` (x0, y0, x1, y1): (x, anchor) for a
    pyqtgraph TextItem, trying the right end, the left end and the middle, above then below
    the line; None where there is no room."""
    (w, h), (cx, cy) = size, clearance
    left, right = x_range
    mid = (left + right) / 2
    for x, ax, span in ((right, 1.0, (right - w, right)), (left, 0.0, (left, left + w)),
                        (mid, 0.5, (mid - w / 2, mid + w / 2))):
        for above in (True, False):
            lo, hi = (y, y + h) if above else (y - h, y)
            if lo < view[1] or hi > view[3] or span[0] < view[0] or span[1] > view[2]:
                continue
            box = (span[0] - cx, lo - cy, span[1] + cx, hi + cy)
            lines = list(zip(points, points[1:], strict=False)) or [(p, p) for p in points]
            if not any(_crosses(a, b, box) for a, b in lines):
                return x, (ax, 1.0 if above else 0.0)
    return None


class TradeoffPlot(QWidget):
    stepsRequested = Signal(int)  # the marker was dragged to another K

    def __init__(self, max_k: int = 50, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._max_k = max_k
        self._k = 1
        self._state = CurveState()
        pg.setConfigOptions(antialias=True)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.canvas.setAcceptDrops(False)
        self.canvas.ci.setContentsMargins(2, 2, 6, 2)
        self.canvas.ci.setSpacing(4)
        self.psnr_plot = self.canvas.addPlot(row=0, col=0)
        self.lpips_plot = self.canvas.addPlot(row=1, col=0)
        self.lpips_plot.setXLink(self.psnr_plot)
        self.canvas.ci.layout.setRowStretchFactor(0, 5)  # the lower plot also holds the K axis
        self.canvas.ci.layout.setRowStretchFactor(1, 6)
        ticks = [[(_x(k), str(k)) for k in TICK_KS]]
        self.markers: list[pg.InfiniteLine] = []
        self.curves: list[pg.PlotDataItem] = []
        self.single_pass_lines: list[pg.PlotDataItem] = []
        self.single_pass_labels: list[pg.TextItem] = []
        for plot, colour in ((self.psnr_plot, PSNR_COLOUR), (self.lpips_plot, LPIPS_COLOUR)):
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.getAxis("bottom").setTicks(ticks)
            plot.getAxis("left").setWidth(78)  # same for both: the K axes line up
            plot.getAxis("left").enableAutoSIPrefix(False)
            for side in ("left", "bottom"):
                plot.getAxis(side).setTextPen(AXIS_TEXT)
                plot.getAxis(side).setPen(AXIS_LINE)
            plot.setXRange(_x(1) - MIN_X_PAD, _x(max_k) + MIN_X_PAD, padding=0)
            curve = plot.plot([], [], pen=pg.mkPen(colour, width=2), symbol="o",
                              symbolSize=7, symbolBrush=colour, symbolPen="w")
            marker = pg.InfiniteLine(angle=90, movable=True,
                                     pen=pg.mkPen(MARKER_COLOUR, width=2),
                                     hoverPen=pg.mkPen(MARKER_COLOUR, width=4),
                                     bounds=(_x(1), _x(max_k)))
            plot.addItem(marker)
            marker.sigDragged.connect(self._on_marker_dragged)
            marker.sigPositionChangeFinished.connect(self._on_marker_released)
            line = plot.plot([], [], pen=pg.mkPen(SINGLE_PASS_COLOUR, width=2,
                                                  style=Qt.PenStyle.DashLine))
            label = pg.TextItem("single-pass", color=SINGLE_PASS_COLOUR, anchor=(1, 1))
            plot.addItem(label, ignoreBounds=True)
            label.hide()
            self.curves.append(curve)
            self.markers.append(marker)
            self.single_pass_lines.append(line)
            self.single_pass_labels.append(label)
        self.psnr_plot.getAxis("bottom").setStyle(showValues=False)
        self.lpips_plot.getViewBox().sigResized.connect(self._fit_k_range)
        for plot in (self.psnr_plot, self.lpips_plot):
            plot.getViewBox().sigResized.connect(self._place_labels)
            plot.getViewBox().sigRangeChanged.connect(self._place_labels)
        self.lpips_plot.setLabel("bottom", "Sampling steps K", color=AXIS_TEXT)
        self.caption = QLabel()  # what the points are measured against (short axis labels)
        self.caption.setWordWrap(True)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.status.setMinimumHeight(self.status.fontMetrics().lineSpacing() * 3)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.caption)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.status)
        self.canvas.setMinimumHeight(MIN_HEIGHT)
        self.set_state(CurveState())
        self.set_marker(1)

    def sizeHint(self) -> QSize:
        # modest, so that the side panel fits its scroll area; the plot stretches anyway
        return QSize(340, MIN_HEIGHT + 80)

    def hasHeightForWidth(self) -> bool:
        return False  # else the wrapped status text makes the scroll area use the canvas hint

    def _fit_k_range(self) -> None:
        """Pad the K range so that the end ticks' labels fit inside the axis: pyqtgraph drops a
        tick label that would cross the axis's ends (the "50" vanished in narrow panels and
        with larger fonts)."""
        axis = self.lpips_plot.getAxis("bottom")
        font = axis.style["tickFont"] or axis.font()
        half = QFontMetricsF(font).horizontalAdvance(str(self._max_k)) / 2 + 2  # pixels
        width = self.lpips_plot.getViewBox().width()
        span = _x(self._max_k) - _x(1)
        # pad * width / (span + 2 pad) >= half  <=>  pad >= half * span / (width - 2 half)
        pad = max(MIN_X_PAD, half * span / max(width - 2 * half, 1.0))
        self.psnr_plot.setXRange(_x(1) - pad, _x(self._max_k) + pad, padding=0)

    # ------------------------------------------------------------------ updates

    def set_state(self, state: CurveState) -> None:
        """New curve points / labels (the items are reused)."""
        self._state = state
        for curve, values in zip(self.curves, (state.psnr, state.lpips), strict=True):
            ks = sorted(k for k, v in values.items() if math.isfinite(v))
            curve.setData([_x(k) for k in ks], [values[k] for k in ks])
        for line, value in zip(self.single_pass_lines,
                               (state.single_pass_psnr, state.single_pass_lpips), strict=True):
            shown = value is not None and math.isfinite(value)
            line.setData([_x(1), _x(self._max_k)] if shown else [],
                         [value, value] if shown else [])
        self._place_labels()
        for marker in self.markers:
            marker.setVisible(state.engine != SINGLE_PASS)
        self.canvas.setVisible(not state.unavailable)  # empty axes would only mislead
        against = state.against
        metric, backbone = distance_metric(state.backbone)
        # short axis labels (the plots stay readable in a low panel); the caption says what
        # both are measured against
        legend = ""
        if state.single_pass_psnr is not None or state.single_pass_lpips is not None:
            # one piece where the caption wraps (non-breaking space and hyphen)
            legend = (f" · <span style='color:{SINGLE_PASS_COLOUR}'>&#8209;&#8209;&nbsp;"
                      f"{html.escape(SINGLE_PASS).replace('-', '&#8209;')}</span>")
        # the curve is there to choose K: measured at texture strength 1 (as trained), whatever
        # strength the controls hold
        self.caption.setText(f"vs the {html.escape(against)} ({state.preview_side} px "
                             f"preview, strength 1){legend}")
        self.psnr_plot.setLabel("left", "PSNR (dB)", color=AXIS_TEXT)
        # fits a low plot; "Distance" until the first point says which one the worker measures
        label = {"LPIPS": "LPIPS", FEATURE_DISTANCE: "EffNet<br>distance"}.get(metric, "Distance")
        self.lpips_plot.setLabel("left", label, color=AXIS_TEXT)
        named = metric or "the perceptual distance"
        for plot, name in ((self.psnr_plot, "PSNR"), (self.lpips_plot, named)):
            plot.getAxis("left").label.setToolTip(f"{name} against the {against}")
        about = (f"{metric}: {FEATURE_DISTANCE_NOTE}" if metric == FEATURE_DISTANCE
                 else f"LPIPS backbone: {backbone}" if metric == "LPIPS"
                 else "The perceptual distance is named once the first point is measured.")
        self.canvas.setToolTip(
            f"PSNR and {named} of the result at each K against the {against}, on a preview"
            f" (longest side {state.preview_side} px); dashed: the single-pass engine's result, measured "
            f"the same way.\n{about}")
        self._update_status()

    def _place_labels(self, *_: object) -> None:
        """Put each "single-pass" label where it touches neither its plot's curve nor the
        edges (`label_spot`); hidden where there is no room (the caption names the line)."""
        state = self._state
        for plot, label, value, values in zip(
                (self.psnr_plot, self.lpips_plot), self.single_pass_labels,
                (state.single_pass_psnr, state.single_pass_lpips), (state.psnr, state.lpips),
                strict=True):
            if value is None or not math.isfinite(value):
                label.hide()
                continue
            box = plot.getViewBox()
            (x0, x1), (y0, y1) = box.viewRange()
            px, py = box.viewPixelSize()  # data units per pixel
            text = label.textItem.boundingRect()
            ks = sorted(k for k, v in values.items() if math.isfinite(v))
            spot = label_spot([(_x(k), values[k]) for k in ks], value,
                              (text.width() * px, text.height() * py), (_x(1), _x(self._max_k)),
                              (x0, y0, x1, y1),
                              (LABEL_CLEARANCE_PX * px, LABEL_CLEARANCE_PX * py))
            if spot is None:
                label.hide()
                continue
            x, anchor = spot
            label.setAnchor(anchor)
            label.setPos(x, value)
            label.show()
            label.updateTransform(force=True)  # not kept up to date while it was hidden

    def set_marker(self, k: int) -> None:
        self._k = int(k)
        for marker in self.markers:
            marker.blockSignals(True)
            marker.setValue(_x(self._k))
            marker.blockSignals(False)
        self._update_status()

    def marker_k(self) -> float:
        """K at the marker (for tests and tooltips)."""
        return 10 ** self.markers[0].value()

    def _update_status(self) -> None:
        state, k = self._state, self._k
        done = len(state.psnr)
        metric, _ = distance_metric(state.backbone)
        metric = {FEATURE_DISTANCE: "EffNet-Lite0 distance",  # fits a line
                  "": "distance"}.get(metric, metric)
        dtpm = f"<b>{'DTPM ' if state.engine == SINGLE_PASS else ''}K = {k}</b>"
        if k in state.psnr:
            dtpm += f": PSNR {state.psnr[k]:.2f} dB, {metric} {state.lpips[k]:.3f}"
        single = ""
        if state.single_pass_psnr is not None and state.single_pass_lpips is not None:
            single = (f"<b style='color:{SINGLE_PASS_COLOUR}'>Single-pass</b>: PSNR "
                      f"{state.single_pass_psnr:.2f} dB, {metric} {state.single_pass_lpips:.3f}")
        elif state.single_pass_computing:
            single = "computing the single-pass point"
        # the engine in use first
        lines = [single, dtpm] if state.engine == SINGLE_PASS else [dtpm, single]
        parts = [line for line in lines if line]
        if metric == "LPIPS" and "random" in state.backbone:
            parts.append("<span style='color:#b45309'>LPIPS uses a random backbone (ImageNet "
                         "weights not in the torch hub cache): not comparable to published "
                         "LPIPS</span>")
        if state.unavailable:
            parts = [f"No trade-off curve: {html.escape(state.unavailable)}"]
        elif state.error:
            parts.append(f"<span style='color:#b91c1c'>curve stopped: "
                         f"{html.escape(state.error)}</span>")
        elif state.computing_k is not None:
            parts.append(f"computing the curve: K = {state.computing_k} "
                         f"({done}/{len(TICK_KS)} done)")
        elif 0 < done < len(TICK_KS):
            parts.append(f"curve paused ({done}/{len(TICK_KS)} points)")
        self.status.setText("<br>".join(parts))

    # ------------------------------------------------------------------ marker drag

    def _on_marker_dragged(self, marker: pg.InfiniteLine) -> None:
        for other in self.markers:
            if other is not marker:
                other.blockSignals(True)
                other.setValue(marker.value())
                other.blockSignals(False)

    def _on_marker_released(self, marker: pg.InfiniteLine) -> None:
        k = int(round(10 ** marker.value()))
        k = min(self._max_k, max(1, k))
        self.set_marker(k)
        self.stepsRequested.emit(k)
