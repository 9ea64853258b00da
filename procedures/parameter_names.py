"""Parameter names: one name per quantity, and the table of names that were renamed.

Every procedure names a parameter after its quantity, without a unit suffix; the unit is
the parameter's ``units`` (``device_area`` in cm^2, ``compliance_current`` in A,
``dwell`` in s). ``docs/parameters.md`` is the documented table, checked against the
procedures by ``tests/procedures/test_parameter_names.py``.

Files written before the rename store the old names. :data:`RENAMED` maps each old name
to the new one; :func:`canonical_parameters` applies it when a run file's parameters are
read (silently: a file cannot be changed) and when a recipe, a parameter file or
``--set NAME=VALUE`` gives an old name (with a deprecation warning naming the new one).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Old parameter name (with a unit suffix, or another name of the same quantity) -> new name.
RENAMED: dict[str, str] = {
    # jlv
    "start_v": "start_voltage",
    "stop_v": "stop_voltage",
    "changeover_v": "changeover_voltage",
    "fine_step_v": "fine_step",
    "coarse_step_v": "coarse_step",
    "dwell_s": "dwell",
    "prebias_v": "prebias_voltage",
    "prebias_s": "prebias_time",
    "compliance_a": "compliance_current",
    "luminance_limit_cd_m2": "luminance_limit",
    "pd_range_a": "pd_range",
    "device_area_cm2": "device_area",
    "pd_radius_mm": "pd_radius",
    "pd_distance_mm": "pd_distance",
    "el_integration_ms": "el_integration",
    "el_peak_nm": "el_peak",
    "el_fwhm_nm": "el_fwhm",
    # el-spectra
    "compliance_current_a": "compliance_current",
    "compliance_voltage_v": "compliance_voltage",
    "settle_s": "settle_time",
    "integration_time_s": "integration_time",
    "max_integration_time_s": "max_integration_time",
    "window_low_nm": "el_window_low",
    "window_high_nm": "el_window_high",
    # laser procedures (pl-spectrum, pl-fluence, pl-stability, plqy)
    "spot_area_cm2": "spot_area",
    "laser_settle_s": "laser_settle",
    "laser_power_w": "laser_power",
    "power_density_w_cm2": "power_density",
    "pl_window_low_nm": "pl_window_low",
    "pl_window_high_nm": "pl_window_high",
    "power_min_w": "power_min",
    "power_max_w": "power_max",
    "repetition_rate_hz": "repetition_rate",
    "interval_s": "interval",
    "duration_s": "duration",
    "laser_half_width_nm": "laser_half_width",
    "emission_window_low_nm": "emission_window_low",
    "emission_window_high_nm": "emission_window_high",
}


def canonical_name(name: str) -> str:
    """Return the current name of a parameter (``name`` itself unless it was renamed)."""
    return RENAMED.get(name, name)


def canonical_parameters(
    values: Mapping[str, Any], *, known: Mapping[str, Any] | None = None, warn: bool = True
) -> dict[str, Any]:
    """Return ``values`` with renamed parameters under their current names.

    Parameters
    ----------
    values
        Parameter name -> value, as a user or a file gives them.
    known
        The procedure's parameters (name -> anything): an old name is only renamed when
        the procedure has the new one and not the old one; ``None`` renames every old name.
    warn
        Warn (``DeprecationWarning`` and a log warning) for every old name met; off when
        reading a run file, whose names cannot change.

    Raises
    ------
    ValueError
        If a value is given under both the old and the new name.
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        new = RENAMED.get(name)
        if new is None or (known is not None and (name in known or new not in known)):
            out[name] = value
            continue
        if new in values:
            raise ValueError(f"parameter {name!r} is the old name of {new!r}: give only {new!r}")
        if warn:
            message = f"parameter {name!r} is now called {new!r}; the old name will be removed"
            log.warning(message)
            warnings.warn(message, DeprecationWarning, stacklevel=2)
        out[new] = value
    return out
