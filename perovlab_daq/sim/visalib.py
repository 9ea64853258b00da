"""Simulated VISA library of the bench: pyvisa-sim devices whose dynamic replies come from a World.

:class:`SimBenchLibrary` subclasses :class:`pyvisa_sim.highlevel.SimVisaLibrary` and

- merges one YAML per instrument (package data of ``sim_configs``, found with
  :mod:`importlib.resources`, so it works from a wheel) into one device set, with only
  the instruments the bench uses;
- wraps each ``Device._match`` after ``_init()`` with a *personality* that answers the
  dynamic queries (``:READ?``, ``READ?``, ``MEAS:POW?``, ``SPEC:DATA?``, ...) from the
  physics world and pushes setter changes into it, while the YAML keeps the static
  replies, the validation and the error queues;
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
import importlib.resources
import itertools
import logging
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pyvisa import constants, errors, rname
from pyvisa.util import LibraryPath
from pyvisa_sim import parser
from pyvisa_sim.component import NoResponse
from pyvisa_sim.devices import Device, Devices
from pyvisa_sim.highlevel import SimVisaLibrary

from perovlab_daq.sim.faults import FaultInjector, FaultSpec

log = logging.getLogger(__name__)

_library_ids = itertools.count(1)
#: Every live SimBenchLibrary (for :meth:`SimBenchLibrary.total_command_count`).
_LIBRARIES: weakref.WeakSet[SimBenchLibrary] = weakref.WeakSet()


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


# --------------------------------------------------------------------------------------
# Personalities: the Python layer between a pyvisa-sim Device and the World.
# --------------------------------------------------------------------------------------
class Personality:
    """Dynamic behaviour of one simulated instrument on top of its YAML device.

    Parameters
    ----------
    library : SimBenchLibrary
        Owning library (clock, world).
    device : pyvisa_sim.devices.Device
        The YAML-built device this personality wraps.
    """

    def __init__(self, library: SimBenchLibrary, device: Device):
        self.library = library
        self.device = device

    @property
    def world(self) -> Any:
        """Get the physics world (or None: YAML-only behaviour)."""
        return self.library.world

    def prop(self, name: str) -> Any:
        """Return the current value of a YAML property.

        Parameters
        ----------
        name : str
            Property name in the YAML.

        Returns
        -------
        object
            Its value (typed per the YAML specs).
        """
        return self.device._properties[name].get_value()

    def set_prop(self, name: str, value: str) -> None:
        """Set a YAML property as the instrument itself would (validated by its specs).

        Parameters
        ----------
        name : str
            Property name in the YAML.
        value : str
            New value as text.
        """
        self.device._properties[name].set_value(value)

    def match(self, original: Callable[[bytes], Any], query: bytes) -> Any:
        """Answer one message: world first for dynamic queries, YAML otherwise.

        Parameters
        ----------
        original : callable
            The device's own ``_match``.
        query : bytes
            One message without termination.

        Returns
        -------
        bytes, NoResponse or None
            As ``Device._match`` (None means "no match", i.e. a command error).
        """
        text = query.decode("ascii", errors="replace").strip()
        if self.world is not None:
            dynamic = self.dynamic_reply(text)
            if dynamic is not None:
                return dynamic if dynamic is NoResponse else dynamic.encode("ascii")
        response = original(query)
        if self.world is not None and response is not None and not text.endswith("?"):
            self.sync_world()
        return self.post_process(text, response)

    def dynamic_reply(self, text: str) -> Any:
        """Return the world-computed reply to ``text``, or None to defer to the YAML."""
        return None

    def sync_world(self) -> None:
        """Push the device settings into the world after a setter."""

    def post_process(self, text: str, response: Any) -> Any:
        """Adjust a YAML reply before it is queued (default: unchanged)."""
        return response


def _e(value: float) -> str:
    return f"{value:+.6E}"


class SmuLedPersonality(Personality):
    """Keithley 2400 on the LED: setters -> ``world.set_drive``; ``:READ?`` -> ``smu_reading``."""

    READ_QUERIES = (":READ?", ":MEASURE:CURRENT?", ":MEASURE:VOLTAGE?")

    def sync_world(self) -> None:  # noqa: D102 - documented on the base class
        mode = str(self.prop("source_function"))
        if mode == "VOLT":
            level, compliance = self.prop("source_voltage"), self.prop("compliance_current")
        else:
            level, compliance = self.prop("source_current"), self.prop("compliance_voltage")
        self.world.set_drive(mode, float(level), abs(float(compliance)), bool(self.prop("output")))

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        if text not in self.READ_QUERIES:
            return None
        reading = self.world.smu_reading()
        status = 8 if reading.in_compliance else 0
        return ",".join(
            [
                _e(reading.voltage_v),
                _e(reading.current_a),
                _e(9.91e37),
                _e(self.library.elapsed_s()),
                _e(status),
            ]
        )


class Smu2450LedPersonality(SmuLedPersonality):
    """Keithley 2450 on the LED: buffer ``:READ?`` and limit-trip queries from the world."""

    READ_QUERY = ':READ? "defbuffer1", SOUR, READ, REL'
    TRIP_QUERIES = (":SOUR:VOLT:ILIM:TRIP?", ":SOUR:CURR:VLIM:TRIP?")

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        if text in self.TRIP_QUERIES:
            return "1" if self.world.smu_reading().in_compliance else "0"
        if text != self.READ_QUERY:
            return None
        reading = self.world.smu_reading()
        if str(self.prop("source_function")) == "VOLT":
            source, measured = reading.voltage_v, reading.current_a
        else:
            source, measured = reading.current_a, reading.voltage_v
        return ",".join([_e(source), _e(measured), _e(self.library.elapsed_s())])


class SmuPhotodetectorPersonality(Personality):
    """Keithley 2400 at 0 V on the photodiode: ``:READ?`` -> ``world.photodiode_current_a``."""

    READ_QUERIES = SmuLedPersonality.READ_QUERIES

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        if text not in self.READ_QUERIES:
            return None
        compliance = abs(float(self.prop("compliance_current")))
        current = self.world.photodiode_current_a() if int(self.prop("output")) else 0.0
        in_compliance = abs(current) > compliance
        if in_compliance:
            current = compliance if current > 0 else -compliance
        voltage = float(self.prop("source_voltage"))
        status = 8 if in_compliance else 0
        return ",".join(
            [_e(voltage), _e(current), _e(9.91e37), _e(self.library.elapsed_s()), _e(status)]
        )


class PicoammeterPersonality(Personality):
    """Keithley 6485/6487: ``READ?`` -> ``world.photodiode_current_a``, overflow 9.9e37."""

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        if text != "READ?":
            return None
        if str(self.prop("zero_check")) == "ON":
            current = 0.0
        else:
            current = float(self.world.photodiode_current_a())
            auto = str(self.prop("current_range_auto")) == "ON"
            full_scale = 0.021 if auto else 1.05 * float(self.prop("current_range"))
            if abs(current) > full_scale:
                current = 9.9e37
        return ",".join([_e(current), _e(self.library.elapsed_s()), _e(0.0)])

    def post_process(self, text: str, response: Any) -> Any:  # noqa: D102
        # A fixed range switches auto-range off, as on the instrument.
        if response is not None and text.startswith("CURR:RANG "):
            self.set_prop("current_range_auto", "OFF")
        return response


class ObisPersonality(Personality):
    """Coherent OBIS: setpoint/emission -> ``world.set_laser``; power, limits, interlock from it."""

    def dynamic_reply(self, text: str) -> Any:  # noqa: D102
        world = self.world
        if text == "SOUR:POW:LEV?":
            return self._ok(f"{world.laser_output_w():.5f}")
        if text == "SYST:INF:WAV?":
            return self._ok(f"{world.laser_wavelength_nm:.0f}")
        if text == "SOUR:POW:LIM:HIGH?":
            return self._ok(f"{world.laser_max_power_w:.5f}")
        if text == "SOUR:POW:LIM:LOW?":
            return self._ok(f"{world.laser_min_power_w:.5f}")
        if text == "SYST:LOCK?":
            return self._ok("ON" if world.interlock_closed else "OFF")
        if text.startswith("SOUR:POW:LEV:IMM:AMPL "):
            try:
                requested = float(text.split()[-1])
            except ValueError:
                return "ERR-102"
            if requested > world.laser_max_power_w:
                return "ERR-102"
        return None

    def _ok(self, reply: str) -> str:
        return reply + "\r\nOK" if self._handshake else reply

    @property
    def _handshake(self) -> bool:
        return str(self.prop("handshake")) == "ON"

    def sync_world(self) -> None:  # noqa: D102
        self.world.set_laser(float(self.prop("power_setpoint")), str(self.prop("emission")) == "ON")

    def post_process(self, text: str, response: Any) -> Any:  # noqa: D102
        if self._handshake or not isinstance(response, bytes):
            return response
        if response == b"OK":
            return NoResponse
        return response.removesuffix(b"\r\nOK")


class PowerMeterPersonality(Personality):
    """Thorlabs PM100: ``MEAS:POW?`` -> ``world.power_meter_w(correction wavelength)``."""

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        if text != "MEAS:POW?":
            return None
        return f"{self.world.power_meter_w(float(self.prop('wavelength'))):.6E}"


class SpectrometerPersonality(Personality):
    """``SPEC:*``: wavelengths, counts and saturation level from the world."""

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        world = self.world
        if text == "SPEC:WAV?":
            return ",".join(f"{w:.4f}" for w in world.spectrometer_wavelengths_nm())
        if text == "SPEC:PIX?":
            return str(len(world.spectrometer_wavelengths_nm()))
        if text == "SPEC:SAT?":
            return f"{float(world.spectrometer_saturation_counts):.0f}"
        # The detector's own calibration, as a real unit stores it in its EEPROM: the
        # coefficients must describe the simulated detector, not a fixed table.
        if text == "SPEC:NLIN?":
            return ",".join(f"{c:.6e}" for c in world.spectrometer_nonlinearity_coefficients)
        if text == "SPEC:EDARK?":
            return ",".join(str(p) for p in world.spectrometer_electric_dark_pixels)
        if text == "SPEC:DATA?":
            integration_s = int(self.prop("integration_time_us")) * 1e-6
            return ",".join(f"{c:.0f}" for c in world.spectrometer_counts(integration_s))
        return None


class FilterWheelPersonality(Personality):
    """Thorlabs FW102C: echoes every command (as the wheel does); ``pos=n`` -> world."""

    def match(self, original: Callable[[bytes], Any], query: bytes) -> Any:  # noqa: D102
        response = super().match(original, query)
        if response is None:
            response = b"Command error CMD_NOT_DEFINED\r>"
        if response is NoResponse:
            response = b">"
        return query + b"\r" + response

    def sync_world(self) -> None:  # noqa: D102
        self.world.set_filter_position(int(self.prop("position")))


class SampleStagePersonality(Personality):
    """Simulated PLQY stage: ``POS A|B|C|STAGE`` -> ``world.set_sample_position``."""

    def sync_world(self) -> None:  # noqa: D102
        pos = str(self.prop("position"))
        self.world.set_sample_position("stage" if pos == "STAGE" else pos)


@dataclass(frozen=True)
class SimInstrument:
    """How the bench simulates one driver: YAML file, device in it, default resource, behaviour.

    Attributes
    ----------
    yaml : str
        File name in the ``sim_configs`` package.
    device : str
        Device name inside that YAML.
    resource : str
        Default VISA resource (``docs/architecture.md`` §2).
    personality : type
        :class:`Personality` subclass adding the world-driven behaviour.
    """

    yaml: str
    device: str
    resource: str
    personality: type[Personality]


#: Driver name (bench file, ``instruments.DRIVERS``) -> simulation recipe.
SIM_INSTRUMENTS: dict[str, SimInstrument] = {
    "keithley2400": SimInstrument(
        "keithley2400.yaml", "keithley2400", "GPIB0::24::INSTR", SmuLedPersonality
    ),
    "keithley2450": SimInstrument(
        "keithley2450.yaml",
        "keithley2450",
        "USB0::0x05E6::0x2450::04096331::INSTR",
        Smu2450LedPersonality,
    ),
    "smu-photodetector": SimInstrument(
        "keithley2400.yaml", "keithley2400", "GPIB0::25::INSTR", SmuPhotodetectorPersonality
    ),
    "keithley6485": SimInstrument(
        "keithley6485.yaml", "keithley6485", "GPIB0::14::INSTR", PicoammeterPersonality
    ),
    "keithley6487": SimInstrument(
        "keithley6487.yaml", "keithley6487", "GPIB0::22::INSTR", PicoammeterPersonality
    ),
    "obis": SimInstrument("obis.yaml", "obis", "ASRL1::INSTR", ObisPersonality),
    "pm100d": SimInstrument(
        "pm100d.yaml", "pm100d", "USB0::0x1313::0x8078::P0012345::INSTR", PowerMeterPersonality
    ),
    "visa-spectrometer": SimInstrument(
        "visa_spectrometer.yaml",
        "visa_spectrometer",
        "TCPIP0::127.0.0.1::5025::SOCKET",
        SpectrometerPersonality,
    ),
    "fw102c": SimInstrument("fw102c.yaml", "fw102c", "ASRL2::INSTR", FilterWheelPersonality),
    "sim-sample-stage": SimInstrument(
        "sample_stage.yaml", "sample_stage", "ASRL3::INSTR", SampleStagePersonality
    ),
}

_KNOWN = sorted(SIM_INSTRUMENTS)


def load_sim_yaml(ref: str | Path) -> dict[str, Any]:
    """Load one pyvisa-sim YAML from a path or from the ``sim_configs`` package.

    Parameters
    ----------
    ref : str or Path
        A path to an existing file, or a file name (with or without ``.yaml``) in the
        ``sim_configs`` package (resolved with :mod:`importlib.resources`).

    Returns
    -------
    dict
        The YAML, loaded as pyvisa-sim does (every scalar a string).

    Raises
    ------
    ValueError
        If the file has no ``spec`` or a spec newer than the installed pyvisa-sim reads.
    FileNotFoundError
        If neither a file nor a package resource of that name exists.
    """
    path = Path(ref)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        name = str(ref) if str(ref).endswith((".yaml", ".yml")) else f"{ref}.yaml"
        resource = importlib.resources.files("sim_configs").joinpath(name)
        if not resource.is_file():
            raise FileNotFoundError(f"no simulator YAML {ref!r} (file or sim_configs/{name})")
        text = resource.read_text(encoding="utf-8")
    data = yaml.load(text, Loader=yaml.BaseLoader)
    spec = tuple(int(p) for p in str((data or {}).get("spec", "0")).split("."))
    if spec[0] != parser.SPEC_VERSION_TUPLE[0] or spec > parser.SPEC_VERSION_TUPLE:
        raise ValueError(f"{ref}: spec {spec} not readable by pyvisa-sim {parser.SPEC_VERSION}")
    return data


class SimBenchLibrary(SimVisaLibrary):
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
            name = rname.to_canonical_name(resource)
            if name not in self._recipes:
                raise ValueError(f"faults given for {resource!r}, which the bench does not serve")
            if not isinstance(spec, FaultSpec):
                spec = FaultSpec.from_mapping(spec)
            self._injectors[name] = FaultInjector(spec, clock)
        self._configured = True
        self._init()
        _LIBRARIES.add(self)

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
        name = rname.to_canonical_name(resource_name)
        if name not in self._recipes:
            raise ValueError(f"faults given for {resource_name!r}, which the bench does not serve")
        previous = self._injectors.pop(name, None)
        if previous is not None:  # keep what it injected in fault_counts()
            self._past_counts.setdefault(name, Counter()).update(previous.counts)
        if spec is None:
            return
        if not isinstance(spec, FaultSpec):
            spec = FaultSpec.from_mapping(spec)
        self._injectors[name] = FaultInjector(spec, self._clock)

    @staticmethod
    def total_command_count() -> int:
        """Return the writes that reached any simulated bench alive in this process.

        Lets a test assert that bad input was refused before any instrument was touched,
        even when the library was built deep inside the code under test.

        Returns
        -------
        int
            Sum of :attr:`command_count` over the live libraries.
        """
        return sum(library.command_count for library in list(_LIBRARIES))

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
            pairs = []
            for driver in instruments:
                if driver not in SIM_INSTRUMENTS:
                    raise ValueError(
                        f"no simulator for driver {driver!r}; known: {sorted(SIM_INSTRUMENTS)}"
                    )
                pairs.append((SIM_INSTRUMENTS[driver].resource, driver))
        recipes: dict[str, tuple[SimInstrument, str | Path]] = {}
        for resource, driver in pairs:
            if driver not in SIM_INSTRUMENTS:
                raise ValueError(
                    f"no simulator for driver {driver!r}; known: {sorted(SIM_INSTRUMENTS)}"
                )
            name = rname.to_canonical_name(resource)
            if name in recipes:
                raise ValueError(f"resource {resource!r} given twice")
            recipes[name] = (SIM_INSTRUMENTS[driver], SIM_INSTRUMENTS[driver].yaml)
        for resource, path in yaml_paths.items():
            name = rname.to_canonical_name(resource)
            if name not in recipes:
                raise ValueError(
                    f"yaml_paths given for {resource!r}, which the bench does not serve"
                )
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
        self._t0 = self._clock()
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

    def elapsed_s(self) -> float:
        """Return the seconds since creation or the last reset (instrument timestamps).

        Returns
        -------
        float
            Elapsed time in s.
        """
        return self._clock() - self._t0

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
