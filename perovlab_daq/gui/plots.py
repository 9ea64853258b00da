"""Live plot tabs of the operator window: one tab per procedure, fed from memory on a GUI timer.

Every tab (:class:`ProcedureView`) is a pymeasure ``TabWidget`` (``new_curve``/``load``/
``remove``/``set_color``), so pymeasure's manager, browser and check boxes drive it as they
drive ``PlotWidget``. What is different from pymeasure's ``ResultsCurve``:

* a run's items (:class:`RunCurves`) are fed from its
  :class:`~perovlab_daq.gui.live.RunData` (memory), and only the rows new since the last
  tick are transformed and appended to :class:`~perovlab_daq.gui.curves.EnvelopeCurve`
  s, which draw a screen-resolution envelope when long (see :mod:`perovlab_daq.gui.curves`);
* spectra show as the newest spectrum per run and a spectra-against-time image.

What each tab shows is data in :mod:`perovlab_daq.gui.views`. Only widgets are touched
here, and only from the GUI thread (the refresh timer).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from pymeasure.display.Qt import QtCore, QtGui, QtWidgets
from pymeasure.display.widgets.tab_widget import TabWidget

from perovlab_daq.run_progress import format_hours

from .curves import (
    ENVELOPE_THRESHOLD,
    LABEL_STYLE,
    AxisSpec,
    EnvelopeCurve,
    FrameTimeAxis,
    PlotSpec,
    SteadyAxis,
    cache_drawing,
    envelope,
    style_plot,
)
from .live import RunData, crossing_index
from .views import GENERIC_COLUMNS, LIFETIME_LEVELS, ViewSpec, view_specs

log = logging.getLogger(__name__)

#: Names that moved to :mod:`.curves` and :mod:`.views` stay importable from here.
__all__ = [
    "ENVELOPE_THRESHOLD",
    "GENERIC_COLUMNS",
    "LIFETIME_LEVELS",
    "AxisSpec",
    "EnvelopeCurve",
    "FrameTimeAxis",
    "PlotSpec",
    "ProcedureView",
    "RunCurves",
    "SteadyAxis",
    "ViewSpec",
    "envelope",
    "make_views",
    "style_plot",
    "view_specs",
]


def steady_axes() -> dict[str, SteadyAxis]:
    """Return the bottom and left axes of a plot whose range follows live data."""
    return {"bottom": SteadyAxis("bottom"), "left": SteadyAxis("left")}


# --------------------------------------------------------------------------- per-run items
class RunCurves:
    """What one run draws in one tab (pymeasure's "curve"): a curve per plot and spectra.

    Parameters
    ----------
    view
        The tab (:class:`ProcedureView`) that owns the plots.
    run
        The run's data in memory.
    results
        The run's results object (pymeasure reads ``results.procedure.status``).
    color
        Colour of this run's curves and browser icon.
    """

    def __init__(self, view: ProcedureView, run: RunData, results: Any, color: QtGui.QColor):
        self.wdg = view
        self.run = run
        self.results = results
        self.color = QtGui.QColor(color)
        self.curves: dict[str, EnvelopeCurve] = {}
        for spec in view.plot_specs:
            symbol = "o" if view.symbols else None
            self.curves[spec.key] = EnvelopeCurve(self.color, symbol=symbol)
        self.spectrum = pg.PlotDataItem(pen=pg.mkPen(self.color, width=1.2), antialias=False)
        self.spectrum.setDownsampling(auto=True, method="peak")
        self.spectrum.setClipToView(True)
        self.markers: list[pg.InfiniteLine] = []
        self._rows_done = 0
        self._frames_drawn: tuple[int, int] | None = None
        self._version = -1
        self._crossings: dict[float, float] = {}
        self._relative_done = 0

    # pymeasure calls these
    def update_data(self) -> None:
        """Bring the curves up to date with the run's data (pymeasure calls this at the end)."""
        self.refresh(force=True)
        if self.wdg.image_run is self:
            self.wdg.refresh_image()

    def set_color(self, color: QtGui.QColor) -> None:
        """Recolour every item of this run."""
        self.color = QtGui.QColor(color)
        for curve in self.curves.values():
            curve.setPen(pg.mkPen(color=self.color, width=1.5))
            curve.setSymbolBrush(self.color)
        self.spectrum.setPen(pg.mkPen(self.color, width=1.2))

    def reset(self) -> None:
        """Rebuild every curve from the first row (after an axis transform change)."""
        for curve in self.curves.values():
            curve.reset()
        self._rows_done = 0
        self._version = -1

    # the tab's timer calls this
    def refresh(self, force: bool = False) -> bool:
        """Append the rows new since the last call and redraw; return whether data changed."""
        changed = force or self.run.version != self._version
        if changed:
            self._version = self.run.version
            count, rows = self.run.rows()
            if count > self._rows_done:
                block = rows[self._rows_done : count]
                for spec in self.wdg.plot_specs:
                    x = spec.x.transform(self._column(block, spec.x.column))
                    y = spec.y.transform(self._column(block, spec.y.column))
                    self.curves[spec.key].append(x, y)
                self._update_crossings(block)
                self._rows_done = count
            self._refresh_spectrum()
        for curve in self.curves.values():
            curve.redraw()
        return changed

    def _column(self, block: np.ndarray, name: str) -> np.ndarray:
        if name in GENERIC_COLUMNS:  # a foreign procedure: its first or second column
            position = GENERIC_COLUMNS.index(name)
            name = self.run.columns[position] if len(self.run.columns) > position else ""
        index = self.run._index.get(name)  # noqa: SLF001 - same package, hot path
        if index is None:
            return np.full(len(block), np.nan)
        return block[:, index]

    def _refresh_spectrum(self) -> None:
        newest = self.run.newest_frames()
        if newest is None:
            return
        frames, count, intensity, _times = newest
        key = (id(frames), count)
        if count and key != self._frames_drawn:
            self._frames_drawn = key
            self.spectrum.setData(frames.wavelength, intensity[count - 1])

    def _update_crossings(self, block: np.ndarray) -> None:
        if not self.wdg.lifetime or not self.run.has_column("relative_luminance"):
            return
        relative = self._column(block, "relative_luminance")
        times = self._column(block, self.wdg.time_column) / 3600.0
        for level, name in LIFETIME_LEVELS:
            if level in self._crossings:
                continue
            index = crossing_index(relative, level)
            if index is None:
                continue
            hours = float(times[index])
            self._crossings[level] = hours
            self.wdg.add_crossing(self, name, hours)

    def plotted(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Return every point of plot ``key`` in plot coordinates (for tests and export)."""
        return self.curves[key].plotted_data()

    @property
    def crossings_h(self) -> dict[float, float]:
        """L/L0 level -> device time (h) at which this run first fell below it."""
        return dict(self._crossings)


# --------------------------------------------------------------------------- tabs
class ProcedureView(TabWidget, QtWidgets.QWidget):
    """A tab of plots for the runs of one procedure, refreshed from memory by a GUI timer.

    Parameters
    ----------
    spec
        What the tab shows.
    refresh_ms
        Refresh period of the live curves.
    """

    def __init__(self, spec: ViewSpec, refresh_ms: int = 200, parent: Any = None) -> None:
        super().__init__(spec.name, parent)
        self.spec = spec
        self.procedures = spec.procedures
        self.plot_specs = spec.plots
        self.lifetime = spec.lifetime
        self.symbols = spec.symbols
        self.time_column = "device_time"
        self.loaded: list[RunCurves] = []
        self.plots: dict[str, pg.PlotItem] = {}
        self._markers: list[tuple[RunCurves, pg.InfiniteLine]] = []
        self.image_run: RunCurves | None = None
        self._image_key: tuple[int, int] | None = None  # (frame buffer id, frames shown)
        self._levels = (math.inf, -math.inf)
        self._seen = (math.inf, -math.inf)
        self._indices = np.zeros((0, 0), dtype=np.uint8)
        self._shown: np.ndarray | None = None
        self._intensity_label = ""
        self._build()
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(int(refresh_ms))

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        if self.lifetime:
            row = QtWidgets.QHBoxLayout()
            self.log_time = QtWidgets.QCheckBox("Log time axis", self)
            self.log_time.toggled.connect(self.set_log_time)
            row.addWidget(self.log_time)
            row.addStretch(1)
            layout.addLayout(row)
        self.graphics = pg.GraphicsLayoutWidget(self)
        self.graphics.setBackground("w")
        layout.addWidget(self.graphics, 1)
        per_row = self.spec.columns_per_row
        cell = 0
        for plot_spec in self.plot_specs:
            plot = self.graphics.addPlot(
                row=cell // per_row, col=cell % per_row, axisItems=steady_axes()
            )
            style_plot(plot, plot_spec.title, plot_spec.x, plot_spec.y)
            for level, name in plot_spec.lines:
                line = pg.InfiniteLine(
                    pos=level,
                    angle=0,
                    pen=pg.mkPen("#888888", style=QtCore.Qt.PenStyle.DashLine),
                    label=name,
                    labelOpts={"position": 0.03, "color": "#555555", "anchors": [(0, 1), (0, 1)]},
                )
                plot.addItem(line, ignoreBounds=True)
            plot.getViewBox().sigXRangeChanged.connect(self._view_moved)
            self.plots[plot_spec.key] = plot
            cell += 1
        if self.spec.spectra:
            row = (cell + per_row - 1) // per_row
            spectrum = self.graphics.addPlot(row=row, col=0, axisItems=steady_axes())
            style_plot(
                spectrum,
                "Newest spectrum",
                AxisSpec("wavelength", "Wavelength", "nm"),
                AxisSpec("intensity", "Intensity", "counts"),
            )
            self.plots["spectrum"] = spectrum
            self.time_axis = FrameTimeAxis()
            image_plot = self.graphics.addPlot(
                row=row, col=1, colspan=max(1, per_row - 1), axisItems={"left": self.time_axis}
            )
            image_plot.setTitle("Spectra against time", size="10pt")
            cache_drawing(image_plot)
            bottom = image_plot.getAxis("bottom")
            bottom.enableAutoSIPrefix(False)
            bottom.setLabel("Wavelength (nm)", **LABEL_STYLE)
            self.time_axis.setLabel("Time (s)", **LABEL_STYLE)
            # The image holds 8-bit colour indices, quantised once per spectrum as it
            # arrives (all rows again only when the level range must widen), so a new
            # spectrum costs one lookup-table pass, not a float rescale of every frame.
            colormap = pg.colormap.get("viridis")
            self.image = pg.ImageItem(axisOrder="row-major", autoDownsample=False)
            self.image.setLookupTable(colormap.getLookupTable(nPts=256))
            image_plot.addItem(self.image)
            self.colorbar = pg.ColorBarItem(
                values=(0.0, 1.0),
                colorMap=colormap,
                interactive=False,
                width=12,
                rounding=1e-300,
            )
            self.graphics.addItem(self.colorbar, row=row, col=per_row)
            self.colorbar.axis.enableAutoSIPrefix(False)
            self.colorbar.axis.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
            self.colorbar.axis.setLabel("Intensity (counts)", **LABEL_STYLE)
            self.plots["waterfall"] = image_plot

    def set_log_time(self, log_time: bool) -> None:
        """Switch the lifetime tab's time axis between linear and log (rebuilds the curves)."""
        specs = {s.name: s for s in view_specs(log_time=log_time)}
        self.spec = specs[self.spec.name]
        self.plot_specs = self.spec.plots
        for plot_spec in self.plot_specs:
            axis = self.plots[plot_spec.key].getAxis("bottom")
            axis.setLogMode(plot_spec.x.log)
            self.plots[plot_spec.key].enableAutoRange()
        for _curves, line in self._markers:
            line.setValue(self._marker_x(line.hours))  # type: ignore[attr-defined]
        for curves in self.loaded:
            curves.reset()
            curves.refresh(force=True)

    def _marker_x(self, hours: float) -> float:
        log_time = self.plot_specs[0].x.log
        return math.log10(hours) if log_time and hours > 0 else hours

    def add_crossing(self, curves: RunCurves, name: str, hours: float) -> None:
        """Mark where a run's L/L0 first fell below a level (T95, T90, T50)."""
        plot = self.plots.get("relative")
        if plot is None:
            return
        line = pg.InfiniteLine(
            pos=self._marker_x(hours),
            angle=90,
            pen=pg.mkPen(curves.color, style=QtCore.Qt.PenStyle.DotLine),
            label=f"{name} {format_hours(hours)}",
            labelOpts={"position": 0.08 + 0.1 * len(self._markers) % 0.8, "color": "#303030"},
        )
        line.hours = hours  # type: ignore[attr-defined]
        plot.addItem(line, ignoreBounds=True)
        self._markers.append((curves, line))

    def _view_moved(self, box: pg.ViewBox, _range: Any) -> None:
        if box.autoRangeEnabled()[0]:
            return  # the next tick draws the whole range anyway
        for curves in self.loaded:
            for curve in curves.curves.values():
                if curve.getViewBox() is box:
                    curve.redraw()

    # ------------------------------------------------------------------ pymeasure API
    def handles(self, procedure_name: str) -> bool:
        """Return whether this tab draws runs of ``procedure_name`` (``*``: any other)."""
        return procedure_name in self.procedures

    def new_curve(self, results: Any, color: Any = None, run: RunData | None = None, **_: Any):
        """Return this tab's items for a run (None without the run's data).

        The window asks only the tab that :meth:`handles` the run's procedure.
        """
        if run is None:
            return None
        return RunCurves(self, run, results, color if color is not None else pg.intColor(0))

    def load(self, curves: RunCurves) -> None:
        """Show a run's items (pymeasure calls this when a run is added or re-checked)."""
        if curves in self.loaded:
            return
        for key, curve in curves.curves.items():
            self.plots[key].addItem(curve)
        if "spectrum" in self.plots:
            self.plots["spectrum"].addItem(curves.spectrum)
        self.loaded.append(curves)
        for owner, line in self._markers:
            if owner is curves:
                line.show()
        curves.refresh(force=True)
        self.image_run = curves
        self._image_key = None
        self.refresh_image()

    def remove(self, curves: RunCurves) -> None:
        """Hide a run's items (unchecked in the browser, or removed)."""
        if curves not in self.loaded:
            return
        for key, curve in curves.curves.items():
            self.plots[key].removeItem(curve)
        if "spectrum" in self.plots:
            self.plots["spectrum"].removeItem(curves.spectrum)
        for owner, line in self._markers:
            if owner is curves:
                line.hide()
        self.loaded.remove(curves)
        if self.image_run is curves:
            self.image_run = self.loaded[-1] if self.loaded else None
            self._image_key = None
            if self.image_run is None and "waterfall" in self.plots:
                self.image.clear()

    def set_color(self, curves: RunCurves, color: QtGui.QColor) -> None:
        """Recolour a run (browser menu)."""
        curves.set_color(color)

    def clear_widget(self) -> None:
        """Remove every run from the tab."""
        for curves in list(self.loaded):
            self.remove(curves)

    # ------------------------------------------------------------------ refresh
    def refresh(self) -> None:
        """Timer tick: append new rows of every shown run and redraw what changed."""
        for curves in self.loaded:
            curves.refresh()
        self.refresh_image()

    def refresh_image(self) -> None:
        """Show the spectra of the newest shown run as an image (only when new frames came)."""
        curves = self.image_run
        if curves is None or "waterfall" not in self.plots:
            return
        newest = curves.run.newest_frames()
        if newest is None:
            return
        frames, count, intensity, times = newest
        key = (id(frames), count)
        if not count or key == self._image_key:
            return
        same = self._image_key is not None and self._image_key[0] == id(frames)
        new_from = self._image_key[1] if same else 0
        self._image_key = key
        block = intensity[new_from:count]
        finite = block[np.isfinite(block)]
        low, high = self._levels if new_from else (math.inf, -math.inf)
        if finite.size and (finite.min() < low or finite.max() > high):
            seen_low = float(finite.min()) if not new_from else min(self._seen[0], finite.min())
            seen_high = float(finite.max()) if not new_from else max(self._seen[1], finite.max())
            self._seen = (float(seen_low), float(seen_high))
            span = (seen_high - seen_low) or 1.0
            low, high = seen_low, seen_high + 0.25 * span  # headroom: fewer requantisations
            new_from = 0
        elif finite.size:
            self._seen = (min(self._seen[0], finite.min()), max(self._seen[1], finite.max()))
        if not high > low:
            high = low + 1.0
        self._levels = (low, high)
        if self._indices.shape[0] < count or self._indices.shape[1] != intensity.shape[1]:
            grown = np.zeros((max(16, 2 * count), intensity.shape[1]), dtype=np.uint8)
            keep = min(new_from, self._indices.shape[0])
            if self._indices.shape[1] == intensity.shape[1]:
                grown[:keep] = self._indices[:keep]
            else:
                new_from = 0
            self._indices = grown
        scaled = (intensity[new_from:count] - low) * (255.0 / (high - low))
        np.clip(np.nan_to_num(scaled, nan=0.0), 0, 255, out=scaled)
        self._indices[new_from:count] = scaled.astype(np.uint8)
        self._shown = intensity[:count]
        wavelength = frames.wavelength
        self.image.setImage(self._indices[:count], autoLevels=False, levels=(0, 255))
        self.image.setRect(
            QtCore.QRectF(
                float(wavelength[0]), 0.0, float(wavelength[-1] - wavelength[0]), float(count)
            )
        )
        if tuple(self.colorbar.levels()) != (low, high):
            self.colorbar.setLevels((low, high))  # redraws its axis even when unchanged
        label = f"Intensity ({frames.units})"
        if label != self._intensity_label:
            # setLabel re-lays out and repaints an axis even when the text is unchanged:
            # two axes redrawn from scratch at every new spectrum (~2-5 ms a tick).
            self._intensity_label = label
            self.colorbar.axis.setLabel(label, **LABEL_STYLE)
            self.plots["spectrum"].getAxis("left").setLabel(label, **LABEL_STYLE)
        self.time_axis.set_times(times[:count])

    def image_data(self) -> np.ndarray | None:
        """Return the spectra the image shows (frames x pixels, in their units)."""
        return None if "waterfall" not in self.plots else self._shown


def make_views(refresh_ms: int = 200) -> list[ProcedureView]:
    """Create one tab per procedure family (see :func:`view_specs`)."""
    return [ProcedureView(spec, refresh_ms=refresh_ms) for spec in view_specs()]
