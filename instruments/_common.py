"""Shared base class, property specs, reading types and errors of the drivers in :mod:`instruments`.

:class:`BenchDriverMixin` (and :class:`ScpiDriver`, the usual base of a SCPI driver) holds
what every driver does the same way: constructor defaults, ``identity``, ``snapshot()`` and
a ``shutdown()`` that never raises. A driver only declares its own data: its name, its
connection settings, what its snapshot records and which settings its shutdown changes.
Readings are small named tuples (immutable) so procedures and storage see the same fields
whichever instrument produced them. :class:`InstrumentCommunicationError` and
:func:`is_transient_error` are the one definition of a *transient* instrument fault (a
timeout, a lost or garbled reply, an I/O error on the bus): the kind an unattended run
retries (``procedures.base.DaqProcedure.call_with_retry``), as opposed to an instrument
refusing a setting, which retrying cannot fix.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, ClassVar, NamedTuple

from pymeasure.adapters import VISAAdapter
from pymeasure.instruments import Instrument, SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set, strict_range

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


#: Attributes of a bench driver read at every point of a sweep or lifetime run.
LEAN_ATTRIBUTES = frozenset(
    {"adapter", "query_reply", "query_numbers", "read_all", "read_current", "name"}
)


class LeanQueryMixin:
    """One query per reading with a lean parse, for the per-point paths of a driver.

    pymeasure's ``values()`` goes ``values -> ask -> write -> adapter.write``, then
    ``wait_for``, ``read -> adapter.read``, and every attribute of an instrument passes
    through ``CommonBase.__getattribute__`` (a Python call plus a ``hasattr``): about
    17 such lookups per J-L-V point, ~20 us. These methods send the same messages through
    the same adapter (so pymeasure's protocol tests and its message log still see every
    command) with one attribute lookup. Only for drivers that do not override
    ``write``/``read``/``ask``. Put it before ``Instrument`` in the bases of a driver.

    The attributes read at every point (:data:`LEAN_ATTRIBUTES`) skip pymeasure's
    reserved-name check, which makes each lookup three Python calls (~1 us): none of
    them is a reserved dynamic-property name (``*_values``, ``*_map``...).
    """

    def __getattribute__(self, name: str) -> Any:
        if name in LEAN_ATTRIBUTES:
            return object.__getattribute__(self, name)
        return super().__getattribute__(name)

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
        if type(adapter) is not VISAAdapter:
            adapter.write(command)
            return adapter.read()
        # What VISAAdapter.write and .read do, message log included, without their two
        # layers of calls each (this runs at every point of a sweep).
        connection, log_debug = adapter.connection, adapter.log.debug
        log_debug("WRITE:%s", command)
        connection.write(command)
        reply = connection.read()
        log_debug("READ:%s", reply)
        return reply

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


class SourceMeterReading(NamedTuple):
    """One ``:READ?`` of a source meter.

    A named tuple: one is made at every point, at 0.7 us against 1.6 us for a frozen
    dataclass.

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


class PhotodetectorReading(NamedTuple):
    """One photocurrent reading (a named tuple, as :class:`SourceMeterReading`).

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


def set_current_range(instrument: Any, current_range_a: float | None) -> None:
    """Set a fixed current range, or auto-range for None (picoammeters and source meters).

    Parameters
    ----------
    instrument : object
        A driver with ``current_range`` and ``current_range_auto_enabled`` controls.
    current_range_a : float or None
        Fixed range in A, or None for auto-range.
    """
    if current_range_a is None:
        instrument.current_range_auto_enabled = True
    else:
        instrument.current_range = current_range_a


def _on_off(value: Any) -> str:
    """Map the SCPI boolean reply ``1``/``0`` to ``ON``/``OFF`` (and keep ``ON``/``OFF``)."""
    text = str(value).strip()
    return {"1": "ON", "0": "OFF"}.get(text, text)


# -- property specs: validator and mapping of a kind of control, spread into
# ``Instrument.control(get, set, docs, **SPEC)`` so each driver declares one line per setting.
#: A bool the instrument writes and reads as ``1``/``0``.
BOOL_1_0: Mapping[str, Any] = {
    "validator": strict_discrete_set,
    "values": {True: 1, False: 0},
    "map_values": True,
}
#: A bool the instrument writes as ``ON``/``OFF`` and may read back as ``1``/``0``.
BOOL_ON_OFF: Mapping[str, Any] = {
    "validator": strict_discrete_set,
    "values": {True: "ON", False: "OFF"},
    "map_values": True,
    "cast": str,
    "get_process": _on_off,
}
#: Source-meter source voltage (2400 and 2450 share the range).
SMU_SOURCE_VOLTAGE: Mapping[str, Any] = {
    "docs": """Control the source voltage in V (float strictly from -210 to 210).""",
    "validator": strict_range,
    "values": [-210, 210],
}
#: Source-meter source current (2400 and 2450 share the range).
SMU_SOURCE_CURRENT: Mapping[str, Any] = {
    "docs": """Control the source current in A (float strictly from -1.05 to 1.05).""",
    "validator": strict_range,
    "values": [-1.05, 1.05],
}
#: Source-meter output switch.
SMU_OUTPUT: Mapping[str, Any] = {
    "docs": """Control whether the source output is on (bool).""",
    **BOOL_1_0,
}


class BenchDriverMixin:
    """Constructor, identity, settings snapshot and safe shutdown of a bench driver.

    Put it first in the bases of a pymeasure driver (or use :class:`ScpiDriver`). The
    driver declares, as class data:

    - ``DEFAULT_NAME``: the name used in logs when none is given;
    - ``CONNECTION``: adapter defaults (terminations, timeout in ms, ``asrl`` serial
      settings); keyword arguments of the constructor override them;
    - ``SNAPSHOT``: run-record key -> attribute, read in this order by :meth:`snapshot`;
    - ``SHUTDOWN_STEPS``: ``(what, attribute, value)`` set in this order by :meth:`shutdown`.

    Parameters
    ----------
    adapter : str or pymeasure Adapter
        VISA resource name or adapter.
    name : str or None
        Human-readable name used in logs (``DEFAULT_NAME`` when None).
    **kwargs
        Passed on to the adapter (e.g. ``visa_library``, ``timeout``).
    """

    DEFAULT_NAME: ClassVar[str] = "instrument"
    CONNECTION: ClassVar[Mapping[str, Any]] = {
        "read_termination": "\n",
        "write_termination": "\n",
        "timeout": 5000,
    }
    SNAPSHOT: ClassVar[Mapping[str, str]] = {"identity": "identity"}
    SHUTDOWN_STEPS: ClassVar[tuple[tuple[str, str, Any], ...]] = ()

    def __init__(self, adapter: Any, name: str | None = None, **kwargs: Any) -> None:
        for key, value in self.CONNECTION.items():
            kwargs.setdefault(key, dict(value) if isinstance(value, Mapping) else value)
        kwargs.setdefault("includeSCPI", False)  # SCPI commands come from SCPIMixin, if at all
        super().__init__(adapter, self.DEFAULT_NAME if name is None else name, **kwargs)  # type: ignore[call-arg]

    @property
    def identity(self) -> str:
        """Get the ``*IDN?`` answer (str)."""
        return self.ask("*IDN?").strip()  # type: ignore[attr-defined]

    def snapshot(self) -> dict[str, Any]:
        """Return the settings worth recording with every run (the ``SNAPSHOT`` table).

        Returns
        -------
        dict
            One entry per ``SNAPSHOT`` key, read from the instrument in table order.
        """
        return {key: getattr(self, attribute) for key, attribute in self.SNAPSHOT.items()}

    def shutdown(self) -> None:
        """Apply ``SHUTDOWN_STEPS`` in order; never raises (failures are logged)."""
        name = self.name  # type: ignore[attr-defined]
        for step, attribute, value in self.SHUTDOWN_STEPS:
            shutdown_step(name, step, partial(setattr, self, attribute, value))
        self.isShutdown = True
        log.info("%s shut down", name)


class ScpiDriver(BenchDriverMixin, StrictRepliesMixin, SCPIMixin, Instrument):
    """Base of a SCPI bench driver: :class:`BenchDriverMixin` with strict number replies.

    Parameters
    ----------
    adapter : str or pymeasure Adapter
        VISA resource name or adapter.
    name : str or None
        Human-readable name used in logs (``DEFAULT_NAME`` when None).
    **kwargs
        Passed on to the adapter.
    """


class SourceMeterFacadeMixin:
    """The source-meter facade shared by the 2400 and 2450 drivers.

    The drivers declare the facade properties (``source_mode``, ``source_voltage``,
    ``source_current``, ``compliance_current``, ``compliance_voltage``, ``current_nplc``,
    ``voltage_nplc``, ``output_enabled``) with their own commands and choose the measured
    function in :meth:`_select_sense`; configuring a source, what is recorded and how the
    output is switched off is the same for all of them. Put it before
    :class:`BenchDriverMixin`.
    """

    SNAPSHOT: ClassVar[Mapping[str, str]] = {
        "identity": "identity",
        "source_mode": "source_mode",
        "source_voltage_v": "source_voltage",
        "source_current_a": "source_current",
        "compliance_current_a": "compliance_current",
        "compliance_voltage_v": "compliance_voltage",
        "nplc": "current_nplc",
        "output_enabled": "output_enabled",
    }
    SHUTDOWN_STEPS: ClassVar[tuple[tuple[str, str, Any], ...]] = (
        ("output off", "output_enabled", False),
    )
    #: Source mode -> (compliance control, NPLC control) of the measured quantity.
    SOURCE_MODES: ClassVar[Mapping[str, tuple[str, str]]] = {
        "voltage": ("compliance_current", "current_nplc"),
        "current": ("compliance_voltage", "voltage_nplc"),
    }

    def _select_sense(self, mode: str) -> None:
        """Select what is measured while sourcing ``mode`` (the driver's own command)."""
        raise NotImplementedError

    def _apply_source(self, mode: str, compliance: float, nplc: float) -> None:
        self.source_mode = mode
        self._select_sense(mode)
        compliance_control, nplc_control = self.SOURCE_MODES[mode]
        setattr(self, compliance_control, compliance)
        setattr(self, nplc_control, nplc)
        self._mode = mode

    def apply_voltage_source(self, compliance_current_a: float, nplc: float = 1.0) -> None:
        """Configure a voltage source that measures current.

        Parameters
        ----------
        compliance_current_a : float
            Current compliance (limit) in A, within the driver's ``compliance_current`` range.
        nplc : float
            Integration time in power-line cycles (0.01 to 10).
        """
        self._apply_source("voltage", compliance_current_a, nplc)

    def apply_current_source(self, compliance_voltage_v: float, nplc: float = 1.0) -> None:
        """Configure a current source that measures voltage.

        Parameters
        ----------
        compliance_voltage_v : float
            Voltage compliance (limit) in V, within the driver's ``compliance_voltage`` range.
        nplc : float
            Integration time in power-line cycles (0.01 to 10).
        """
        self._apply_source("current", compliance_voltage_v, nplc)
