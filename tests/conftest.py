"""Shared pytest set-up: headless Qt, the real-hardware opt-in flag, and waiting on a run.

Tests run in parallel (pytest-xdist, ``-n auto`` in pyproject.toml): everything a test
writes goes under its own ``tmp_path``, and every simulated bench is built per test.
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
