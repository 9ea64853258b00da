"""Drawing machinery shared by every plot tab: axes, downsampling, growing curves.

* :class:`AxisSpec` / :class:`PlotSpec` say what an axis and a plot show, with units; a
  log axis stores log10 of the values once (:meth:`AxisSpec.transform`) and only its
  labels are logarithmic (:func:`style_plot`), instead of pyqtgraph re-taking ``log10``
  of the whole curve every tick;
* :class:`EnvelopeCurve` grows by appending and, beyond :data:`ENVELOPE_THRESHOLD`
  points, hands pyqtgraph the min/max :func:`envelope` of the visible x range at screen
  resolution (two points per pixel column): a million-point curve costs a few
  milliseconds per tick, in linear and in log time alike (pyqtgraph's own downsampling
  assumes evenly spaced x and would merge the first decades of a log-time axis);
* :class:`SteadyAxis` keeps its drawing while a live auto-range moves by less than a
  quarter pixel (pyqtgraph redraws an axis at any change of its range);
* :class:`FrameTimeAxis` labels the rows of a spectra image with each frame's time.

The tabs that use these are in :mod:`perovlab_daq.gui.plots`; what each tab shows is in
:mod:`perovlab_daq.gui.views`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from pymeasure.display.Qt import QtGui, QtWidgets

log = logging.getLogger(__name__)

#: Curves longer than this are reduced to a min/max envelope before drawing.
ENVELOPE_THRESHOLD = 4000
#: Points per block whose minimum and maximum an :class:`EnvelopeCurve` keeps as it grows.
BLOCK = 32
LABEL_STYLE = {"color": "#202020", "font-size": "9pt"}


# --------------------------------------------------------------------------- axes
@dataclass(frozen=True)
class AxisSpec:
    """One plot axis: which column, how it is scaled, and its title with units.

    Attributes
    ----------
    column
        Data column (or ``"frame_time"`` for spectra).
    label, units
        Axis title and units (always shown; units '' means dimensionless).
    factor
        Multiplier applied to the column (e.g. 1/3600 for hours).
    absolute
        Plot the magnitude (current densities of either sign on a log axis).
    log
        Logarithmic axis: values are stored as log10, non-positive values are not drawn.
    """

    column: str
    label: str
    units: str = ""
    factor: float = 1.0
    absolute: bool = False
    log: bool = False

    def title(self) -> str:
        """Return the axis title with its units, e.g. ``Voltage (V)``."""
        return f"{self.label} ({self.units})" if self.units else f"{self.label} (1)"

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Map column values to plot coordinates (NaN where the axis cannot show them)."""
        out = np.asarray(values, dtype=np.float64) * self.factor
        if self.absolute:
            out = np.abs(out)
        if self.log:
            with np.errstate(invalid="ignore", divide="ignore"):
                out = np.where(out > 0, np.log10(np.where(out > 0, out, 1.0)), np.nan)
        return out


@dataclass(frozen=True)
class PlotSpec:
    """One x-y plot of a tab: its title, axes and reference lines."""

    key: str
    title: str
    x: AxisSpec
    y: AxisSpec
    lines: tuple[tuple[float, str], ...] = ()


def style_plot(plot: pg.PlotItem, title: str, x: AxisSpec, y: AxisSpec) -> None:
    """Give a plot its title, axis titles with units, log labels, grid and speed options."""
    plot.setTitle(title, size="10pt")
    for side, spec in (("bottom", x), ("left", y)):
        axis = plot.getAxis(side)
        axis.enableAutoSIPrefix(False)  # composite units (mA/cm^2) must not get prefixes
        axis.setLabel(spec.title(), **LABEL_STYLE)
        axis.setLogMode(spec.log)  # labels only: the data are stored as log10 already
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setDownsampling(auto=True, mode="peak")
    plot.setClipToView(True)
    cache_drawing(plot)


def cache_drawing(plot: pg.PlotItem) -> None:
    """Keep a pixmap of the plot's axes and title between repaints.

    Axes and titles are text (their drawing replays ~1 ms of glyph painting each), and
    a live tick repaints them whenever a curve over them changes; with a device-coordinate
    cache, Qt copies the kept pixmap unless the item itself asked for a new drawing (a
    :class:`SteadyAxis` does not when its range moved by less than a quarter pixel).
    """
    mode = QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
    for side in ("left", "bottom", "top", "right"):
        axis = plot.getAxis(side)
        if axis is not None:
            axis.setCacheMode(mode)
    plot.titleLabel.setCacheMode(mode)


# --------------------------------------------------------------------------- curves
def envelope(
    x: np.ndarray,
    y: np.ndarray,
    low: float,
    high: float,
    columns: int,
    blocks: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reduce sorted ``x``/``y`` to the points needed to draw x in [low, high] on ``columns`` px.

    Returns the visible points unchanged when there are few of them, else the minimum and
    maximum of each pixel column (plus the last point), which draws the same picture.
    ``blocks`` (minimum and maximum of each complete :data:`BLOCK` of points, as
    :class:`EnvelopeCurve` keeps them) are used when a column holds at least 8 blocks:
    column edges then move to the nearest block edge (under 1/8 pixel) and a million
    points cost ~30,000 block values instead of a pass over every point.
    """
    start = max(0, int(np.searchsorted(x, low, "left")) - 1)
    stop = min(len(x), int(np.searchsorted(x, high, "right")) + 1)
    xs, ys = x[start:stop], y[start:stop]
    columns = max(16, int(columns))
    if len(xs) <= 4 * columns:
        return xs, ys
    edges = np.linspace(xs[0], xs[-1], columns + 1)[:-1]
    starts = np.unique(np.searchsorted(xs, edges, "left"))
    starts = starts[starts < len(xs)]
    if blocks is not None and len(xs) >= 8 * BLOCK * len(starts):
        return _block_envelope(x, y, start + starts, stop, blocks)
    highs = np.maximum.reduceat(ys, starts)
    lows = np.minimum.reduceat(ys, starts)
    out_x = np.empty(2 * len(starts) + 1)
    out_y = np.empty_like(out_x)
    out_x[0:-1:2] = xs[starts]
    out_x[1:-1:2] = xs[starts]
    out_y[0:-1:2] = highs
    out_y[1:-1:2] = lows
    out_x[-1], out_y[-1] = xs[-1], ys[-1]
    return out_x, out_y


def _block_envelope(
    x: np.ndarray,
    y: np.ndarray,
    starts: np.ndarray,
    stop: int,
    blocks: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`envelope` from block extremes; ``starts`` index the full arrays, ``stop`` ends."""
    block_min, block_max = blocks
    complete = len(block_min)  # points [0, complete * BLOCK) are summarised
    first = (starts + BLOCK // 2) // BLOCK  # each column's first block (nearest edge)
    first[0] = -(-int(starts[0]) // BLOCK)  # nothing before the first visible point
    first = np.unique(np.minimum(first, complete))
    end_block = min(stop // BLOCK, complete)
    first = first[first < end_block]
    if first.size == 0:
        return x[starts[0] : stop], y[starts[0] : stop]
    highs = np.maximum.reduceat(block_max[first[0] : end_block], first - first[0])
    lows = np.minimum.reduceat(block_min[first[0] : end_block], first - first[0])
    # Points outside the whole blocks (before the first, after the last) go to the first
    # and last columns, read one by one: at most a block at each end.
    head = slice(int(starts[0]), int(first[0]) * BLOCK)
    tail = slice(end_block * BLOCK, stop)
    for part, index in ((head, 0), (tail, -1)):
        values = y[part]
        if values.size:
            highs[index] = max(highs[index], values.max())
            lows[index] = min(lows[index], values.min())
    out_x = np.empty(2 * len(first) + 1)
    out_y = np.empty_like(out_x)
    out_x[0:-1:2] = x[first * BLOCK]
    out_x[0] = x[starts[0]]
    out_x[1:-1:2] = out_x[0:-1:2]
    out_y[0:-1:2] = highs
    out_y[1:-1:2] = lows
    out_x[-1], out_y[-1] = x[stop - 1], y[stop - 1]
    return out_x, out_y


class EnvelopeCurve(pg.PlotDataItem):
    """A curve that grows by appending and draws a screen-resolution envelope when long.

    Points whose x or y the axes cannot show (NaN, or non-positive on a log axis) are
    not kept. :meth:`plotted_data` returns every kept point in plot coordinates.
    """

    def __init__(self, color: QtGui.QColor, width: float = 1.5, symbol: str | None = None) -> None:
        super().__init__(
            pen=pg.mkPen(color=color, width=width),
            antialias=False,
            connect="finite",
            symbol=symbol,
            symbolSize=5,
            symbolBrush=color,
            symbolPen=None,
        )
        self.setDownsampling(auto=True, method="peak")
        self.setClipToView(True)
        self._x = np.empty(1024)
        self._y = np.empty(1024)
        self._count = 0
        self._sorted = True
        self._drawn_key: tuple[Any, ...] | None = None
        # Minimum and maximum of each complete BLOCK of points (kept while x is sorted).
        self._block_min = np.empty(64)
        self._block_max = np.empty(64)
        self._blocks = 0

    def reset(self) -> None:
        """Forget every point (the axis transform changed)."""
        self._count = 0
        self._sorted = True
        self._drawn_key = None
        self._blocks = 0
        self.setDownsampling(auto=True, method="peak")
        self.setClipToView(True)
        self.setData([], [])

    def append(self, x: np.ndarray, y: np.ndarray) -> None:
        """Append points in plot coordinates (non-finite ones are dropped)."""
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if not len(x):
            return
        need = self._count + len(x)
        if need > len(self._x):
            size = max(need, 2 * len(self._x))
            for name in ("_x", "_y"):
                grown = np.empty(size)
                grown[: self._count] = getattr(self, name)[: self._count]
                setattr(self, name, grown)
        if self._sorted and (
            (self._count and x[0] < self._x[self._count - 1]) or np.any(np.diff(x) < 0)
        ):
            self._sorted = False
            # pyqtgraph's auto-downsampling and clip-to-view assume x increases: on a
            # sweep that comes back (hysteresis) they would drop most points.
            self.setDownsampling(auto=False)
            self.setClipToView(False)
        self._x[self._count : need] = x
        self._y[self._count : need] = y
        self._count = need
        if self._sorted:
            self._summarise_blocks()

    def _summarise_blocks(self) -> None:
        """Add the extremes of the blocks the last append completed."""
        complete = self._count // BLOCK
        done = self._blocks
        if complete <= done:
            return
        if complete > len(self._block_min):
            size = max(complete, 2 * len(self._block_min))
            for name in ("_block_min", "_block_max"):
                grown = np.empty(size)
                grown[:done] = getattr(self, name)[:done]
                setattr(self, name, grown)
        points = self._y[done * BLOCK : complete * BLOCK].reshape(-1, BLOCK)
        points.min(axis=1, out=self._block_min[done:complete])
        points.max(axis=1, out=self._block_max[done:complete])
        self._blocks = complete

    def plotted_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Return copies of every kept point (x, y) in plot coordinates (log10 on log axes)."""
        return self._x[: self._count].copy(), self._y[: self._count].copy()

    def redraw(self) -> None:
        """Hand pyqtgraph what the current view needs (no-op when nothing changed)."""
        count = self._count
        box = self.getViewBox()
        if count <= ENVELOPE_THRESHOLD or not self._sorted or box is None:
            key: tuple[Any, ...] = (count,)
            if key != self._drawn_key:
                self._drawn_key = key
                self.setData(self._x[:count], self._y[:count])
            return
        columns = int(box.width()) or 800
        x = self._x[:count]
        if box.autoRangeEnabled()[0]:
            low, high = float(x[0]), float(x[-1])
            key = (count, columns)
        else:
            low, high = box.viewRange()[0]
            key = (count, columns, low, high)
        if key == self._drawn_key:
            return
        self._drawn_key = key
        blocks = (self._block_min[: self._blocks], self._block_max[: self._blocks])
        xs, ys = envelope(x, self._y[:count], low, high, columns, blocks)
        self.setData(xs, ys)


class SteadyAxis(pg.AxisItem):
    """An axis that keeps its drawing while its range moves by less than a quarter pixel.

    pyqtgraph redraws an axis from scratch (tick values, labels, text layout: 1-4 ms
    each) whenever its range changes at all. A live curve's auto-range grows at every
    tick by a few millionths of its span (10 rows of a week-long run), which moves no
    tick by a visible amount; the drawing made for the range it was drawn at is kept
    until an end has moved by a quarter pixel, the axis or its view has changed size, or
    anything else (label, log mode, style) asks for a new drawing.
    """

    def __init__(self, orientation: str, **kwargs: Any) -> None:
        super().__init__(orientation, **kwargs)
        self._drawn: tuple[tuple[float, float], tuple[float, ...]] | None = None

    def _geometry(self) -> tuple[float, ...]:
        """Size of the axis and where its view lies (grid lines span the view)."""
        view = self.linkedView()
        box = self.mapRectFromItem(view, view.boundingRect()) if view is not None else None
        shape = (box.x(), box.y(), box.width(), box.height()) if box is not None else ()
        return (self.width(), self.height(), *shape)

    def setRange(self, mn: float, mx: float) -> None:  # noqa: N802 - pyqtgraph's name
        """Set the range; keep the current drawing when no tick would move visibly.

        A kept drawing is not even scheduled for a repaint, so the axis's cached pixmap
        (see :func:`cache_drawing`) is copied to the screen instead of drawn again.
        """
        if not self.autoSIPrefix:
            if self._keeps_drawing(mn, mx):
                self.range = [mn, mx]
                return
            super().setRange(mn, mx)
            return
        # With SI prefixes pyqtgraph picks the prefix in setRange: keep the drawing
        # afterwards if the prefix stayed (the repaint it scheduled replays the picture).
        kept, scale = self.picture, self.autoSIPrefixScale
        keep = self._keeps_drawing(mn, mx)
        super().setRange(mn, mx)
        if keep and self.autoSIPrefixScale == scale:
            self.picture = kept

    def _keeps_drawing(self, mn: float, mx: float) -> bool:
        if self.picture is None or self._drawn is None:
            return False
        if not (math.isfinite(mn) and math.isfinite(mx)):
            return False  # pyqtgraph's setRange says why
        (low, high), geometry = self._drawn
        pixels = self.width() if self.orientation in ("top", "bottom") else self.height()
        span = high - low
        if pixels <= 0 or not span:
            return False
        tolerance = 0.25 * abs(span) / pixels
        if abs(mn - low) > tolerance or abs(mx - high) > tolerance:
            return False
        return geometry == self._geometry()

    def paint(self, p: Any, opt: Any, widget: Any) -> None:
        """Draw the axis; remember the range and size a new drawing was made for."""
        fresh = self.picture is None
        super().paint(p, opt, widget)
        if fresh:
            self._drawn = ((float(self.range[0]), float(self.range[1])), self._geometry())


class FrameTimeAxis(pg.AxisItem):
    """Left axis of the spectra image: rows are frames, labelled with each frame's time."""

    def __init__(self) -> None:
        super().__init__("left")
        self.times = np.zeros(0)
        self.factor = 1.0
        self.enableAutoSIPrefix(False)

    def set_times(self, times_s: np.ndarray) -> None:
        """Set the time (s) of each frame; the axis shows h beyond two hours."""
        self.times = np.asarray(times_s, dtype=np.float64)
        last = float(np.nanmax(self.times)) if len(self.times) else 0.0
        factor, units = (1 / 3600, "h") if last > 7200 else (1.0, "s")
        if factor != self.factor or self.labelText == "":
            self.factor = factor
            self.setLabel(f"Time ({units})", **LABEL_STYLE)
        self.picture = None
        self.update()

    def tickStrings(self, values: Sequence[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        """Return the time of the frame under each tick (rows are frame centres)."""
        if not len(self.times):
            return ["" for _ in values]
        index = np.arange(len(self.times)) + 0.5
        times = np.interp(np.asarray(values, dtype=float), index, self.times) * self.factor
        steps = np.diff(np.sort(times))
        step = float(steps[steps > 0].min()) if np.any(steps > 0) else 0.0
        biggest = float(np.max(np.abs(times))) if len(times) else 0.0
        digits = 3
        if step > 0 and biggest > 0:  # enough digits that neighbouring ticks differ
            digits = max(3, int(math.ceil(math.log10(biggest / step))) + 1)
        return [f"{t:.{digits}g}" for t in times]
