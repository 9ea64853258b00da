"""The soak benchmark in CI: one minute of accelerated lifetime with faults injected."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _soak_module():
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # a minute of wall time by design: CI's second step (pytest -m slow)
@pytest.mark.fault_class("soak: 1 min lifetime with timeouts, garbles and an outage")
@pytest.mark.timeout(240)
def test_one_minute_soak(tmp_path: Path) -> None:
    figures = _soak_module().run_soak(1.0, output=tmp_path, outage_s=3.0)
    assert figures["checks"] == {name: True for name in figures["checks"]}, figures
    assert (
        figures["points_stored"] + figures["points_lost_explained"]
        >= 0.95 * figures["points_expected"]
    )
    assert figures["faults_survived"] > 0
