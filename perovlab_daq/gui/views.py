"""What each procedure family's tab shows: its plots, axes with units and reference lines.

Pure data (:class:`ViewSpec` of :class:`~perovlab_daq.gui.curves.PlotSpec`); the tab
widget that draws it is :class:`perovlab_daq.gui.plots.ProcedureView`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from perovlab_daq.run_progress import LIFETIME_LEVELS  # reference lines of the lifetime plot

from .curves import AxisSpec, PlotSpec

log = logging.getLogger(__name__)

#: Placeholder columns of the tab for procedures this program does not know.
GENERIC_COLUMNS = ("__first__", "__second__")


@dataclass
class ViewSpec:
    """What a procedure's tab shows."""

    name: str
    procedures: tuple[str, ...]
    plots: tuple[PlotSpec, ...]
    spectra: bool = True
    lifetime: bool = False
    symbols: bool = False
    columns_per_row: int = 3
    extra: dict[str, Any] = field(default_factory=dict)


def _hours(column: str, label: str, log: bool = False) -> AxisSpec:
    return AxisSpec(column, label, "h", factor=1 / 3600.0, log=log)


#: Tabs of one plot drawn with symbols (a point per spectrum or configuration):
#: (tab name, procedure, plot key, plot title, x axis, y axis).
POINT_VIEWS: tuple[tuple[str, str, str, str, AxisSpec, AxisSpec], ...] = (
    (
        "EL spectra",
        "el-spectra",
        "integrated",
        "Integrated EL",
        AxisSpec("current_density", "|J|", "mA/cm^2", absolute=True),
        AxisSpec("integrated_el", "Integrated EL", "a.u."),
    ),
    (
        "PL fluence",
        "pl-fluence",
        "power_law",
        "PL against excitation power",
        AxisSpec("excitation_power", "Excitation power", "W", log=True),
        AxisSpec("integrated_pl", "Integrated PL", "a.u.", log=True),
    ),
    (
        "PL spectrum",
        "pl-spectrum",
        "integrated",
        "Integrated PL per spectrum",
        AxisSpec("time", "Time", "s"),
        AxisSpec("integrated_pl", "Integrated PL", "a.u."),
    ),
    (
        "PL stability",
        "pl-stability",
        "relative",
        "PL against time",
        AxisSpec("time", "Time", "s"),
        AxisSpec("relative_intensity", "PL/PL0", ""),
    ),
    (
        "PLQY",
        "plqy",
        "laser",
        "Laser band per configuration",
        AxisSpec("time", "Time", "s"),
        AxisSpec("laser_band_integral", "Laser band", "a.u."),
    ),
)


def view_specs(log_time: bool = False) -> list[ViewSpec]:
    """Return the tab of every procedure (lifetime's time axis linear or log)."""
    voltage = AxisSpec("voltage", "Voltage", "V")
    j_log = AxisSpec("current_density", "|J|", "mA/cm^2", absolute=True, log=True)
    device_time = _hours("device_time", "Device time", log=log_time)
    jlv = ViewSpec(
        "J-L-V",
        ("jlv",),
        (
            PlotSpec("jv", "J-V", voltage, j_log),
            PlotSpec("lv", "L-V", voltage, AxisSpec("luminance", "Luminance", "cd/m^2", log=True)),
            PlotSpec("eqe", "EQE-J", j_log, AxisSpec("eqe", "EQE", "%")),
        ),
    )
    lifetime = ViewSpec(
        "Lifetime",
        ("lifetime",),
        (
            PlotSpec(
                "relative",
                "L/L0 against time",
                device_time,
                AxisSpec("relative_luminance", "L/L0", ""),
                lines=LIFETIME_LEVELS,
            ),
            PlotSpec("voltage", "Voltage against time", device_time, voltage),
        ),
        lifetime=True,
        columns_per_row=2,
    )
    points = [
        ViewSpec(name, (procedure,), (PlotSpec(key, title, x, y),), symbols=True)
        for name, procedure, key, title, x, y in POINT_VIEWS
    ]
    generic = ViewSpec(
        "Other runs",
        ("*",),
        (
            PlotSpec(
                "generic",
                "Second column against first",
                AxisSpec(GENERIC_COLUMNS[0], "First column", "see file"),
                AxisSpec(GENERIC_COLUMNS[1], "Second column", "see file"),
            ),
        ),
    )
    return [jlv, lifetime, *points, generic]
