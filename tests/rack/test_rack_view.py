"""The rack view: one tile per channel, redrawn from the live channels, smooth for 16."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from pymeasure.display.Qt import QtWidgets  # noqa: E402
from rack_helpers import write_rack_bench, write_recipe  # noqa: E402

from perovlab_daq.bench import load_bench  # noqa: E402
from perovlab_daq.gui.rack import RackView  # noqa: E402
from perovlab_daq.rack import LIVE_POINTS, LiveChannel  # noqa: E402


def feed(live: LiveChannel, rows: int, tau_h: float) -> None:
    for k in range(rows):
        hours = k * 0.01
        live.record(
            "results",
            {
                "device_time": hours * 3600,
                "relative_luminance": float(np.exp(-((hours / tau_h) ** 0.7))),
                "temperature": 25.0 + 0.06 * 50,
                "current_density": 50.0,
                "jlv_sweep": 0.0,
            },
        )


def test_sixteen_tiles_redraw_only_what_changed_and_fast(qtbot) -> None:
    live = {str(k): LiveChannel(str(k), f"P{k}") for k in range(1, 17)}
    for k, channel in enumerate(live.values(), start=1):
        channel.set_state("running")
        channel.drive = f"{10 * k} mA/cm^2"
        feed(channel, 5000, tau_h=5.0 + k)
    view = RackView(refresh_ms=10_000)
    qtbot.addWidget(view)
    view.resize(1280, 800)
    view.show()
    view.watch(live)
    assert len(view.tiles) == 16
    for channel in live.values():
        assert len(channel.curve()[0]) <= LIVE_POINTS  # thinned, latest kept
        assert channel.curve()[0][-1] == pytest.approx(49.99)
    # Every T95..T70 crossing of the fed curves was noticed; the tile says what is next.
    tile = view.tiles["1"]
    assert {95.0, 90.0, 80.0, 70.0} <= set(tile.live.reached_h)
    assert "running" in tile.status.text() and "28.0 C" in tile.status.text()
    assert view.refresh() == 0  # nothing changed since watch()
    feed(live["3"], 1, tau_h=8.0)
    assert view.refresh() == 1
    for channel in live.values():
        feed(channel, 1, tau_h=8.0)
    started = time.perf_counter()
    assert view.refresh() == 16
    elapsed = time.perf_counter() - started
    print(f"16 tiles redrawn in {elapsed * 1e3:.1f} ms")
    assert elapsed < 0.5
    live["5"].set_state("failed", "source meter read failed 6 times in a row")
    view.refresh()
    assert "failed" in view.tiles["5"].status.text()
    assert "in a row" in view.tiles["5"].status.text()
    assert "15 running, 1 failed" in view.summary.text()


def test_rack_view_runs_a_parallel_recipe(qtbot, tmp_path: Path) -> None:
    bench = load_bench(write_rack_bench(tmp_path, acceleration=20_000.0))
    recipe = write_recipe(
        tmp_path,
        "runs:\n  - parallel:\n"
        + "".join(
            f"      - {{procedure: lifetime, channel: {k}, parameters: "
            f"{{current_density: {30 + 10 * k}}}}}\n"
            for k in range(1, 7)
        ),
    )
    view = RackView(bench, data_dir=tmp_path / "data", refresh_ms=50)
    qtbot.addWidget(view)
    view.run_recipe(recipe)
    qtbot.waitUntil(lambda: len(view.tiles) == 6, timeout=30_000)
    qtbot.waitUntil(lambda: not view.is_running(), timeout=120_000)
    view.refresh()
    assert [r.status for r in view.results] == ["finished"] * 6
    for channel, tile in view.tiles.items():
        assert tile.live.state == "finished"
        assert tile.live.rows > 10
        assert np.isfinite(tile.live.temperature_c)
        assert f"channel {channel}" in tile.title.text()
    view.shutdown()


def test_operator_window_has_a_rack_tab(qapp, tmp_path: Path) -> None:
    import logging

    from pymeasure.display.log import LogHandler

    from perovlab_daq.bench import sim_bench
    from perovlab_daq.gui.app import open_bench
    from perovlab_daq.gui.window import OperatorWindow

    bench, missing = open_bench(sim_bench())
    assert not missing
    window = OperatorWindow(bench, data_dir=tmp_path, refresh_ms=100)
    try:
        names = [window.tabs.tabText(i) for i in range(window.tabs.count())]
        assert "Rack" in names
        assert window.rack_view.run_button.isEnabled()  # the --sim bench has 8 channels
    finally:
        window.confirm_close = lambda: True
        window.close()
        window.shutdown()
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, LogHandler):
                root.removeHandler(handler)


def test_six_tiles_fit_the_rack_tab_of_a_1280_px_window(qtbot) -> None:
    """At 1280x800 the Rack tab is ~880 px wide: six tiles show without a sideways scroll.

    Four fixed columns of tiles whose title set their width (~280 px) made the grid wider
    than the tab, so a tile of a six-channel rack sat behind a horizontal scroll bar.
    """
    live = {str(k): LiveChannel(str(k), f"ch{k}:lifetime@B{k}") for k in range(1, 7)}
    for k, channel in enumerate(live.values(), start=1):
        channel.set_state("running")
        channel.drive = f"{35 * k} mA/cm^2"
        feed(channel, 50, tau_h=5.0 + k)
    view = RackView(refresh_ms=10_000)
    qtbot.addWidget(view)
    view.resize(880, 480)
    view.show()
    view.watch(live)
    qtbot.waitExposed(view)
    view.refresh()
    QtWidgets.QApplication.processEvents()
    scroll = view.findChild(QtWidgets.QScrollArea)
    viewport = scroll.viewport()
    assert not scroll.horizontalScrollBar().isVisible()
    for tile in view.tiles.values():
        corner = tile.mapTo(viewport, tile.rect().bottomRight())
        assert corner.x() <= viewport.width(), (tile.live.channel, corner.x(), viewport.width())
    # Wide screens keep four columns; a narrow tab reflows to fewer.
    view.resize(1900, 700)
    QtWidgets.QApplication.processEvents()
    assert view.columns == 4
    view.resize(500, 700)
    QtWidgets.QApplication.processEvents()
    assert view.columns < 3
    assert not scroll.horizontalScrollBar().isVisible()


def test_tiles_made_while_the_rack_tab_is_hidden_fit_when_it_is_shown(qtbot) -> None:
    """A recipe's tiles arrive while another tab is shown: they reflow when the tab shows."""
    live = {str(k): LiveChannel(str(k), f"ch{k}:lifetime@B{k}") for k in range(1, 7)}
    for channel in live.values():
        channel.set_state("running")
        feed(channel, 20, tau_h=5.0)
    tabs = QtWidgets.QTabWidget()
    qtbot.addWidget(tabs)
    tabs.addTab(QtWidgets.QLabel("another tab"), "J-L-V")
    view = RackView(refresh_ms=10_000)
    tabs.addTab(view, "Rack")
    tabs.resize(1600, 700)
    tabs.show()
    qtbot.waitExposed(tabs)
    view.watch(live)  # hidden
    tabs.resize(900, 700)
    QtWidgets.QApplication.processEvents()
    tabs.setCurrentWidget(view)
    QtWidgets.QApplication.processEvents()
    scroll = view.findChild(QtWidgets.QScrollArea)
    assert view.columns == 3
    assert not scroll.horizontalScrollBar().isVisible()
    viewport = scroll.viewport()
    for tile in view.tiles.values():
        assert tile.mapTo(viewport, tile.rect().bottomRight()).x() <= viewport.width()
