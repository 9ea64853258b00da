"""Rack view of the operator window: one tile per lifetime channel, redrawn on a timer.

Each tile shows L/L0 against device hours, the drive, the device temperature, the state
(waiting, running, finished, failed...) and the time to the next T_x, from the channel's
:class:`perovlab_daq.rack.LiveChannel` (the worker threads write it, this view only reads
it). A timer redraws only the tiles whose channel changed since the last refresh, from
at most :data:`perovlab_daq.rack.LIVE_POINTS` points per curve, with pyqtgraph's peak
downsampling and clip-to-view, so 16 channels stay smooth.

``Run recipe...`` runs a recipe's steps (``parallel:`` groups included,
:func:`perovlab_daq.sequence.run_recipe`) on the window's bench configuration in a
background thread; ``Stop`` stops every channel safely.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from pymeasure.display.Qt import QtCore, QtWidgets

from perovlab_daq.rack import LiveChannel

log = logging.getLogger(__name__)

#: Tile colours per state (the curve pen).
STATE_COLOURS = {
    "waiting": "#888888",
    "opening": "#888888",
    "running": "#1f77b4",
    "finished": "#2ca02c",
    "failed": "#d62728",
    "error": "#d62728",
    "aborted": "#ff7f0e",
    "interrupted": "#ff7f0e",
}
#: Most tile columns (wide screens); fewer when the tab is narrower (see TILE_MIN_WIDTH).
COLUMNS = 4
#: Narrowest a tile is laid out: the column count is the tab's width over this, so a
#: six-channel rack shows every tile in the Rack tab of a 1280 px window (3 columns).
TILE_MIN_WIDTH = 240
#: Width of the view not available to tiles: layout margins, scroll-area frame, scroll bar.
RESERVED_WIDTH = 40


class ChannelTile(QtWidgets.QFrame):
    """One channel: a small L/L0 plot and a status line."""

    def __init__(self, live: LiveChannel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.live = live
        self.drawn_version = -1
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(1)
        self.title = QtWidgets.QLabel(self)
        self.title.setWordWrap(True)  # a long label must not widen the tile
        self.status = QtWidgets.QLabel(self)
        self.status.setWordWrap(True)
        self.plot = pg.PlotWidget(self)
        self.plot.setMinimumHeight(90)
        item = self.plot.getPlotItem()
        item.setDownsampling(auto=True, mode="peak")
        item.setClipToView(True)
        item.setLabel("left", "L/L0")
        item.setLabel("bottom", "device h")
        item.showGrid(x=True, y=True, alpha=0.2)
        self.curve = item.plot([], [], pen=pg.mkPen(STATE_COLOURS["running"], width=1.5))
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.status)

    def refresh(self) -> bool:
        """Redraw if the channel changed since the last refresh; return whether it did."""
        live = self.live
        if live.version == self.drawn_version:
            return False
        self.drawn_version = live.version
        time_h, relative, _temperature = live.curve()
        self.curve.setData(time_h, relative)
        self.curve.setPen(pg.mkPen(STATE_COLOURS.get(live.state, "#444444"), width=1.5))
        self.title.setText(f"<b>channel {live.channel}</b> {live.label}  {live.drive}")
        self.status.setText(self.status_text())
        return True

    def status_text(self) -> str:
        """Return the tile's status line: state, temperature, next T_x (or the reason)."""
        live = self.live
        parts = [live.state]
        if math.isfinite(live.temperature_c):
            parts.append(f"{live.temperature_c:.1f} C")
        reached = sorted(live.reached_h, reverse=True)
        if reached:
            parts.append(f"T{reached[-1]:g} at {live.reached_h[reached[-1]]:.3g} h")
        if live.state == "running":
            percent, hours = live.next_threshold()
            if math.isfinite(percent):
                eta = f"{hours:.3g} h" if math.isfinite(hours) else "?"
                parts.append(f"next T{percent:g} in {eta}")
        if live.reason and live.state not in {"running", "finished"}:
            parts.append(live.reason[:120])
        return " | ".join(parts)


class RackView(QtWidgets.QWidget):
    """Tiles of the channels of a rack, and a recipe runner.

    Parameters
    ----------
    bench_config
        The window's bench (its ``channels:`` are the rack); None: watch only.
    data_dir
        Folder for the runs of a recipe started here.
    refresh_ms
        Redraw period.
    """

    channels_started = QtCore.Signal(object)

    def __init__(
        self,
        bench_config: Any = None,
        data_dir: Path | None = None,
        refresh_ms: int = 500,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.name = "Rack"
        self.bench_config = bench_config
        self.data_dir = Path(data_dir) if data_dir is not None else Path("data")
        self.tiles: dict[str, ChannelTile] = {}
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.results: list[Any] = []
        self.columns = COLUMNS
        layout = QtWidgets.QVBoxLayout(self)
        bar = QtWidgets.QHBoxLayout()
        self.run_button = QtWidgets.QPushButton("Run recipe...", self)
        self.run_button.clicked.connect(self._choose_recipe)
        self.run_button.setEnabled(bool(getattr(bench_config, "channels", None)))
        self.stop_button = QtWidgets.QPushButton("Stop", self)
        self.stop_button.clicked.connect(self.stop)
        self.summary = QtWidgets.QLabel("no channels running", self)
        bar.addWidget(self.run_button)
        bar.addWidget(self.stop_button)
        bar.addWidget(self.summary, 1)
        layout.addLayout(bar)
        self.scroll_area = QtWidgets.QScrollArea(self)
        self.scroll_area.setWidgetResizable(True)
        self.grid_host = QtWidgets.QWidget(self.scroll_area)
        self.grid = QtWidgets.QGridLayout(self.grid_host)
        self.grid.setSpacing(4)
        self.scroll_area.setWidget(self.grid_host)
        layout.addWidget(self.scroll_area, 1)
        self.channels_started.connect(self.watch)
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(int(refresh_ms))

    def watch(self, live: Mapping[str, LiveChannel]) -> None:
        """Show one tile per channel of ``live`` (GUI thread), replacing the previous ones."""
        for tile in self.tiles.values():
            self.grid.removeWidget(tile)
            tile.deleteLater()
        self.tiles = {}
        for channel, state in live.items():
            self.tiles[channel] = ChannelTile(state, self.grid_host)
        self.columns = self.fitting_columns()
        self._place_tiles()
        self.refresh()

    def fitting_columns(self, width: int | None = None) -> int:
        """Return how many tile columns fit the tab's width (1 to :data:`COLUMNS`).

        From the view's own width (the scroll area's viewport is resized only when shown,
        so it is stale while the tab is hidden), less margins, frame and scroll bar.
        """
        usable = (self.width() if width is None else width) - RESERVED_WIDTH
        return max(1, min(COLUMNS, usable // TILE_MIN_WIDTH))

    def _reflow(self, width: int | None = None) -> None:
        columns = self.fitting_columns(width)
        if columns != self.columns:
            self.columns = columns
            self._place_tiles()

    def _place_tiles(self) -> None:
        for tile in self.tiles.values():
            self.grid.removeWidget(tile)
        for index, tile in enumerate(self.tiles.values()):
            self.grid.addWidget(tile, index // self.columns, index % self.columns)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        """Reflow the tiles when the tab's width changes the number of columns."""
        super().resizeEvent(event)
        self._reflow(event.size().width())

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        """Reflow when the tab is shown (tiles may have been made while it was hidden)."""
        super().showEvent(event)
        self._reflow()

    def refresh(self) -> int:
        """Redraw the tiles whose channel changed; return how many were redrawn."""
        redrawn = sum(tile.refresh() for tile in self.tiles.values())
        if self.tiles:
            states = [t.live.state for t in self.tiles.values()]
            counts = {s: states.count(s) for s in dict.fromkeys(states)}
            self.summary.setText(", ".join(f"{n} {s}" for s, n in counts.items()))
        return redrawn

    # -- running a recipe ---------------------------------------------------------------
    def _choose_recipe(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Run a recipe on the rack", "", "Recipes (*.yaml *.yml)"
        )
        if path:
            self.run_recipe(Path(path))

    def run_recipe(self, path: Path) -> None:
        """Validate a recipe (errors shown at once) and run it in a background thread."""
        from perovlab_daq.runner import RunInputError
        from perovlab_daq.sequence import load_recipe, plan_recipe, run_recipe

        if self.thread is not None and self.thread.is_alive():
            raise RuntimeError("a recipe is already running on the rack")
        try:
            recipe = load_recipe(path)
            steps = plan_recipe(recipe, bench_config=self.bench_config, output=self.data_dir)
        except RunInputError as exc:
            QtWidgets.QMessageBox.warning(self, "Recipe refused", str(exc))
            return
        self.stop_event = threading.Event()

        def work() -> None:
            self.results = run_recipe(
                steps, stop_event=self.stop_event, on_start=self.channels_started.emit
            )

        self.thread = threading.Thread(target=work, name="rack-recipe", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop every running channel safely (outputs off, files ``aborted``)."""
        self.stop_event.reason = "stopped from the rack view"  # type: ignore[attr-defined]
        self.stop_event.set()

    def is_running(self) -> bool:
        """Return whether a recipe started here is still running."""
        return self.thread is not None and self.thread.is_alive()

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop the timer and every channel, waiting for them to reach their safe state."""
        self.timer.stop()
        if self.is_running():
            self.stop()
            assert self.thread is not None
            self.thread.join(timeout_s)
