"""State events (device_state checkpoints) are stored as changes only, so a week stays small."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
from storage_test_procedures import SweepProcedure

from perovlab_daq.storage import HDF5Results
from perovlab_daq.storage.layout import state_changed


def _state(t: float, age: float, rng: int = 0) -> str:
    world = {"device_time_s": t, "led_reduced_age": age, "rng_state": {"state": rng}}
    return json.dumps({"time_s": t / 10, "device_time_s": t, "world": world})


def test_state_changed_ignores_save_time_and_noise_state_and_tiny_changes() -> None:
    first = _state(1000.0, 0.5, rng=1)
    assert state_changed(None, first)
    assert not state_changed(first, _state(1000.0, 0.5, rng=2))  # only rng and save time
    assert not state_changed(first, _state(1000.5, 0.5002))  # within 1e-3
    assert state_changed(first, _state(1000.0, 0.51))
    assert state_changed(first, _state(1100.0, 0.5))
    assert state_changed("not json", "other text") and not state_changed("same", "same")


def test_a_long_run_stores_log_spaced_checkpoints(tmp_path: Path) -> None:
    """Checkpoints every 0.2 s for an hour, late in a week-long run: a handful stored."""
    path = tmp_path / "run.h5"
    results = HDF5Results(SweepProcedure(), path)
    results.start()
    start = 160 * 3600.0
    for i in range(18000):
        t = start + 0.2 * i
        results.add_event("info", "device_state", _state(t, (t / 1e5) ** 0.6, rng=i))
    results.add_event("info", "pause", "same text")
    results.add_event("info", "pause", "same text")  # other kinds: every event is kept
    results.set_status(3)
    results.close()
    with h5py.File(path, "r") as file:
        kinds = [k.decode() for k in file["entry/events/kind"][()]]
    assert 1 <= kinds.count("device_state") <= 10
    assert kinds.count("pause") == 2


def test_generator_states_of_128_bits_compare_exactly() -> None:
    """A PCG64 state is a 128-bit integer: numpy's isclose cannot take it (the demo's lifetime
    run failed on it); integers compare exactly, floats within the tolerance."""
    from perovlab_daq.storage.layout import _same_state

    big = 2**127 + 12345
    assert _same_state({"rng": big, "x": 1.0}, {"rng": big, "x": 1.0005}, 1e-3)
    assert not _same_state({"rng": big}, {"rng": big + 1}, 1e-3)
    assert not _same_state({"x": 1.0}, {"x": 1.01}, 1e-3)
