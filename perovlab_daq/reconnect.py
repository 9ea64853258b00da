"""Re-opening an instrument's connection with everything it was opened with.

When a run retries an instrument that stopped answering, :meth:`perovlab_daq.bench.Bench.reopen`
closes the VISA session and opens a new one. A new session must come back exactly as the
driver opened the first one - baud rate and serial framing, terminations, timeout - or
every later command fails (an OBIS laser reopened at 9600 instead of 115200 baud never
answers again, not even to "emission off"). And an instrument that was reset while away
must get back the settings the procedure had given it (source mode, range, level, output
state).

Two records per role, both taken by the bench when it opens the role:

* :func:`connection_settings` - the session attributes as the driver opened them;
* :func:`track_settings` - from then on, every value the procedure *sets* on one of the
  driver's settings (a property with a setter) is remembered in the order it was set:
  the state the procedure expects.

:func:`reopen_connection` opens a session with the first; :func:`restore_settings` reads
the second back and writes what differs, the output or emission state last.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

log = logging.getLogger(__name__)

#: Session attributes a VISA open may set; the ones a resource has are kept and restored.
SESSION_ATTRIBUTES: tuple[str, ...] = (
    "read_termination",
    "write_termination",
    "timeout",
    "chunk_size",
    "query_delay",
    "send_end",
    "encoding",
    "baud_rate",
    "data_bits",
    "parity",
    "stop_bits",
    "flow_control",
    "end_input",
    "xon_char",
    "xoff_char",
)
#: Settings that switch a hazard on: restored after everything else.
OUTPUT_SETTINGS: tuple[str, ...] = ("output_enabled", "source_enabled", "emission_enabled")


#: Set in a thread while :func:`connection_settings` probes its session's attributes.
_probing = threading.local()


class _DuringProbe(logging.Filter):
    """Drop pyvisa's records made by a thread that is probing attributes (see below)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_probing, "active", False)


def _install_probe_filter() -> None:
    """Add the filter to pyvisa's logger once."""
    pyvisa_log = logging.getLogger("pyvisa")
    if not any(isinstance(f, _DuringProbe) for f in pyvisa_log.filters):
        pyvisa_log.addFilter(_DuringProbe())


def connection_settings(connection: Any) -> dict[str, Any]:
    """Return the session attributes of an open VISA ``connection`` that can be read.

    Parameters
    ----------
    connection
        A pyvisa resource (``adapter.connection`` of a pymeasure ``VISAAdapter``).
    """
    settings: dict[str, Any] = {}
    # pyvisa-py logs an ERROR with a traceback for every attribute a session type lacks
    # (a TCPIP socket has no VI_ATTR_SEND_END_EN) before raising it: expected here, so
    # this thread's pyvisa records are dropped while it probes (other threads' are kept:
    # a rack's channels probe and fail at the same time).
    _install_probe_filter()
    _probing.active = True
    try:
        for name in SESSION_ATTRIBUTES:
            try:
                settings[name] = getattr(connection, name)
            except Exception:  # noqa: BLE001, S112 - an attribute this resource lacks is skipped
                continue
    finally:
        _probing.active = False
    return settings


def reopen_connection(adapter: Any, settings: dict[str, Any]) -> Any:
    """Close ``adapter``'s session and open a new one with ``settings``; return it.

    Each setting is applied on its own so that one the new session refuses is logged and
    the others still apply. The new session is stored as ``adapter.connection``.
    """
    try:
        adapter.connection.close()
    except Exception as exc:  # noqa: BLE001 - the old session may already be gone
        log.debug("closing the old connection failed: %s", exc)
    connection = adapter.manager.open_resource(adapter.resource_name)
    for name, value in settings.items():
        try:
            setattr(connection, name, value)
        except Exception as exc:  # noqa: BLE001 - keep the others
            log.warning("%s: could not restore %s=%r: %s", adapter.resource_name, name, value, exc)
    adapter.connection = connection
    return connection


def restorable_attributes(cls: type) -> tuple[str, ...]:
    """Return the settings of a driver class that can be written back (properties with a setter).

    Properties of the driver and of the pymeasure device class it extends count; those of
    pymeasure's generic bases (``Instrument``, ``SCPIMixin``) do not.
    """
    names: list[str] = []
    for klass in cls.__mro__:
        if klass.__module__ in _GENERIC_MODULES:
            continue
        for name, descriptor in vars(klass).items():
            if isinstance(descriptor, property) and descriptor.fset is not None:
                if name not in names:
                    names.append(name)
    return tuple(names)


_GENERIC_MODULES = frozenset(
    {
        "builtins",
        "pymeasure.instruments.instrument",
        "pymeasure.instruments.common_base",
        "pymeasure.instruments.generic_types",
    }
)
_TRACKED: dict[type, type] = {}


def track_settings(instrument: Any) -> None:
    """Remember from now on every recorded setting the program writes to ``instrument``.

    The instrument's class is replaced by a subclass whose ``__setattr__`` records the
    value after the write succeeded (so ``isinstance`` and the driver API are unchanged).
    :func:`expected_settings` returns what was recorded.
    """
    cls = type(instrument)
    if getattr(cls, "_perovlab_tracked", False):
        return
    names = restorable_attributes(cls)
    if not names:
        return
    tracked = _TRACKED.get(cls)
    if tracked is None:
        watched = frozenset(names)

        def __setattr__(self: Any, name: str, value: Any) -> None:  # noqa: N807
            cls.__setattr__(self, name, value)
            if name in watched:
                expected = self.__dict__.setdefault("_perovlab_expected", {})
                expected.pop(name, None)  # re-inserted last: replayed in the order set
                expected[name] = value

        tracked = type(
            cls.__name__, (cls,), {"__setattr__": __setattr__, "_perovlab_tracked": True}
        )
        tracked.__module__ = cls.__module__
        tracked.__qualname__ = cls.__qualname__
        _TRACKED[cls] = tracked
    instrument.__class__ = tracked
    instrument.__dict__.setdefault("_perovlab_expected", {})


def expected_settings(instrument: Any) -> dict[str, Any]:
    """Return the settings written to a tracked ``instrument``, in the order last written."""
    return dict(getattr(instrument, "__dict__", {}).get("_perovlab_expected", {}))


def restore_settings(instrument: Any) -> list[str]:
    """Write back every expected setting the instrument no longer holds; return what changed.

    The output or emission state comes last, so a source comes back on only once its mode,
    range and level are right again.

    Raises
    ------
    Exception
        Whatever the driver raises when the instrument does not answer (the caller's retry
        handles it).
    """
    expected = expected_settings(instrument)
    order = [n for n in expected if n not in OUTPUT_SETTINGS]
    order += [n for n in OUTPUT_SETTINGS if n in expected]
    changed: list[str] = []
    for name in order:
        want = expected[name]
        if _same(getattr(instrument, name), want):
            continue
        setattr(instrument, name, want)
        changed.append(f"{name}={want!r}")
    return changed


def _same(have: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return bool(have) == bool(want)
    if isinstance(want, int | float) and isinstance(have, int | float):
        return math.isclose(float(have), float(want), rel_tol=1e-6, abs_tol=1e-12)
    return have == want
