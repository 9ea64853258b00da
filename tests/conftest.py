"""Shared pytest set-up: headless Qt, and the real-hardware opt-in flag."""

from __future__ import annotations

import os

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
