"""SteadyAxis keeps its drawing for sub-pixel range moves and redraws for visible ones."""

from __future__ import annotations

import pytest


@pytest.fixture
def plot(qapp):
    import pyqtgraph as pg

    from perovlab_daq.gui.plots import steady_axes

    widget = pg.GraphicsLayoutWidget()
    widget.resize(800, 400)
    item = widget.addPlot(axisItems=steady_axes())
    item.showGrid(x=True, y=True, alpha=0.2)
    item.disableAutoRange()
    item.setXRange(0.0, 1000.0, padding=0)
    widget.show()
    qapp.processEvents()
    widget.grab()  # draws the axes once
    yield item
    widget.close()


def test_sub_pixel_move_keeps_the_drawing(plot, qapp) -> None:
    axis = plot.getAxis("bottom")
    drawn = axis.picture
    assert drawn is not None
    plot.setXRange(0.0, 1000.0001, padding=0)  # 1e-7 of the span: far below a pixel
    assert axis.picture is drawn
    assert axis.range[1] == pytest.approx(1000.0001)


def test_visible_move_redraws(plot, qapp) -> None:
    axis = plot.getAxis("bottom")
    assert axis.picture is not None
    plot.setXRange(0.0, 1010.0, padding=0)  # 1 % of the span: several pixels
    assert axis.picture is None
    plot.getViewBox().scene().views()[0].grab()
    assert axis.picture is not None


def test_accumulated_moves_redraw(plot, qapp) -> None:
    """Many small moves add up: the drawing is compared with the range it was made for."""
    axis = plot.getAxis("bottom")
    view = plot.getViewBox().scene().views()[0]
    high = 1000.0
    redrawn = 0
    for _ in range(200):
        high += 0.01  # each 1e-5 of the span
        plot.setXRange(0.0, high, padding=0)
        if axis.picture is None:
            redrawn += 1
            view.grab()
    assert 1 <= redrawn <= 20


def test_label_change_redraws(plot, qapp) -> None:
    axis = plot.getAxis("bottom")
    axis.setLabel("Other (s)")
    plot.setXRange(0.0, 1000.0001, padding=0)
    assert axis.picture is None
