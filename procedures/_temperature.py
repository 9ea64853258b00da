"""Device temperature during a run: the optional ``thermometer`` role, read with each point.

A lifetime channel may have a thermometer on the device (a Keithley 2000 reading a Pt100,
``instruments.keithley2000``, or any driver with ``configure_rtd(nplc)`` and
``read_temperature_c()``). Without one the ``temperature`` column holds NaN, so every row
has the column and a file says plainly that nothing was measured.
"""

from __future__ import annotations

import logging
import math
from typing import Any

log = logging.getLogger(__name__)

ROLE = "thermometer"


def open_thermometer(procedure: Any, nplc: float = 1.0) -> Any:
    """Return the procedure's thermometer, configured, or None when the bench has none."""
    if not procedure.has_role(ROLE):
        return None
    thermometer = procedure.bench.get(ROLE)
    procedure.call_with_retry(
        lambda: thermometer.configure_rtd(nplc=nplc), "thermometer configure", role=ROLE
    )
    return thermometer


def read_temperature_c(procedure: Any, thermometer: Any) -> float:
    """Return one temperature reading (C), NaN without a thermometer; retried like any read."""
    if thermometer is None:
        return math.nan
    return float(
        procedure.call_with_retry(thermometer.read_temperature_c, "thermometer read", role=ROLE)
    )
