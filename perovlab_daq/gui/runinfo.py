"""What the browser shows of a run file: key figures first, procedure name, sample.

Read from a closed or finished run file opened by ``figures.load_run`` (no Qt), for the
operator window's browser rows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from perovlab_daq.storage import StorageError

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


@dataclass(frozen=True)
class OpenedRun:
    """A run file opened in the browser: what PyMeasure's ``Experiment`` and the views ask.

    A snapshot taken while the file was open (``figures.load_run``); the file is closed
    again at once, so the browser holds no HDF5 handle.
    """

    path: Path
    procedure_name: str
    status: str
    status_reason: str
    procedure: Any

    @property
    def data_filename(self) -> str:
        """The run file's path (PyMeasure's name for it)."""
        return str(self.path)


def figures_text(figures: Mapping[str, Any], limit: int = 3) -> str:
    """Return ``key=value, ...`` of the first ``limit`` figures, :data:`KEY_FIGURES` first."""
    keys = [k for k in KEY_FIGURES if k in figures] + [k for k in figures if k not in KEY_FIGURES]
    parts = []
    for key, value in [(k, figures[k]) for k in keys[:limit]]:
        if isinstance(value, Mapping):
            value = value.get("value", "")
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(parts)


def run_sample(run: Any) -> dict[str, str]:
    """Return the sample and pixel stored in an open run (``OpenRun``; empty if none)."""
    try:
        group = run.file.get("entry/sample")
    except (OSError, StorageError):
        return {}
    if not isinstance(group, h5py.Group):
        return {}
    out = {}
    for key in ("sample", "pixel"):
        if key in group:
            value = group[key][()]
            out[key] = value.decode() if isinstance(value, bytes) else str(value)
    return out
