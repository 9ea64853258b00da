"""Fixtures of the operator-window tests: one window on the simulated bench per module."""

from __future__ import annotations

import logging
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest.importorskip("pytestqt")


def _remove_pymeasure_log_handlers() -> None:
    from pymeasure.display.log import LogHandler

    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, LogHandler):
            root.removeHandler(handler)


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    """An operator window on its own simulated bench, closed (bench safe) at the end."""
    from perovlab_daq.bench import sim_bench
    from perovlab_daq.gui.app import open_bench
    from perovlab_daq.gui.window import OperatorWindow

    bench, missing = open_bench(sim_bench())
    assert not missing
    win = OperatorWindow(bench, data_dir=tmp_path_factory.mktemp("gui-data"), refresh_ms=100)
    win.warnings = []
    win.warn = lambda title, text: win.warnings.append((title, text))
    win.show()
    yield win
    win.confirm_close = lambda: True
    win.close()
    win.shutdown()
    _remove_pymeasure_log_handlers()
