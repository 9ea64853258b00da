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


def test_kept_drawing_asks_for_no_repaint(plot, qapp, monkeypatch) -> None:
    """A sub-pixel move must not even schedule a repaint (that would drop the axis cache)."""
    axis = plot.getAxis("bottom")
    axis.enableAutoSIPrefix(False)  # as every tab's axes (units like mA/cm^2 take no prefix)
    plot.getViewBox().scene().views()[0].grab()
    calls = []
    monkeypatch.setattr(axis, "update", lambda *a: calls.append(a))
    plot.setXRange(0.0, 1000.0001, padding=0)
    assert calls == []
    plot.setXRange(0.0, 1010.0, padding=0)
    assert calls  # a visible move does


def _lifetime_tab_image(qapp, cached: bool):
    import numpy as np
    from perovlab_daq.procedures.lifetime import LifetimeProcedure
    from pymeasure.display.Qt import QtWidgets

    from perovlab_daq.gui.live import RunData
    from perovlab_daq.gui.plots import ProcedureView, view_specs

    spec = next(s for s in view_specs() if s.name == "Lifetime")
    view = ProcedureView(spec, refresh_ms=10_000_000)
    view.timer.stop()
    view.resize(1000, 700)
    if not cached:
        for item in view.graphics.scene().items():
            item.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.NoCache)
    view.show()
    t = np.linspace(0.0, 36_000.0, 20_000)
    rows = {"time": t, "device_time": t, "voltage": 3.0 + t / 1e5}
    rows["relative_luminance"] = np.exp(-((t / 2e4) ** 0.6))
    rows["luminance"] = 900.0 * rows["relative_luminance"]
    run = RunData.from_arrays(LifetimeProcedure.COLUMNS, {k: v[:19_000] for k, v in rows.items()})
    wavelength = np.linspace(350.0, 1100.0, 1044)
    for index in range(30):
        peak = np.exp(-0.5 * ((wavelength - 660.0 - index) / 12.0) ** 2)
        run.append_frame("spectra", wavelength, 5e4 * peak, {"time": index * 600.0})
    curves = view.new_curve(None, color=None, run=run)
    view.load(curves)
    view.grab()
    for start in range(19_000, 20_000, 100):  # live ticks: small moves of every axis
        run.append_rows({k: v[start : start + 100] for k, v in rows.items()})
        view.refresh()
        qapp.processEvents()
        view.grab()
    image = view.grab().toImage()
    view.close()
    return image


def _pixels(image):
    import numpy as np

    image = image.convertToFormat(image.Format.Format_RGB32)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    return np.frombuffer(bits, np.uint8).reshape(image.height(), image.width(), 4).copy()


def test_cached_drawing_looks_the_same(qapp) -> None:
    """Axes and titles kept as pixmaps between ticks draw what drawing them does.

    Seen: 2 of 700,000 pixels differ, the last pixel of an axis line at a plot's corner
    (the cached pixmap ends on the bounding rectangle). Labels, ticks, grid: identical.
    """
    cached = _pixels(_lifetime_tab_image(qapp, cached=True))
    drawn = _pixels(_lifetime_tab_image(qapp, cached=False))
    assert cached.shape == drawn.shape
    differ = (cached != drawn).any(axis=2)
    assert differ.sum() <= 8, f"{differ.sum()} pixels differ"
