"""Run files made without instruments, for tests, benchmarks and trying out an analysis.

Like ``pymeasure.test``, this ships with the package so that tests, benchmarks and a
user's own notebooks fabricate run files the same way, through the real storage back end.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def write_synthetic_lifetime_run(
    path: str | Path,
    rows: int,
    tau_device_s: float,
    *,
    beta: float = 0.7,
    noise: float = 1e-3,
    seed: int = 0,
    ageing_acceleration: float = 1e4,
) -> Path:
    """Write a ``lifetime`` run file: a noisy stretched-exponential decay at 20 mA/cm^2.

    Parameters
    ----------
    path
        The new run file.
    rows
        Number of samples, evenly spread over 20 s of wall time.
    tau_device_s
        Stretched-exponential time constant in device seconds.
    beta
        Stretched-exponential exponent.
    noise
        Relative Gaussian noise on the luminance.
    seed
        Noise seed.
    ageing_acceleration
        Recorded in the metadata; device time = wall time x this.

    Returns
    -------
    Path
        ``path``, closed and marked finished.
    """
    from perovlab_daq.procedures.lifetime import LifetimeProcedure
    from perovlab_daq.storage import HDF5Results

    rng = np.random.default_rng(seed)
    results = HDF5Results(
        LifetimeProcedure(),
        path,
        metadata={"ageing_acceleration": ageing_acceleration, "simulated": True},
    )
    wall = np.linspace(0.0, 20.0, rows)
    device = wall * ageing_acceleration
    relative = np.exp(-((device / tau_device_s) ** beta)) * (1 + noise * rng.standard_normal(rows))
    constant = np.ones(rows)
    results.append_rows(
        {
            "time": wall,
            "device_time": device,
            "voltage": 3.1 * constant,
            "current": 1.8e-3 * constant,
            "current_density": 20.0 * constant,
            "photocurrent": 1e-7 * relative,
            "luminance": 914.0 * relative,
            "relative_luminance": relative,
            "dark_current": 2e-12 * constant,
            "in_compliance": 0 * constant,
            "jlv_sweep": 0 * constant,
            "segment": 0 * constant,
        }
    )
    results.close()
    return Path(path)
