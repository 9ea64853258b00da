"""Base class of every perovlab-daq procedure: roles, columns with units, safe shutdown, retries.

A procedure is a pymeasure :class:`~pymeasure.experiment.Procedure` that receives its
instruments from an open :class:`perovlab_daq.bench.Bench` (``self.bench``, set by the runner
or the GUI before ``startup``); it never builds instruments itself, so the same code runs on
the real and the simulated bench, and a test can hand it any bench.

It emits the records of ``docs/architecture.md`` section 5: data rows (``emit_row``), array
frames such as spectra (``emit_frame``) and events (``emit_event``).

On a bench with a ``pixel_switch`` every procedure's ``startup`` first connects the run's
pixel (:meth:`DaqProcedure.connect_pixel`: source output off, open all, close the pixel's
channel, read it back) and records ``connected_pixel`` and ``switch_channel``.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from perovlab_daq.procedures.parameter_names import canonical_parameters
from pymeasure.experiment import (
    BooleanParameter,
    FloatParameter,
    IntegerParameter,
    ListParameter,
    Metadata,
    Parameter,
    Procedure,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A pause between two rows longer than this many expected intervals is a ``gap`` event.
GAP_INTERVALS = 2.0
#: ... and longer than this (s): scheduler jitter on a busy computer is not a gap.
GAP_MIN_S = 0.5
#: Events that already explain a pause between rows (no extra ``gap`` event then).
GAP_EXPLAINED_BY = frozenset({"gap", "pause", "jlv"})
#: How often a wait on the worker's stop event still asks ``should_stop`` (s).
EVENT_POLL_S = 0.25


class ParameterError(ValueError):
    """A parameter value is invalid; the message names the parameter, value and allowed range."""

    def __init__(self, name: str, value: Any, allowed: str) -> None:
        self.name = name
        self.value = value
        self.allowed = allowed
        super().__init__(f"parameter {name!r}: value {value!r} is not allowed ({allowed})")

    #: Bad input is never an instrument hiccup: ``call_with_retry`` does not retry it.
    transient = False


class InstrumentFault(RuntimeError):
    """An instrument kept failing after the retries allowed; the run ends ``failed``."""


def describe_parameter(parameter: Parameter) -> dict[str, Any]:
    """Return a plain description of a pymeasure parameter (for ``list --json`` and docs)."""
    kind = {
        FloatParameter: "float",
        IntegerParameter: "integer",
        BooleanParameter: "boolean",
        ListParameter: "choice",
    }.get(type(parameter), type(parameter).__name__)
    info: dict[str, Any] = {
        "label": parameter.name,
        "type": kind,
        "units": getattr(parameter, "units", None) or "",
        "default": parameter.default,
    }
    info["minimum"] = info["maximum"] = None
    if isinstance(parameter, FloatParameter | IntegerParameter):
        info["minimum"] = parameter.minimum
        info["maximum"] = parameter.maximum
    if isinstance(parameter, ListParameter):
        info["choices"] = list(parameter.choices)
    return info


def check_parameter_value(attribute: str, parameter: Parameter, value: Any) -> Any:
    """Convert ``value`` for ``parameter`` and check its range; raise :class:`ParameterError`.

    Unlike pymeasure's own conversion, the error names the parameter, the value and the
    allowed range or choices, and NaN or infinite numbers are refused.
    """
    if isinstance(parameter, FloatParameter | IntegerParameter):
        units = f" {parameter.units}" if getattr(parameter, "units", None) else ""
        allowed = f"a number from {parameter.minimum:g} to {parameter.maximum:g}{units}"
        if isinstance(parameter, IntegerParameter):
            allowed = f"a whole number from {parameter.minimum} to {parameter.maximum}{units}"
        if isinstance(value, bool):
            raise ParameterError(attribute, value, allowed)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ParameterError(attribute, value, allowed) from None
        if not math.isfinite(number):
            raise ParameterError(attribute, value, allowed)
        if isinstance(parameter, IntegerParameter):
            if number != int(number):
                raise ParameterError(attribute, value, allowed)
            number = int(number)
        if not parameter.minimum <= number <= parameter.maximum:
            raise ParameterError(attribute, value, allowed)
        return number
    if isinstance(parameter, BooleanParameter):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"true", "yes", "on", "1"}:
            return True
        if text in {"false", "no", "off", "0"}:
            return False
        raise ParameterError(attribute, value, "true or false")
    if isinstance(parameter, ListParameter):
        for choice in parameter.choices:
            if value == choice or str(value) == str(choice):
                return choice
        raise ParameterError(attribute, value, f"one of {', '.join(map(str, parameter.choices))}")
    return parameter.convert(value)


#: Smallest change of a run's progress percentage worth showing (the procedures'
#: ``emit_progress`` and the worker's filter of plain ``emit('progress')`` both use it).
PROGRESS_STEP = 0.1


class DaqProcedure(Procedure):
    """A procedure that takes its instruments from a bench and streams rows, frames and events.

    Subclasses set ``NAME`` (the command-line name), ``TITLE``, ``REQUIRED_ROLES``,
    ``OPTIONAL_ROLES`` and ``COLUMNS`` (column name -> unit, in column order), and
    implement ``startup``/``execute``. ``shutdown`` is provided: it switches every source
    output and laser emission off and never raises.
    """

    NAME: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    REQUIRED_ROLES: ClassVar[tuple[str, ...]] = ()
    OPTIONAL_ROLES: ClassVar[tuple[str, ...]] = ()
    COLUMNS: ClassVar[dict[str, str]] = {}
    #: Key figures (``perovlab_daq.figures``) that summarise a run in one line (demo, sequence).
    SUMMARY_FIGURES: ClassVar[tuple[str, ...]] = ()
    #: Consecutive failures of one instrument call before the run stops ``failed``.
    MAX_CONSECUTIVE_FAILURES: ClassVar[int] = 5

    bench: Any = None
    #: The worker's stop event (set by :class:`~perovlab_daq.storage.DaqWorker`; None
    #: when the procedure runs without one): :meth:`sleep` blocks on it.
    stop_event: threading.Event | None = None
    #: Time column value of the last row checked for gaps, and whether an event since
    #: then explains a pause (see :meth:`expected_row_interval_s`).
    _gap_last_time: float = math.nan
    _gap_explained: bool = False
    #: Smallest change of the progress percentage that :meth:`emit_progress` passes on.
    PROGRESS_STEP: ClassVar[float] = PROGRESS_STEP
    _progress_shown: float = -1.0
    #: The pixel the run is for (set by the runner from the sample identifiers; "" = none).
    pixel: str = ""
    _connected_pixel: str = ""
    _switch_channel: str = ""
    _pixel_connected: bool = False
    connected_pixel = Metadata("Pixel connected", fget="_connected_pixel")
    switch_channel = Metadata("Pixel switch channel", fget="_switch_channel")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.COLUMNS:
            cls.DATA_COLUMNS = list(cls.COLUMNS)
        own_startup = cls.__dict__.get("startup")
        if own_startup is not None:

            @functools.wraps(own_startup)
            def startup(self: DaqProcedure) -> None:
                self.connect_pixel()
                own_startup(self)

            cls.startup = startup  # type: ignore[method-assign]

    # -- pixel ------------------------------------------------------------------------
    def connect_pixel(self) -> None:
        """Connect the run's pixel through the bench's pixel switch (once per run).

        Without a ``pixel_switch`` the pixel is what the operator contacted: it is recorded
        as given, with no channel. With one: source output off (read back), then the
        switch opens all channels, closes the pixel's and reads the closed list back
        (break-before-make); no pixel given means the first of the bench's pixel map.

        Raises
        ------
        RuntimeError
            If the source output does not read back off, or the pixel is not on the bench.
        """
        if self._pixel_connected:
            return
        self._pixel_connected = True
        if not self.has_role("pixel_switch"):
            self._connected_pixel = self.pixel or ""
            return
        try:
            pixel, channel = self.bench.config.pixel_channel(self.pixel or None)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
        smu = self.bench.get("source_meter")
        if smu is not None:
            smu.output_enabled = False
            if smu.output_enabled:
                raise RuntimeError("the source output does not read back off: not switching")
        switch = self.bench["pixel_switch"]
        self.call_with_retry(
            lambda: switch.select(channel), f"connect pixel {pixel}", role="pixel_switch"
        )
        self._connected_pixel, self._switch_channel = pixel, channel
        self.emit_event("info", "pixel", f"pixel {pixel} connected (switch channel {channel})")

    # -- parameters -------------------------------------------------------------------
    @classmethod
    def parameter_specs(cls) -> dict[str, dict[str, Any]]:
        """Return attribute name -> description of every parameter (units, default, range)."""
        specs = {}
        for attribute in dir(cls):
            candidate = getattr(cls, attribute, None)
            if isinstance(candidate, Parameter):
                specs[attribute] = {"name": attribute, **describe_parameter(candidate)}
        return specs

    @classmethod
    def parameter_objects_of_class(cls) -> dict[str, Parameter]:
        """Return attribute name -> pymeasure Parameter of the class."""
        return {
            attribute: getattr(cls, attribute)
            for attribute in dir(cls)
            if isinstance(getattr(cls, attribute, None), Parameter)
        }

    @classmethod
    def checked_parameters(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``values`` against the class's parameters; return converted values.

        Raises
        ------
        ParameterError
            For an unknown name, a value of the wrong type or out of range, or a
            combination :meth:`check_consistency` refuses.
        """
        objects = cls.parameter_objects_of_class()
        try:
            values = canonical_parameters(values, known=objects)
        except ValueError as exc:
            raise ParameterError("parameters", dict(values), str(exc)) from None
        converted: dict[str, Any] = {}
        for name, value in values.items():
            if name not in objects:
                raise ParameterError(
                    name, value, f"unknown parameter; known: {', '.join(sorted(objects))}"
                )
            converted[name] = check_parameter_value(name, objects[name], value)
        full = {name: p.default for name, p in objects.items()}
        full.update(converted)
        cls.check_consistency(full)
        return converted

    @classmethod
    def check_consistency(cls, values: Mapping[str, Any]) -> None:
        """Refuse parameter combinations that are each in range but wrong together.

        Subclasses override; raise :class:`ParameterError` naming the parameter to change.
        """

    # -- instruments ------------------------------------------------------------------
    def instrument(self, role: str) -> Any:
        """Return the instrument playing ``role``; a clear error if the bench lacks it."""
        if self.bench is None:
            raise RuntimeError(
                f"{type(self).__name__} has no bench: the runner must set procedure.bench"
            )
        if role not in self.bench:
            raise RuntimeError(f"the bench has no {role!r}; this procedure needs one")
        return self.bench[role]

    def has_role(self, role: str) -> bool:
        """Return whether the bench provides ``role``."""
        return self.bench is not None and role in self.bench

    # -- records ----------------------------------------------------------------------
    def emit_row(self, row: Mapping[str, float] | None = None, /, **values: float) -> None:
        """Emit one data row; keys are column names of ``COLUMNS``.

        The row comes as keywords, or as a mapping (not copied: a run of 100,000 points
        emits its row dicts as they are), or both (the keywords win).

        A row whose ``time`` lies more than ``GAP_INTERVALS`` expected intervals (and
        ``GAP_MIN_S``) after the previous checked row is preceded by a ``gap`` event,
        unless an event of a kind in ``GAP_EXPLAINED_BY`` came in between.
        """
        if row is not None:
            values = {**row, **values} if values else row  # type: ignore[assignment]
        expected = self.expected_row_interval_s(values)
        if expected is not None:
            self._check_gap(float(values.get("time", math.nan)), expected)
        self.emit("results", values)

    def expected_row_interval_s(self, row: Mapping[str, float]) -> float | None:
        """Return the interval (s of the ``time`` column) expected before ``row``, or None.

        None (the default) means rows are not checked for gaps; time-driven procedures
        return their current sampling interval, and None for rows outside the schedule.
        """
        return None

    def _check_gap(self, now: float, expected: float) -> None:
        last, explained = self._gap_last_time, self._gap_explained
        self._gap_last_time, self._gap_explained = now, False
        if not math.isfinite(now) or not math.isfinite(last) or explained:
            return
        pause = now - last
        if pause > GAP_INTERVALS * expected and pause > GAP_MIN_S:
            self.emit_event(
                "warning",
                "gap",
                f"no sample for {pause:.3g} s (expected every {expected:.3g} s) "
                f"before time {now:.6g} s",
            )
            self._gap_explained = False  # the gap event explains only this pause

    def emit_frame(
        self,
        intensity: Any,
        wavelength: Any,
        stream: str = "spectra",
        *,
        intensity_units: str = "counts",
        context_units: Mapping[str, str] | None = None,
        **context: float,
    ) -> None:
        """Emit one array frame (a spectrum) with its context (time, bias, laser power...).

        Parameters
        ----------
        intensity, wavelength
            1-D arrays of equal length (wavelength in nm).
        stream
            Name of the frame stream (``entry/<stream>`` in the file).
        intensity_units
            Units of ``intensity`` (``counts``, ``W/nm``, ``A/W``...).
        context_units
            Units of context values the storage does not know already.
        **context
            Per-frame numbers stored beside the spectrum.
        """
        record: dict[str, Any] = {
            "stream": stream,
            "wavelength": wavelength,
            "intensity": intensity,
            "context": {key: float(value) for key, value in context.items()},
            "intensity_units": intensity_units,
        }
        if context_units:
            record["units"] = dict(context_units)
        self.emit("frame", record)

    def emit_progress(self, percent: float) -> None:
        """Report progress (%); a change smaller than ``PROGRESS_STEP`` is not passed on.

        A run of 100,000 points calls this at every point; only visible changes (and 0
        and 100) go on to the worker and the display.
        """
        shown = self._progress_shown
        if percent == shown or (
            abs(percent - shown) < self.PROGRESS_STEP and percent not in (0.0, 100.0)
        ):
            return
        self._progress_shown = percent
        self.emit("progress", percent)

    def emit_event(self, level: str, kind: str, message: str) -> None:
        """Record a time-stamped event (warning, fault, retry, pause) in the run's file."""
        getattr(log, level if level in {"info", "warning", "error"} else "info")(
            "%s: %s", kind, message
        )
        if kind in GAP_EXPLAINED_BY:
            self._gap_explained = True
        self.emit("event", {"level": level, "kind": kind, "message": message})

    # -- robustness -------------------------------------------------------------------
    def call_with_retry(
        self,
        call: Callable[[], T],
        what: str,
        *,
        role: str | None = None,
        retries: int | None = None,
        backoff_s: float = 0.05,
    ) -> T:
        """Call ``call``; retry transient instrument errors with backoff, logging each as an event.

        After ``retries`` consecutive failures (default ``MAX_CONSECUTIVE_FAILURES``) the
        connection of ``role`` is re-opened once more, and if that fails too
        :class:`InstrumentFault` ends the run ``failed`` with the reason. Transient means
        :func:`instruments._common.is_transient_error` (timeouts, lost or garbled replies,
        bus I/O errors); any other error propagates at once.
        """
        attempt = 0
        while True:
            try:
                return call()
            except Exception as exc:
                # Imported here, not on entry: this wraps every reading of a sweep, and an
                # import statement costs ~1 us even when the module is loaded.
                from perovlab_daq.instruments._common import is_transient_error

                if not is_transient_error(exc):
                    raise
                limit = self.MAX_CONSECUTIVE_FAILURES if retries is None else retries
                attempt += 1
                if attempt > limit:
                    self.emit_event(
                        "error", "fault", f"{what}: gave up after {attempt} attempts: {exc}"
                    )
                    raise InstrumentFault(f"{what} failed {attempt} times in a row: {exc}") from exc
                self.emit_event("warning", "retry", f"{what}: attempt {attempt} failed: {exc}")
                if role is not None and attempt >= 2 and self.bench is not None:
                    reopen = getattr(self.bench, "reopen", None)
                    if reopen is not None:
                        try:
                            reopen(role)
                            self.emit_event("info", "reopen", f"{role}: connection re-opened")
                        except Exception as reopen_exc:  # noqa: BLE001 - retried next round
                            self.emit_event(
                                "warning", "reopen", f"{role}: re-open failed: {reopen_exc}"
                            )
                time.sleep(min(backoff_s * 2 ** (attempt - 1), 2.0))

    def check_instrument_errors(self, when: str) -> dict[str, list[str]]:
        """Read the instruments' SCPI error queues; record an ``instrument_error`` event.

        Returns
        -------
        dict
            Role -> error entries (empty when every queue was clean).
        """
        queues = getattr(self.bench, "error_queues", None)
        found = queues() if queues is not None else {}
        for role, entries in found.items():
            self.emit_event(
                "error", "instrument_error", f"{role} reported {'; '.join(entries)} {when}"
            )
        return found

    def evaluate_metadata(self) -> None:
        """Evaluate pymeasure metadata, then refuse a run whose set-up an instrument rejected.

        The worker calls this right after ``startup``: an entry in an instrument's error
        queue at that point means a setting was refused, so the run would not measure
        what its parameters say. It ends ``failed`` with the instrument's error as reason.
        """
        super().evaluate_metadata()
        found = self.check_instrument_errors("while the run was set up")
        if found:
            described = "; ".join(f"{role}: {', '.join(e)}" for role, e in found.items())
            raise InstrumentFault(f"an instrument refused a setting ({described})")

    def sleep(self, seconds: float, step_s: float = 0.05) -> bool:
        """Wait ``seconds`` while staying responsive to an abort; return False if aborted.

        Under a :class:`~perovlab_daq.storage.DaqWorker` the wait blocks on the worker's
        stop event, so an abort ends it at once and an idle run costs no CPU (16 rack
        channels polling every 10 ms were 1,600 wake-ups a second); ``should_stop`` is
        still asked every :data:`EVENT_POLL_S`. Without a worker it is asked every
        ``step_s``.
        """
        deadline = time.monotonic() + max(0.0, seconds)
        event = self.stop_event
        step = max(step_s, EVENT_POLL_S) if event is not None else step_s
        while True:
            if self.should_stop():
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if event is not None:
                event.wait(min(step, remaining))
            else:
                time.sleep(min(step, remaining))

    def shutdown(self) -> None:
        """Switch every source output and laser emission off. Never raises (REFERENCE §5).

        The states are then read back from the instruments and recorded as a
        ``safe_state`` event, so the file says whether the outputs really ended off.
        """
        if self.bench is None:
            return
        try:
            report = self.bench.safe_state()
        except Exception as exc:  # noqa: BLE001 - pymeasure stalls if shutdown raises
            log.error("safe state failed: %s", exc)
            report = {"bench": f"failed: {exc}"}
        try:
            self.check_instrument_errors("during the run")
        except Exception as exc:  # noqa: BLE001 - shutdown must never raise
            log.error("could not read the error queues: %s", exc)
        failed = {role: state for role, state in report.items() if state != "ok"}
        try:
            states = self.bench.output_states()
        except Exception as exc:  # noqa: BLE001
            states = {"bench": f"unreadable: {exc}"}
        # "unreadable" counts too: an output nobody could read back is not known to be off.
        still_on = [name for name, state in states.items() if state != "off"]
        level = "error" if failed or still_on else "info"
        described = ", ".join(f"{name} {state}" for name, state in states.items()) or "none"
        message = f"read back after shutdown: {described}"
        if failed:
            message += f"; shutdown failed for {failed}"
        try:
            self.emit_event(level, "safe_state", message)
        except Exception as exc:  # noqa: BLE001 - the emit target may be gone
            log.error("could not record the safe state: %s (%s)", message, exc)
