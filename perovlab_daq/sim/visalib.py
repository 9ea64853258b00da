"""Simulated VISA library of the bench: pyvisa-sim devices whose dynamic replies come from a World.

:class:`SimBenchLibrary` subclasses :class:`pyvisa_sim.highlevel.SimVisaLibrary` and

- merges one YAML per instrument (package data of ``sim_configs``, found with
  :mod:`importlib.resources`, so it works from a wheel) into one device set, with only
  the instruments the bench uses;
- wraps each ``Device._match`` after ``_init()`` with a *personality*
  (:mod:`perovlab_daq.sim.personalities`, bound per driver in
  :mod:`perovlab_daq.sim.catalogue`) that answers the dynamic queries (``:READ?``,
  ``READ?``, ``MEAS:POW?``, ``SPEC:DATA?``, ...) from the physics world and pushes setter
  changes into it, while the YAML keeps the static replies, the validation and the error
  queues;
- refuses to open a resource it does not serve (``VI_ERROR_RSRC_NFOUND``) instead of
  pyvisa-sim's silent session 0;
- injects faults per resource (:mod:`perovlab_daq.sim.faults`);
- reads whole messages at once (pyvisa-sim hands out one byte per call and sleeps 10 ms
  on an empty buffer) and raises VI_ERROR_TMO at once when no reply is pending.

Relies on pyvisa-sim 0.7.1 internals (``Device._match``, ``Device._output_buffers``,
``Device._properties``, ``Device._error_queues``, ``ErrorQueue._queue``,
``Session.device``, ``parser.get_device``); ``tests/sim/test_visalib_internals.py``
fails loudly if they change.

Examples
--------
>>> lib = SimBenchLibrary(world, ["keithley2400", "keithley6485"])  # doctest: +SKIP
>>> smu = Keithley2400("GPIB0::24::INSTR", visa_library=lib)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyvisa import constants, errors, rname
from pyvisa.util import LibraryPath
from pyvisa_sim import parser
from pyvisa_sim.devices import Device, Devices
from pyvisa_sim.highlevel import SimVisaLibrary

from perovlab_daq.sim.catalogue import SIM_INSTRUMENTS, SimInstrument, load_sim_yaml
from perovlab_daq.sim.clock import Stopwatch
from perovlab_daq.sim.faults import FaultInjector, FaultSpec
from perovlab_daq.sim.personalities import Personality

__all__ = [
    "SIM_INSTRUMENTS",
    "ResourceNotServedError",
    "SimBenchLibrary",
    "SimInstrument",
    "load_sim_yaml",
]

log = logging.getLogger(__name__)

_library_ids = itertools.count(1)
#: Writes that reached any simulated library in this process (never decreases).
_COMMANDS_SEEN = [0]


class ResourceNotServedError(errors.VisaIOError):
    """VI_ERROR_RSRC_NFOUND for a resource name the simulated bench does not serve."""

    def __init__(self, resource_name: str, served: Sequence[str]):
        super().__init__(constants.StatusCode.error_resource_not_found)
        self.resource_name = resource_name
        self.served = tuple(served)

    def __str__(self) -> str:
        return (
            f"{super().__str__()} The simulated bench serves no resource "
            f"{self.resource_name!r}; it serves: {', '.join(self.served) or 'nothing'}."
        )


def _sim_instrument(driver: str) -> SimInstrument:
    """Return the simulation recipe of a driver, or raise naming the known drivers."""
    if driver not in SIM_INSTRUMENTS:
        raise ValueError(f"no simulator for driver {driver!r}; known: {sorted(SIM_INSTRUMENTS)}")
    return SIM_INSTRUMENTS[driver]


def _served(recipes: Mapping[str, Any], resource: str, what: str) -> str:
    """Return the canonical name of a resource the bench serves, or raise naming `what`."""
    name = rname.to_canonical_name(resource)
    if name not in recipes:
        raise ValueError(f"{what} given for {resource!r}, which the bench does not serve")
    return name


class SimBenchLibrary(Stopwatch, SimVisaLibrary):
    """pyvisa-sim library serving the simulated bench, answering from a physics World.

    Parameters
    ----------
    world : World or None
        The physics world (``perovlab_daq.sim.world.World``); None gives the static
        YAML behaviour only.
    instruments : sequence of str, mapping of str to str, or None
        Which instruments to simulate: driver names at their default resources, or a
        mapping resource -> driver name; None simulates every known instrument.
    faults : mapping of str to FaultSpec (or to a mapping), optional
        Faults per resource name.
    yaml_paths : mapping of str to str or Path, optional
        Per-resource replacement YAML (e.g. a "faulty" scenario); the device used is
        the one the YAML's ``resources`` section binds, else its first device.
    clock : callable
        Monotonic clock in s (instrument timestamps, disconnect windows).

    Notes
    -----
    Hand it to pymeasure as ``Instrument(resource, visa_library=lib)`` or to PyVISA as
    ``pyvisa.ResourceManager(lib)``. Every instance is independent (it is not cached
    per path like other VISA libraries); :meth:`reset` restores the power-on state.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> SimBenchLibrary:  # noqa: D102
        # A unique library path per instance: VisaLibraryBase caches instances per path.
        path = LibraryPath(f"perovlab-sim-bench-{next(_library_ids)}", "perovlab sim bench")
        return super().__new__(cls, path)

    def __init__(
        self,
        world: Any = None,
        instruments: Sequence[str] | Mapping[str, str] | None = None,
        faults: Mapping[str, FaultSpec | Mapping[str, Any]] | None = None,
        *,
        yaml_paths: Mapping[str, str | Path] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.world = world
        self._clock = clock
        #: Every write that reached the library (also during an outage), in order.
        self.command_count = 0
        self._command_log: deque[tuple[str, str]] = deque(maxlen=self.COMMAND_LOG_LENGTH)
        self._recipes = self._resolve(instruments, yaml_paths or {})
        self._injectors: dict[str, FaultInjector] = {}
        self._past_counts: dict[str, Counter[str]] = {}
        for resource, spec in (faults or {}).items():
            self._injectors[_served(self._recipes, resource, "faults")] = self._injector(spec)
        self._configured = True
        self._init()

    #: Writes kept in :meth:`command_log` (the count in :attr:`command_count` is exact).
    COMMAND_LOG_LENGTH = 10_000

    def command_log(self, resource_name: str | None = None) -> list[str]:
        """Return the last commands written to the simulated devices (oldest first).

        Parameters
        ----------
        resource_name : str, optional
            Only the commands sent to this resource.

        Returns
        -------
        list of str
            Commands without termination (at most :attr:`COMMAND_LOG_LENGTH`).
        """
        wanted = None if resource_name is None else rname.to_canonical_name(resource_name)
        return [text for name, text in self._command_log if wanted in (None, name)]

    def fault_counts(self) -> dict[str, dict[str, int]]:
        """Return, per resource with faults, how many of each kind were injected so far.

        Returns
        -------
        dict
            Resource -> {``timeout``, ``garble``, ``disconnected_read``,
            ``disconnected_write``, ``error_queued``: count} (kinds never injected absent).
        """
        totals = {name: Counter(counts) for name, counts in self._past_counts.items()}
        for name, injector in self._injectors.items():
            totals.setdefault(name, Counter()).update(injector.counts)
        return {name: dict(counts) for name, counts in totals.items()}

    def inject(self, resource_name: str, spec: FaultSpec | Mapping[str, Any] | None) -> None:
        """Replace the faults of one resource while the bench runs (None: no faults).

        The new spec's clock starts now, so ``{"disconnect_after_s": 0,
        "disconnect_for_s": 2}`` takes the device off the bus at once for 2 s: tests use
        this to put a fault at a chosen moment of a run.

        Parameters
        ----------
        resource_name : str
            A resource this library serves.
        spec : FaultSpec, mapping or None
            The faults from now on.
        """
        name = _served(self._recipes, resource_name, "faults")
        previous = self._injectors.pop(name, None)
        if previous is not None:  # keep what it injected in fault_counts()
            self._past_counts.setdefault(name, Counter()).update(previous.counts)
        if spec is not None:
            self._injectors[name] = self._injector(spec)

    def _injector(self, spec: FaultSpec | Mapping[str, Any] | None) -> FaultInjector:
        if not isinstance(spec, FaultSpec):
            spec = FaultSpec.from_mapping(spec)
        return FaultInjector(spec, self._clock)

    @staticmethod
    def total_command_count() -> int:
        """Return the writes that reached any simulated bench alive in this process.

        Lets a test assert that bad input was refused before any instrument was touched,
        even when the library was built deep inside the code under test.

        Returns
        -------
        int
            Writes that reached any simulated library of this process so far.
        """
        # A process-wide count that never falls: a sum over the live libraries dropped
        # whenever the garbage collector took an earlier test's library.
        return _COMMANDS_SEEN[0]

    # -- construction -----------------------------------------------------------------
    @staticmethod
    def _resolve(
        instruments: Sequence[str] | Mapping[str, str] | None,
        yaml_paths: Mapping[str, str | Path],
    ) -> dict[str, tuple[SimInstrument, str | Path]]:
        if instruments is None:
            pairs = [(r.resource, n) for n, r in SIM_INSTRUMENTS.items()]
        elif isinstance(instruments, Mapping):
            pairs = list(instruments.items())
        else:
            pairs = [(_sim_instrument(driver).resource, driver) for driver in instruments]
        recipes: dict[str, tuple[SimInstrument, str | Path]] = {}
        for resource, driver in pairs:
            recipe = _sim_instrument(driver)
            name = rname.to_canonical_name(resource)
            if name in recipes:
                raise ValueError(f"resource {resource!r} given twice")
            recipes[name] = (recipe, recipe.yaml)
        for resource, path in yaml_paths.items():
            name = _served(recipes, resource, "yaml_paths")
            recipes[name] = (recipes[name][0], path)
        return recipes

    def _build_device(self, resource: str, recipe: SimInstrument, yaml_ref: str | Path) -> Device:
        data = load_sim_yaml(yaml_ref)
        devices = data.get("devices", {})
        device_name = recipe.device
        if device_name not in devices:
            bound = [r.get("device") for r in data.get("resources", {}).values()]
            device_name = next((d for d in bound if d in devices), next(iter(devices), None))
        if device_name is None:
            raise ValueError(f"{yaml_ref}: no device")
        device = parser.get_device(device_name, devices[device_name], None, {})
        return device

    def _init(self) -> None:
        self.sessions = {}
        self.devices = Devices()
        self.personalities: dict[str, Personality] = {}
        if not getattr(self, "_configured", False):
            return  # called by VisaLibraryBase.__new__ before __init__ has run
        self.start_stopwatch()
        for resource, (recipe, yaml_ref) in self._recipes.items():
            device = self._build_device(resource, recipe, yaml_ref)
            self.devices.add_device(resource, device)
            personality = recipe.personality(self, device)
            device._match = functools.partial(personality.match, device._match)
            self.personalities[resource] = personality
        for injector in self._injectors.values():
            injector.restart()

    def reset(self) -> None:
        """Restore the power-on state of every simulated device and fault clock.

        Open sessions stay valid and are re-bound to the fresh devices, so drivers built
        before the reset keep working. The world is not touched (it belongs to the caller).
        """
        sessions = self.sessions
        self._init()
        for handle, sess in sessions.items():
            if sess is self:
                self.sessions[handle] = sess
                continue
            sess.device = self.devices[self._resource_of(sess)]
            self.sessions[handle] = sess

    def served_resources(self) -> tuple[str, ...]:
        """Return the resource names this library serves.

        Returns
        -------
        tuple of str
            Canonical resource names.
        """
        return self.devices.list_resources()

    def device(self, resource_name: str) -> Device:
        """Return the simulated device behind a resource (for tests and diagnostics).

        Parameters
        ----------
        resource_name : str
            VISA resource name.

        Returns
        -------
        pyvisa_sim.devices.Device
            The device.
        """
        return self.devices[rname.to_canonical_name(resource_name)]

    # -- VISA operations --------------------------------------------------------------
    @staticmethod
    def _resource_of(sess: Any) -> str:
        return str(sess.attrs[constants.ResourceAttribute.resource_name])

    def open(
        self,
        session: Any,
        resource_name: str,
        access_mode: constants.AccessModes = constants.AccessModes.no_lock,
        open_timeout: Any = constants.VI_TMO_IMMEDIATE,
    ) -> tuple[Any, constants.StatusCode]:
        """Open a session, refusing names the bench does not serve (VI_ERROR_RSRC_NFOUND).

        Parameters
        ----------
        session : VISARMSession
            Resource manager session.
        resource_name : str
            Resource to open.
        access_mode : constants.AccessModes
            Ignored by the simulator.
        open_timeout : int
            Ignored by the simulator.

        Returns
        -------
        tuple
            Session handle and status.
        """
        try:
            canonical = rname.to_canonical_name(resource_name)
        except rname.InvalidResourceName:
            raise errors.VisaIOError(constants.StatusCode.error_invalid_resource_name) from None
        if canonical not in self.devices.list_resources():
            raise ResourceNotServedError(resource_name, self.devices.list_resources())
        handle, status = super().open(session, resource_name, access_mode, open_timeout)
        if status != constants.StatusCode.success:
            raise errors.VisaIOError(status)
        return handle, status

    def _session(self, session: Any) -> Any:
        try:
            return self.sessions[session]
        except KeyError:
            raise errors.VisaIOError(constants.StatusCode.error_invalid_object) from None

    def write(self, session: Any, data: bytes) -> tuple[int, constants.StatusCode]:
        """Write to a simulated device, applying disconnects and ``error_after_write``.

        Parameters
        ----------
        session : VISASession
            Session handle.
        data : bytes
            Message with termination.

        Returns
        -------
        tuple
            Bytes written and status.
        """
        sess = self._session(session)
        name = self._resource_of(sess)
        self.command_count += 1
        _COMMANDS_SEEN[0] += 1
        self._command_log.append((name, data.decode("ascii", errors="replace").strip()))
        injector = self._injectors.get(name)
        if injector is not None and injector.disconnected():
            injector.count("disconnected_write")
            sess.device._output_buffers.clear()
            if (
                sess.attrs[constants.ResourceAttribute.interface_type]
                == constants.InterfaceType.asrl
            ):
                return len(data), constants.StatusCode.success  # a serial line takes it silently
            raise errors.VisaIOError(constants.StatusCode.error_io)
        result = sess.write(data)
        if injector is not None and injector.spec.error_after_write:
            command = data.decode("ascii", errors="replace").strip()
            for entry in injector.errors_after_write(command):
                injector.count("error_queued")
                self._push_error(sess.device, name, entry)
        return result

    @staticmethod
    def _push_error(device: Device, name: str, entry: str) -> None:
        if not device._error_queues:
            log.warning("%s has no error queue; cannot queue %r", name, entry)
            return
        for queue in device._error_queues.values():
            queue._queue.append(entry.encode("ascii"))

    def read(self, session: Any, count: int) -> tuple[bytes, constants.StatusCode]:
        """Read up to ``count`` bytes of the pending reply in one call.

        Stops at the termination character when it is enabled; the end of a reply counts
        as END. With nothing pending, raises VI_ERROR_TMO at once (nothing will arrive
        later in a simulation), as it does for injected timeouts and outages.

        Parameters
        ----------
        session : VISASession
            Session handle.
        count : int
            Maximum number of bytes.

        Returns
        -------
        tuple
            Data and status.
        """
        sess = self._session(session)
        device = sess.device
        name = self._resource_of(sess)
        injector = self._injectors.get(name)
        buffers = device._output_buffers
        if injector is not None and injector.disconnected():
            injector.count("disconnected_read")
            buffers.clear()
            raise errors.VisaIOError(constants.VI_ERROR_TMO)
        if not buffers:
            raise errors.VisaIOError(constants.VI_ERROR_TMO)
        message = buffers[0]
        if injector is not None and getattr(sess, "_perovlab_seen", None) is not message:
            if injector.lose_reply():
                buffers.popleft()
                raise errors.VisaIOError(constants.VI_ERROR_TMO)
            garbled = injector.garble(bytes(message), device._response_eom)
            if garbled != bytes(message):
                message[:] = garbled
            sess._perovlab_seen = message
        termchar, _ = sess.get_attribute(constants.ResourceAttribute.termchar)
        termchar_enabled, _ = sess.get_attribute(constants.ResourceAttribute.termchar_enabled)
        limit = min(count, len(message)) if count is not None else len(message)
        status = constants.StatusCode.success_max_count_read
        if termchar_enabled:
            index = message.find(bytes([termchar]), 0, limit)
            if index >= 0:
                limit = index + 1
                status = constants.StatusCode.success_termination_character_read
        chunk = bytes(message[:limit])
        del message[:limit]
        if not message:
            buffers.popleft()
            if status == constants.StatusCode.success_max_count_read:
                status = constants.StatusCode.success
        return chunk, status
