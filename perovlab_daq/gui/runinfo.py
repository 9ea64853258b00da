"""What the browser shows of a run file: key figures first, procedure name, sample.

Read from a closed or finished run file with h5py (no Qt), for the operator window's
browser rows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import h5py

from perovlab_daq.storage import HDF5Results

log = logging.getLogger(__name__)

#: Figures shown first in the browser when a run has them.
KEY_FIGURES = (
    "t95_h",
    "t90_h",
    "t50_h",
    "max_luminance_cd_m2",
    "peak_eqe_pct",
    "turn_on_voltage_v",
    "plqy_pct",
    "power_law_exponent",
    "peak_wavelength_nm",
    "fwhm_nm",
)


def figures_text(figures: Mapping[str, Any], limit: int = 3) -> str:
    """Return ``key=value, ...`` of the first ``limit`` figures, :data:`KEY_FIGURES` first."""
    keys = [k for k in KEY_FIGURES if k in figures] + [k for k in figures if k not in KEY_FIGURES]
    parts = []
    for key, value in [(k, figures[k]) for k in keys[:limit]]:
        if isinstance(value, Mapping):
            value = value.get("value", "")
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(parts)


def file_procedure_name(path: str, results: HDF5Results) -> str:
    """Return the procedure name of a run file (its class, else ``entry/@procedure``)."""
    name = getattr(type(results.procedure), "NAME", "") or ""
    if name:
        return name
    try:
        with h5py.File(path, "r", swmr=True, locking=False) as file:
            value = file["entry"].attrs.get("procedure", "")
    except (OSError, KeyError):
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def file_sample(path: str) -> dict[str, str]:
    """Return the sample and pixel stored in a run file (empty if unreadable)."""
    try:
        with h5py.File(path, "r", locking=False) as file:
            group = file.get("entry/sample")
            if group is None:
                return {}
            out = {}
            for key in ("sample", "pixel"):
                if key in group:
                    value = group[key][()]
                    out[key] = value.decode() if isinstance(value, bytes) else str(value)
            return out
    except OSError:
        return {}
