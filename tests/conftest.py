"""Shared pytest set-up: headless Qt, the real-hardware opt-in flag, and waiting on a run.

Tests run in parallel (pytest-xdist, ``-n auto`` in pyproject.toml): everything a test
writes goes under its own ``tmp_path``, and every simulated bench is built per test. Tests
that read what earlier tests of their module left are kept together by
:data:`SERIAL_GROUPS`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

# CI must be reproducible: the same examples every run (set CI=true). Locally hypothesis
# explores new examples each time, which is how edge cases get found.
settings.register_profile("ci", derandomize=True, database=None, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Qt must never look for a display in CI or on a headless lab PC.
# (An empty value counts as unset: Qt would then look for a display and abort.)
if not os.environ.get("QT_QPA_PLATFORM"):
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("MPLBACKEND", "Agg")


#: Node-id prefix -> group: the tests of one group run on one xdist worker, in collection
#: order (one operator window per module, later tests read the runs of earlier ones; the
#: NC drift comparison reads the four runs before it). xdist's own ``xdist_group`` mark
#: is not honoured with pytest 9 (it renames the node id xdist appends the group to).
SERIAL_GROUPS = {
    "tests/gui/test_window.py::": "gui-window",
    "tests/procedures/test_lifetime_runs.py::test_nc_led_el_peak_red_shifts": "nc-drift",
    "tests/procedures/test_lifetime_runs.py::test_methyl_acetate_red_shifts_slowest": "nc-drift",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Distribute test by test (like ``--dist load``), except the :data:`SERIAL_GROUPS`."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupedScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            for prefix, group in SERIAL_GROUPS.items():
                if nodeid.startswith(prefix):
                    return group
            return nodeid

    return GroupedScheduling(config, log)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device-address",
        action="store",
        default=None,
        help="VISA address of a real instrument for the *_with_device tests",
    )


@pytest.fixture
def device_address(request: pytest.FixtureRequest) -> str:
    address = request.config.getoption("--device-address")
    if not address:
        pytest.skip("needs a real instrument: pass --device-address")
    return address


def _wait_for_rows(folder: Path, minimum: int, timeout: float = 60.0) -> Path:
    """Return the run file in ``folder`` once it holds ``minimum`` rows (read under SWMR).

    ``timeout`` is a hang guard, not a speed requirement: tests wait on what the run did,
    never for a fixed number of wall seconds.
    """
    import h5py

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(folder.glob("*.h5"))
        if files:
            try:
                with h5py.File(files[0], "r", swmr=True, locking=False) as file:
                    data = file["entry/data/time"]
                    data.refresh()
                    if len(data) >= minimum:
                        return files[0]
            except (OSError, KeyError):
                pass
        time.sleep(0.05)
    raise AssertionError(f"no run file in {folder} reached {minimum} rows in {timeout:g} s")


@pytest.fixture
def wait_for_rows() -> Callable[..., Path]:
    """``wait_for_rows(folder, minimum, timeout=60)``: the run file once it has the rows."""
    return _wait_for_rows
