"""Coherent OBIS CW laser driver (405/445 nm excitation for PL spectra and PLQY).

The OBIS speaks an SCPI-like dialect over a virtual serial port (OBIS LX/LS operator's
manual, "Host interface"). With handshaking on (the default, and switched on here),
every command is acknowledged by an ``OK`` line and every query reply is followed by
one; a rejected command is answered ``ERR-nnn`` instead of ``OK``. This driver consumes
the ``OK`` lines and raises :class:`ObisError` on ``ERR-nnn``.
"""

from __future__ import annotations

import logging
from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from instruments._common import (
    BenchDriverMixin,
    InstrumentCommunicationError,
    StrictRepliesMixin,
)

log = logging.getLogger(__name__)

#: Error codes listed in the OBIS operator's manual (subset the simulator can produce).
OBIS_ERRORS = {
    "ERR-100": "unrecognised command or query",
    "ERR-101": "invalid command",
    "ERR-102": "parameter value out of range",
    "ERR-400": "query unavailable",
    "ERR-500": "CCB fault",
}


class ObisError(RuntimeError):
    """The laser answered ``ERR-nnn`` (code in :attr:`code`)."""

    def __init__(self, code: str, command: str):
        self.code = code
        self.command = command
        meaning = OBIS_ERRORS.get(code, "unknown error")
        super().__init__(f"OBIS rejected {command!r}: {code} ({meaning})")


class ObisCommunicationError(ObisError, InstrumentCommunicationError):
    """The laser's reply broke the ``OK`` handshake (lost or garbled line): worth retrying."""

    def __init__(self, reply: str, command: str):
        self.code = ""
        self.command = command
        RuntimeError.__init__(self, f"OBIS: unexpected reply {reply!r} to {command!r}")


class CoherentObis(BenchDriverMixin, StrictRepliesMixin, Instrument):
    """Coherent OBIS LX/LS laser with the bench laser facade.

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``, see
    :class:`~instruments._common.BenchDriverMixin`. The adapter is a serial port
    such as ``ASRL1::INSTR``.
    """

    DEFAULT_NAME = "Coherent OBIS laser"
    CONNECTION = {
        "read_termination": "\r\n",
        "write_termination": "\r\n",
        "timeout": 3000,
        "asrl": {"baud_rate": 115200},
    }
    SHUTDOWN_STEPS = (("emission off", "emission_enabled", False),)

    def __init__(self, adapter: Any, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(adapter, name, **kwargs)
        # The acknowledgement protocol below relies on handshaking being on.
        self.write("SYST:COMM:HAND ON")

    # -- handshake-aware communication ------------------------------------------------
    def _read_line(self, command: str) -> str:
        line = super().read().strip()
        if line.startswith("ERR-"):
            raise ObisError(line, command)
        return line

    def write(self, command: str, **kwargs: Any) -> None:
        """Send a command; for a non-query also consume its ``OK`` (or raise on ``ERR-nnn``).

        Parameters
        ----------
        command : str
            Command without termination.
        **kwargs
            Passed on to the adapter.
        """
        self._last_command = command
        super().write(command, **kwargs)
        if not command.rstrip().endswith("?"):
            ack = self._read_line(command)
            if ack != "OK":
                raise ObisCommunicationError(ack, command)

    def read(self, **kwargs: Any) -> str:
        """Read one query reply and consume the ``OK`` that follows it.

        Returns
        -------
        str
            The reply line.

        Raises
        ------
        ObisError
            If the laser answered ``ERR-nnn``.
        """
        command = getattr(self, "_last_command", "?")
        reply = self._read_line(command)
        ack = self._read_line(command)
        if ack != "OK":
            raise ObisCommunicationError(ack, command)
        return reply

    # -- properties -------------------------------------------------------------------
    wavelength_nm = Instrument.measurement(
        "SYST:INF:WAV?",
        """Get the nominal emission wavelength in nm (float).""",
    )

    power_limit_low_w = Instrument.measurement(
        "SOUR:POW:LIM:LOW?",
        """Get the lowest settable output power in W (float).""",
    )

    power_limit_high_w = Instrument.measurement(
        "SOUR:POW:LIM:HIGH?",
        """Get the highest settable output power in W (float).""",
    )

    power_setpoint_w = Instrument.control(
        "SOUR:POW:LEV:IMM:AMPL?",
        "SOUR:POW:LEV:IMM:AMPL %g",
        """Control the output power setpoint in W (float strictly from 0 to the laser's
        upper limit, 1 W until :attr:`power_limits_w` has been read).""",
        validator=strict_range,
        values=[0.0, 1.0],
        dynamic=True,
    )

    power_w = Instrument.measurement(
        "SOUR:POW:LEV?",
        """Measure the actual output power in W (float).""",
    )

    emission_enabled = Instrument.control(
        "SOUR:AM:STAT?",
        "SOUR:AM:STAT %s",
        """Control whether laser emission is on (bool).""",
        validator=strict_discrete_set,
        values={True: "ON", False: "OFF"},
        map_values=True,
    )

    operating_mode = Instrument.control(
        "SOUR:AM:SOUR?",
        "SOUR:AM:INT %s",
        """Control the internal operating mode (str strictly 'CWP' constant power or
        'CWC' constant current).""",
        validator=strict_discrete_set,
        values=["CWP", "CWC"],
    )

    interlock_closed = Instrument.measurement(
        "SYST:LOCK?",
        """Get whether the interlock is closed, i.e. emission is allowed (bool).""",
        values={True: "ON", False: "OFF"},
        map_values=True,
    )

    fault_code = Instrument.measurement(
        "SYST:FAUL?",
        """Get the fault register as an integer (int, 0 means no fault; the laser
        prints it in hexadecimal).""",
        cast=str,
        get_process=lambda v: int(str(v).strip(), 16),
    )

    @property
    def power_limits_w(self) -> tuple[float, float]:
        """Get the settable power range (low, high) in W and apply it to the setpoint check."""
        low, high = float(self.power_limit_low_w), float(self.power_limit_high_w)
        self.power_setpoint_w_values = [low, high]
        return low, high

    def set_cw_power_mode(self) -> None:
        """Select constant-power CW operation (``SOUR:AM:INT CWP``)."""
        self.operating_mode = "CWP"

    def snapshot(self) -> dict[str, Any]:
        """Return the settings worth recording with every run.

        Returns
        -------
        dict
            Identity, wavelength, power limits, setpoint, mode, emission and interlock.
        """
        low, high = self.power_limits_w
        return {
            "identity": self.identity,
            "wavelength_nm": self.wavelength_nm,
            "power_limit_low_w": low,
            "power_limit_high_w": high,
            "power_setpoint_w": self.power_setpoint_w,
            "operating_mode": self.operating_mode,
            "emission_enabled": self.emission_enabled,
            "interlock_closed": self.interlock_closed,
            "fault_code": self.fault_code,
        }
