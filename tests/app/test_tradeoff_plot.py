"""The trade-off plot on its own: which perceptual distance it shows and says it shows, and K
tick labels that stay visible however narrow the panel or large the font."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QFont, QImage, QPainter

from dtpm_app.state import CurveState
from dtpm_app.widgets.tradeoff_plot import FEATURE_DISTANCE, TICK_KS, TradeoffPlot
from dtpm_core.evaluation.metrics import FEATURE_DISTANCE_NAME

RANDOM_LPIPS = "LPIPS: alex (random weights: ImageNet backbone not in the torch hub cache)"
FEATURES = f"{FEATURE_DISTANCE_NAME}: EfficientNet-Lite0 (ImageNet)"


def _state(backbone: str, against: str = "reference") -> CurveState:
    return CurveState({k: 30.0 - k / 10 for k in TICK_KS}, {k: 0.2 + k / 100 for k in TICK_KS},
                      against, backbone, single_pass_psnr=29.0, single_pass_lpips=0.25)


@pytest.fixture
def plot(qtbot) -> TradeoffPlot:
    widget = TradeoffPlot()
    qtbot.addWidget(widget)
    return widget


def test_the_feature_distance_is_named_everywhere_and_not_called_lpips(plot):
    assert FEATURE_DISTANCE == FEATURE_DISTANCE_NAME
    plot.set_state(_state(FEATURES))
    plot.set_marker(4)
    label = plot.lpips_plot.getAxis("left").labelText
    assert label == "EffNet<br>distance"
    assert "vs the reference" in plot.caption.text()
    status = plot.status.text()
    assert "EffNet-Lite0 distance 0.240" in status and "LPIPS 0." not in status
    assert "random" not in status
    tooltip = plot.canvas.toolTip()
    assert "real ImageNet weights" in tooltip and "it is not LPIPS" in tooltip


def test_lpips_keeps_its_name_and_a_random_trunk_is_flagged(plot):
    plot.set_state(_state(RANDOM_LPIPS, against="initial prediction"))
    plot.set_marker(4)
    assert plot.lpips_plot.getAxis("left").labelText == "LPIPS"
    assert "vs the initial prediction" in plot.caption.text()
    assert "strength 1" in plot.caption.text()  # measured as trained, whatever the controls say
    assert "LPIPS 0.240" in plot.status.text()
    assert "random backbone" in plot.status.text()
    assert "alex (random weights" in plot.canvas.toolTip()
    plot.set_state(_state("LPIPS: alex (ImageNet)"))
    assert "random" not in plot.status.text()


def _drawn_k_labels(plot: TradeoffPlot) -> list[str]:
    axis = plot.lpips_plot.getAxis("bottom")
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _, _, text in texts]


@pytest.mark.parametrize(("width", "point_size"), [(340, None), (260, 13.0), (420, 16.0)])
def test_every_k_tick_label_is_drawn(plot, qtbot, width, point_size):
    """pyqtgraph drops a tick label that crosses the axis's end: "50" used to vanish."""
    if point_size is not None:
        font = QFont(plot.font())
        font.setPointSizeF(point_size)
        for axis in (plot.lpips_plot.getAxis("bottom"), plot.psnr_plot.getAxis("bottom")):
            axis.setStyle(tickFont=font)
    plot.set_state(_state(FEATURES))
    plot.resize(width, 560)
    plot.show()
    qtbot.waitExposed(plot)
    qtbot.waitUntil(lambda: _drawn_k_labels(plot) == [str(k) for k in TICK_KS], timeout=2000)
