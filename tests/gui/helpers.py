"""Helpers of the operator-window tests: short parameters, queueing from the window."""

from __future__ import annotations

#: Short runs (a few seconds each) of every procedure on the simulated bench.
TEST_PARAMETERS = {
    "jlv": {"dwell": 0.0, "direction": "both", "coarse_step": 0.25},
    "lifetime": {
        "current_density": 20.0,
        # device s (x1000 on the simulated bench): 4 s of wall time
        "first_interval": 20.0,
        "interval": 100.0,
        "spectrum_interval": 1000.0,
        "dark_settle": 0.05,
        "dark_readings": 2,
        "max_duration": 4000.0,
    },
    "el-spectra": {"levels": "4, 8", "settle_time": 0.02},
    "pl-spectrum": {"laser_power": 0.005, "repeats": 2},
    "pl-fluence": {"steps": 4},
    "pl-stability": {"duration": 180.0, "interval": 60.0, "laser_power": 0.1},  # device s
    "plqy": {},
}


def queue_run(window, name, **overrides):
    """Select ``name``, put the short test parameters in its inputs and press Queue."""
    window.select_procedure(name)
    values = dict(TEST_PARAMETERS[name])
    values.update(overrides)
    window.set_inputs(values)
    before = len(window.manager.experiments.queue)
    window.queue_button.click()
    assert len(window.manager.experiments.queue) == before + 1, window.warnings
    return window.manager.experiments.queue[-1]
