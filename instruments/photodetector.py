"""Second source meter held at 0 V as a photodiode readout (alternative to a picoammeter).

Wraps :class:`instruments.keithley2400.Keithley2400` and exposes the photodetector facade
of ``docs/architecture.md`` §2. Overflow here means the SMU hit its compliance.
"""

from __future__ import annotations

import logging
from typing import Any

from perovlab_daq.instruments._common import PhotodetectorReading, set_current_range, shutdown_step
from perovlab_daq.instruments.keithley2400 import Keithley2400

log = logging.getLogger(__name__)


class SourceMeterPhotodetector:
    """A Keithley 2400 sourcing 0 V across a photodiode and measuring its current.

    Parameters
    ----------
    adapter : str or pymeasure Adapter
        VISA resource name or adapter of the SMU.
    name : str
        Human-readable name used in logs.
    compliance_current_a : float
        Current compliance in A while at 0 V (also the overflow threshold).
    **kwargs
        Passed on to :class:`~instruments.keithley2400.Keithley2400`.
    """

    def __init__(
        self,
        adapter: Any,
        name: str = "SMU photodetector",
        compliance_current_a: float = 0.01,
        **kwargs: Any,
    ):
        self.name = name
        self.compliance_current_a = compliance_current_a
        self.smu = Keithley2400(adapter, name=name, **kwargs)

    @property
    def adapter(self) -> Any:
        """Get the adapter of the wrapped SMU (pymeasure Adapter)."""
        return self.smu.adapter

    def configure(self, nplc: float = 1.0, current_range_a: float | None = None) -> None:
        """Source 0 V, measure current with the given NPLC and range, switch the output on.

        Parameters
        ----------
        nplc : float
            Integration time in power-line cycles (0.01 to 10).
        current_range_a : float or None
            Fixed current range in A (up to 1.05), or None for auto-range.
        """
        self.smu.apply_voltage_source(self.compliance_current_a, nplc)
        self.smu.source_voltage = 0.0
        set_current_range(self.smu, current_range_a)
        self.smu.output_enabled = True

    def read_current(self) -> PhotodetectorReading:
        """Read the photocurrent with one ``:READ?``.

        Returns
        -------
        PhotodetectorReading
            Current in A and whether the SMU was in compliance (overflow).
        """
        reading = self.smu.read_all()
        overflow = reading.in_compliance
        current = float("nan") if overflow else reading.current_a
        return PhotodetectorReading(current_a=current, overflow=overflow)

    @property
    def identity(self) -> str:
        """Get the ``*IDN?`` answer of the SMU (str)."""
        return self.smu.identity

    def snapshot(self) -> dict[str, Any]:
        """Return the SMU settings worth recording with every run.

        Returns
        -------
        dict
            The SMU snapshot plus the compliance used as overflow threshold.
        """
        snap = self.smu.snapshot()
        snap["overflow_compliance_a"] = self.compliance_current_a
        return snap

    def shutdown(self) -> None:
        """Switch the SMU output off; never raises."""
        shutdown_step(self.name, "smu shutdown", self.smu.shutdown)
