"""Pure functions of the rack: time to the next T_x, the temperature summary of a run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perovlab_daq.analysis.lifetime import temperature_summary
from perovlab_daq.rack import LiveChannel, time_to_threshold_h


def test_time_to_threshold_from_an_exponential_decay() -> None:
    t = np.linspace(0, 2, 50)
    relative = np.exp(-t / 10)  # T50 = 10 ln 2 = 6.93 h
    assert time_to_threshold_h(t, relative, 0.5) == pytest.approx(10 * math.log(2) - 2, rel=1e-6)
    assert math.isnan(time_to_threshold_h(t, np.ones_like(t), 0.5))  # no decay, no estimate
    assert math.isnan(time_to_threshold_h(t[:2], relative[:2], 0.5))


def test_threshold_needs_a_running_median_below_it() -> None:
    live = LiveChannel("1", thresholds=(80.0,))
    for k, value in enumerate([1.0, 0.9, 0.79, 0.85, 0.84, 0.83, 0.82]):  # one dip only
        live.record("results", {"device_time": k * 3600.0, "relative_luminance": value})
    assert 80.0 not in live.reached_h
    for k, value in enumerate([0.79, 0.78, 0.77], start=7):
        live.record("results", {"device_time": k * 3600.0, "relative_luminance": value})
    assert live.reached_h[80.0] == pytest.approx(9.0)
    live.record("results", {"device_time": 1.0, "relative_luminance": 0.1, "jlv_sweep": 1})
    assert live.rows == 10  # J-L-V sweep rows are not stress rows
    live.record("results", "not a row")  # never raises


def test_temperature_summary() -> None:
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    temperature = np.array([25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0])
    summary = temperature_summary(t, temperature, t50_s=2.5)
    assert summary["temperature_start_c"] == 27.0  # median of the first five
    assert summary["temperature_end_c"] == 29.0
    assert summary["temperature_mean_c"] == pytest.approx(28.0)
    assert summary["temperature_max_c"] == 31.0
    assert summary["temperature_rise_c"] == 2.0
    assert summary["temperature_at_t50_c"] == pytest.approx(27.5)
    empty = temperature_summary(t, np.full(7, np.nan))
    assert all(math.isnan(v) for v in empty.values())
