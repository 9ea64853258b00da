"""Shared reading types, error classes and safety helpers of the drivers in :mod:`instruments`.

Readings are small frozen dataclasses so procedures and storage see the same fields
whichever instrument produced them. :class:`InstrumentCommunicationError` and
:func:`is_transient_error` are the one definition of a *transient* instrument fault (a
timeout, a lost or garbled reply, an I/O error on the bus): the kind an unattended run
retries (``procedures.base.DaqProcedure.call_with_retry``), as opposed to an instrument
refusing a setting, which retrying cannot fix.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Value a Keithley SMU reports for an element it did not measure (2400 manual, :FORM:ELEM).
NOT_MEASURED = 9.91e37
#: Value a Keithley picoammeter reports for an overflowed reading (6485/6487 manuals).
OVERFLOW = 9.9e37
#: Status-word bit of the 2400 that is set while the source is in compliance.
COMPLIANCE_BIT = 1 << 3


class InstrumentCommunicationError(Exception):
    """Talking to an instrument failed in a way worth retrying.

    Drivers raise a subclass of this (usually together with their own error class, e.g.
    ``class SpectrometerCommunicationError(SpectrometerError, InstrumentCommunicationError)``)
    for timeouts, lost or garbled replies and bus I/O errors. An instrument that answers
    but refuses a command (``ERR-102``, ``Command error``) raises a plain driver error.
    """


class GarbledReplyError(InstrumentCommunicationError, ValueError):
    """A reply could not be decoded: bytes were lost or corrupted on the way."""


class StrictRepliesMixin:
    """Make pymeasure's ``values()`` refuse a garbled number instead of passing it on.

    pymeasure keeps an element it cannot cast as a string, so ``meter.power_w`` would
    return ``'9.99E&0%'`` and the caller's ``float()`` would fail outside any retry.
    An element that fails its cast and contains a digit was meant to be a number: this
    raises :class:`GarbledReplyError` (transient, so the query is retried). Elements
    without digits (``ON``, ``CWP``, quoted SCPI error texts) are left to pymeasure.
    Put it before ``Instrument`` in the bases of a driver.
    """

    def values(self, command: str, *args: Any, **kwargs: Any) -> list[Any]:  # noqa: D102
        results = super().values(command, *args, **kwargs)  # type: ignore[misc]
        cast = kwargs.get("cast", args[1] if len(args) > 1 else float)
        if cast is not str:
            for element in results:
                if isinstance(element, str) and any(ch.isdigit() for ch in element):
                    raise GarbledReplyError(
                        f"{getattr(self, 'name', 'instrument')}: unreadable reply to "
                        f"{command!r}: {element!r}"
                    )
        return results


class LeanQueryMixin:
    """One query per reading with a lean parse, for the per-point paths of a driver.

    pymeasure's ``values()`` goes ``values -> ask -> write -> adapter.write``, then
    ``wait_for``, ``read -> adapter.read``, and every attribute of an instrument passes
    through ``CommonBase.__getattribute__`` (a Python call plus a ``hasattr``): about
    17 such lookups per J-L-V point, ~20 us. These methods send the same messages through
    the same adapter (so pymeasure's protocol tests and its message log still see every
    command) with one attribute lookup. Only for drivers that do not override
    ``write``/``read``/``ask``. Put it before ``Instrument`` in the bases of a driver.
    """

    def query_reply(self, command: str) -> str:
        """Write ``command`` and return the reply (what ``ask`` does with no query delay).

        Parameters
        ----------
        command : str
            The query, without termination.

        Returns
        -------
        str
            The reply without read termination.
        """
        adapter = self.adapter  # type: ignore[attr-defined]
        adapter.write(command)
        return adapter.read()

    def query_numbers(self, command: str) -> list[float]:
        """Send ``command`` and parse a comma-separated reply of numbers strictly.

        Parameters
        ----------
        command : str
            The query, without termination.

        Returns
        -------
        list of float
            Every element of the reply, as a number.

        Raises
        ------
        GarbledReplyError
            If an element is not a number (bytes lost or corrupted on the way; transient).
        """
        reply = self.query_reply(command)
        try:
            return [float(element) for element in reply.split(",")]
        except ValueError:
            raise GarbledReplyError(
                f"{getattr(self, 'name', 'instrument')}: unreadable reply to {command!r}: {reply!r}"
            ) from None


def is_transient_error(exc: BaseException) -> bool:
    """Return whether ``exc`` is a transient instrument fault that a retry may cure.

    Transient: :class:`InstrumentCommunicationError` (and driver subclasses), PyVISA's
    ``VisaIOError`` (timeouts, I/O errors, a device off the bus), other ``OSError`` (a
    serial port that hiccups) and the errors a garbled reply produces when it is decoded
    (``ValueError``; pymeasure's ``KeyError`` "not found in mapped values").
    Not transient: anything else, and any exception whose class sets ``transient = False``
    (``perovlab_daq.storage.StorageError``, ``procedures.base.ParameterError``).

    Parameters
    ----------
    exc : BaseException
        The exception an instrument call raised.

    Returns
    -------
    bool
        True if retrying the call makes sense.
    """
    if isinstance(exc, InstrumentCommunicationError):
        return True
    if getattr(exc, "transient", None) is False:
        return False
    if not isinstance(exc, Exception):
        return False  # KeyboardInterrupt, SystemExit: never swallowed by a retry
    try:
        from pyvisa.errors import VisaIOError
    except ImportError:  # pragma: no cover - pyvisa is a hard dependency
        VisaIOError = OSError  # noqa: N806
    if isinstance(exc, VisaIOError | OSError | ValueError):
        return True
    return isinstance(exc, KeyError) and "not found in mapped values" in str(exc)


@dataclass(frozen=True)
class SourceMeterReading:
    """One ``:READ?`` of a source meter.

    Attributes
    ----------
    voltage_v : float
        Measured (or sourced) voltage in V; NaN if not measured.
    current_a : float
        Measured current in A; NaN if not measured.
    time_s : float
        Instrument timestamp in s (since its timer was reset).
    status : int
        Raw status word.
    in_compliance : bool
        True when the status word has the compliance bit (bit 3) set.
    """

    voltage_v: float
    current_a: float
    time_s: float
    status: int
    in_compliance: bool


@dataclass(frozen=True)
class PhotodetectorReading:
    """One photocurrent reading.

    Attributes
    ----------
    current_a : float
        Photocurrent in A; NaN when the reading overflowed.
    overflow : bool
        True when the instrument reported an overflow (or compliance, for an SMU).
    """

    current_a: float
    overflow: bool


def not_measured_to_nan(value: float) -> float:
    """Return NaN for the Keithley "not measured"/overflow sentinels, else the value.

    Parameters
    ----------
    value : float
        Raw number from the instrument.

    Returns
    -------
    float
        ``value``, or NaN if it is at or above 9.9e37.
    """
    return math.nan if abs(value) >= OVERFLOW else value


def parse_float(text: str) -> float:
    """Parse a number the way Keithley picoammeters print it (optional unit suffix ``A``).

    Parameters
    ----------
    text : str
        One element such as ``"+1.234E-09A"``.

    Returns
    -------
    float
        The number without unit.
    """
    return float(text.strip().rstrip("AVSs"))


def shutdown_step(name: str, step: str, action: Callable[[], Any]) -> bool:
    """Run one shutdown step, logging instead of raising (shutdown must never raise).

    Parameters
    ----------
    name : str
        Instrument name, for the log.
    step : str
        What the step does, for the log.
    action : callable
        The step itself.

    Returns
    -------
    bool
        True if the step succeeded.
    """
    try:
        action()
    except Exception:  # noqa: BLE001 - shutdown must never raise, whatever went wrong
        log.exception("%s: shutdown step %r failed", name, step)
        return False
    return True


class SourceMeterFacadeMixin:
    """The settings snapshot and safe shutdown shared by the source-meter drivers.

    The drivers (2400, 2450) declare the same facade properties (``source_mode``,
    ``source_voltage``, ``source_current``, ``compliance_current``, ``compliance_voltage``,
    ``current_nplc``, ``output_enabled``, ``identity``) with their own commands; what is
    recorded and how the output is switched off is the same for all of them.
    """

    def snapshot(self) -> dict[str, Any]:
        """Return the settings worth recording with every run.

        Returns
        -------
        dict
            Identity, source mode, source levels, compliances, NPLC and output state.
        """
        return {
            "identity": self.identity,
            "source_mode": self.source_mode,
            "source_voltage_v": self.source_voltage,
            "source_current_a": self.source_current,
            "compliance_current_a": self.compliance_current,
            "compliance_voltage_v": self.compliance_voltage,
            "nplc": self.current_nplc,
            "output_enabled": self.output_enabled,
        }

    def shutdown(self) -> None:
        """Switch the output off; never raises (failures are logged)."""
        shutdown_step(self.name, "output off", lambda: setattr(self, "output_enabled", False))
        self.isShutdown = True
        log.info("%s shut down", self.name)
