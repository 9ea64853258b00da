"""Coherent OBIS CW laser driver (405/445 nm excitation for PL spectra and PLQY).

The OBIS speaks an SCPI-like dialect over a virtual serial port (OBIS LX/LS operator's
manual, "Host interface"). With handshaking on (the default, and switched on here),
every command is acknowledged by an ``OK`` line and every query reply is followed by
one; a rejected command is answered ``ERR-nnn`` instead of ``OK``. This driver consumes
the ``OK`` lines and raises :class:`ObisError` on ``ERR-nnn``.

Start-up and shut-down follow the manual (REFERENCE §6 "laser start-up"):
:meth:`CoherentObis.start_emission` checks the interlock and the fault register, sets the
power, switches emission on, allows for the CDRH delay and waits until the output power
is stable; :meth:`CoherentObis.stop_emission` switches emission off and reads it back.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from perovlab_daq.instruments._common import (
    BenchDriverMixin,
    InstrumentCommunicationError,
    StrictRepliesMixin,
    is_transient_error,
)
from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range

log = logging.getLogger(__name__)

#: Error codes listed in the OBIS operator's manual (subset the simulator can produce).
OBIS_ERRORS = {
    "ERR-100": "unrecognised command or query",
    "ERR-101": "invalid command",
    "ERR-102": "parameter value out of range",
    "ERR-400": "query unavailable",
    "ERR-500": "CCB fault",
}


#: Fault register bits (``SYST:FAUL?``, printed in hex). Source: the fault-code table of the
#: OBIS LX/LS operator's manual as transcribed in a public open-source C++ OBIS driver
#: (``obis.h``, enum ``FaultBits``, found with the code search of this project); the manual
#: itself was not at hand, so check a unit's own manual before relying on a bit's meaning.
#: Unknown bits are reported as ``bit 0x...`` and never hidden.
OBIS_FAULT_BITS = {
    0x000001: "base plate temperature out of range",
    0x000002: "diode temperature out of range",
    0x000004: "internal temperature out of range",
    0x000008: "no electrical power to the laser diode",
    0x000010: "I2C bus error",
    0x000020: "diode over-current",
    0x000040: "EEPROM checksum error",
    0x000080: "EEPROM restored to defaults",
    0x000100: "message buffer overflow",
    0x000200: "warm-up time limit exceeded",
    0x000400: "TEC driver error",
    0x000800: "CCB error",
    0x001000: "diode temperature limit error",
    0x002000: "laser ready fault",
    0x004000: "photodiode fault",
    0x008000: "fatal fault",
    0x010000: "start-up fault",
    0x020000: "watchdog timer reset",
    0x040000: "field calibration error",
    0x100000: "over power",
}

#: Delay between ``SOUR:AM:STAT ON`` and light with CDRH mode on (US CDRH rule for
#: class 3B/4 lasers; REFERENCE §6 "about 5 s"). Shipped OBIS units have CDRH mode on.
CDRH_DELAY_S = 5.0


def decode_faults(code: int) -> list[str]:
    """Return the names of the fault bits set in ``code`` (empty for 0).

    Parameters
    ----------
    code : int
        ``SYST:FAUL?`` register value.

    Returns
    -------
    list of str
        One name per set bit, lowest bit first; unknown bits as ``"bit 0x..."``.
    """
    names = []
    bit = 1
    while bit <= code:
        if code & bit:
            names.append(OBIS_FAULT_BITS.get(bit, f"bit 0x{bit:X}"))
        bit <<= 1
    return names


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


class ObisStartError(RuntimeError):
    """Emission was not started: interlock open, a fault, or emission not confirmed on."""


class ObisPowerTimeout(ObisStartError):
    """The output power did not become stable within the timeout after emission on."""


class ObisEmissionStillOn(RuntimeError):
    """``SOUR:AM:STAT OFF`` was sent but the laser still reports emission on."""


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

    cdrh_enabled = Instrument.measurement(
        "SYST:CDRH?",
        """Get whether CDRH mode is on (bool): emission then starts only about 5 s
        (:data:`CDRH_DELAY_S`) after ``SOUR:AM:STAT ON``.""",
        values={True: "ON", False: "OFF"},
        map_values=True,
    )

    @property
    def faults(self) -> list[str]:
        """Get the names of the active faults (list of str, empty when there is none)."""
        return decode_faults(int(self.fault_code))

    @property
    def power_limits_w(self) -> tuple[float, float]:
        """Get the settable power range (low, high) in W and apply it to the setpoint check."""
        low, high = float(self.power_limit_low_w), float(self.power_limit_high_w)
        self.power_setpoint_w_values = [low, high]
        return low, high

    def set_cw_power_mode(self) -> None:
        """Select constant-power CW operation (``SOUR:AM:INT CWP``)."""
        self.operating_mode = "CWP"

    # -- start-up and shut-down (REFERENCE §6 "laser start-up") ---------------------------
    def check_ready(self) -> None:
        """Refuse to start emission with the interlock open or a fault active.

        Raises
        ------
        ObisStartError
            Naming the open interlock or every active fault (with the raw code).
        """
        if not self.interlock_closed:
            raise ObisStartError(
                "OBIS interlock open (SYST:LOCK? OFF): close the enclosure/interlock loop"
            )
        code = int(self.fault_code)
        if code:
            raise ObisStartError(
                f"OBIS reports fault 0x{code:08X} (SYST:FAUL?): {', '.join(decode_faults(code))}"
            )

    def start_emission(
        self,
        power_w: float,
        *,
        stable_tolerance: float = 0.02,
        timeout_s: float = 10.0,
        poll_s: float = 0.05,
        consecutive: int = 3,
        regulated_min_w: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> float:
        """Leave standby as the manual says and return the stable output power (W).

        Sequence: interlock and faults checked (:meth:`check_ready`); setpoint set;
        ``SOUR:AM:STAT ON`` sent and read back; ``SYST:CDRH?`` read: with CDRH mode on no
        light is expected for :data:`CDRH_DELAY_S`, so that delay is added to the wait;
        ``SOUR:POW:LEV?`` polled every ``poll_s`` until ``consecutive`` readings in a row
        are within ``stable_tolerance`` (relative) of the setpoint. Below
        ``regulated_min_w`` the laser does not regulate to the setpoint, so there the
        readings must instead agree with each other within the tolerance (a plateau,
        above zero). The wait ends at once when power is stable: the CDRH delay is an
        upper bound on the dark time, not a fixed sleep. On any failure after emission
        was switched on, emission is switched off again before the error propagates.

        Parameters
        ----------
        power_w : float
            Power setpoint (W).
        stable_tolerance : float
            Relative tolerance of a stable reading.
        timeout_s : float
            Longest wait for stability (s), on top of the CDRH delay when CDRH is on.
        poll_s : float
            Interval between power readings (s).
        consecutive : int
            Readings in a row that must be within tolerance.
        regulated_min_w : float
            Lowest setpoint the laser regulates to (W); 0 to always compare with it.
        clock, sleep : callable
            Monotonic clock and sleep (inject fakes in tests).

        Returns
        -------
        float
            Mean of the stable readings (W).

        Raises
        ------
        ObisStartError
            Interlock open, a fault active, or emission not confirmed on.
        ObisPowerTimeout
            Power not stable in time (names setpoint, last reading and tolerance).
        """
        self.check_ready()
        self.power_setpoint_w = power_w
        cdrh = bool(self.cdrh_enabled)
        self.emission_enabled = True
        try:
            if not self.emission_enabled:
                raise ObisStartError("OBIS: SOUR:AM:STAT ON sent but emission reads back OFF")
            return self.wait_for_stable_power(
                power_w,
                stable_tolerance=stable_tolerance,
                timeout_s=timeout_s + (CDRH_DELAY_S if cdrh else 0.0),
                poll_s=poll_s,
                consecutive=consecutive,
                regulated_min_w=regulated_min_w,
                clock=clock,
                sleep=sleep,
            )
        except BaseException:
            try:
                self.stop_emission()
            except Exception as exc:  # noqa: BLE001 - the original error matters more
                log.error("OBIS emission off after a failed start: %s", exc)
            raise

    def wait_for_stable_power(
        self,
        setpoint_w: float,
        *,
        stable_tolerance: float = 0.02,
        timeout_s: float = 10.0,
        poll_s: float = 0.05,
        consecutive: int = 3,
        regulated_min_w: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> float:
        """Poll ``SOUR:POW:LEV?`` until the power is stable; return the mean of the stable readings.

        Used by :meth:`start_emission` and after a setpoint change while emitting; the
        parameters are those of :meth:`start_emission` (``timeout_s`` here is the whole
        wait, CDRH delay included).

        Raises
        ------
        ObisPowerTimeout
            Naming the setpoint, the last reading and the tolerance.
        """
        started = clock()
        plateau = setpoint_w < regulated_min_w
        recent: list[float] = []
        reading = math.nan
        while True:
            try:
                reading = float(self.power_w)
            except Exception as exc:
                # A lost or garbled reading is a missed poll (the timeout still bounds the
                # wait); anything else is a real error.
                if not is_transient_error(exc):
                    raise
                log.warning("OBIS power reading lost while waiting for stability: %s", exc)
                recent = []
                if clock() - started > timeout_s:
                    raise
                sleep(poll_s)
                continue
            recent = [*recent, reading][-consecutive:]
            if len(recent) == consecutive and _stable(
                recent, setpoint_w, stable_tolerance, plateau
            ):
                stable = sum(recent) / len(recent)
                log.info(
                    "OBIS power stable: %.4g W (setpoint %.4g W) after %.2f s",
                    stable,
                    setpoint_w,
                    clock() - started,
                )
                return stable
            if clock() - started > timeout_s:
                raise ObisPowerTimeout(
                    f"OBIS power not stable after {timeout_s:.1f} s: setpoint {setpoint_w:.4g} W, "
                    f"last reading {reading:.4g} W, tolerance {stable_tolerance:.1%}"
                    + (" (plateau below the regulated minimum)" if plateau else "")
                )
            sleep(poll_s)

    def stop_emission(self) -> None:
        """Switch emission off (``SOUR:AM:STAT OFF``) and confirm it by reading it back.

        Raises
        ------
        ObisEmissionStillOn
            If the laser still reports emission on.
        """
        self.emission_enabled = False
        if self.emission_enabled:
            log.error("OBIS still reports emission ON after SOUR:AM:STAT OFF")
            raise ObisEmissionStillOn("OBIS still reports emission ON after SOUR:AM:STAT OFF")

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
            "cdrh_enabled": self.cdrh_enabled,
        }


def _stable(readings: list[float], setpoint_w: float, tolerance: float, plateau: bool) -> bool:
    """Return whether power readings are stable: near the setpoint, or a plateau above 0."""
    if plateau:
        mean = sum(readings) / len(readings)
        return mean > 0 and all(abs(r - mean) <= tolerance * mean for r in readings)
    return all(abs(r - setpoint_w) <= tolerance * setpoint_w for r in readings)
