"""Bench files: which instrument plays which role, at which address, real or simulated.

A bench file (YAML, safe-loaded) maps each role (``source_meter``, ``photodetector``,
``laser``, ``power_meter``, ``spectrometer``, ...) to a driver, a resource and options,
and records the physical set-up (device area, photodiode geometry, calibration files).
The shipped simulated bench (``sim_configs/bench_sim.yaml``) is what ``--sim`` means
everywhere; a real bench is the same file with real addresses. Procedures never build
instruments: they receive them from an open :class:`Bench`.

The format is documented in ``docs/bench-file.md``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from perovlab_daq.calibration import load_calibration_csv
from perovlab_daq.pixel_map import PixelMapError, check_faulty_pixels, check_pixel_map
from perovlab_daq.safe_input import UnsafeInputError, load_yaml_file

log = logging.getLogger(__name__)

#: Roles the application knows. A bench file naming another role is a typo, not an extension.
KNOWN_ROLES: dict[str, str] = {
    "source_meter": "drives the LED (Keithley 2400/2450)",
    "photodetector": "reads the photodiode facing the LED (Keithley 6485/6487 or an SMU at 0 V)",
    "spectrometer": "EL and PL spectra (Ocean Insight QE Pro/Flame/USB4000)",
    "laser": "CW excitation for PL (Coherent OBIS 405/445 nm)",
    "power_meter": "laser power at the sample plane (Thorlabs PM100D/PM100USB)",
    "filter_wheel": "ND filters that extend a fluence series (Thorlabs FW102C)",
    "sample_stage": "integrating-sphere sample positions for PLQY",
    "pixel_switch": "selects the pixel under test on multi-pixel substrates",
}

#: Roles ``bench check`` insists on when it is not told which roles a job needs.
DEFAULT_REQUIRED_ROLES: tuple[str, ...] = ("source_meter", "photodetector")

#: Set-up constants with their units and the range a sane value lies in.
SETUP_FIELDS: dict[str, tuple[str, float, float]] = {
    "device_area_cm2": ("cm^2", 1e-4, 100.0),
    "photodiode_radius_mm": ("mm", 0.1, 100.0),
    "photodiode_distance_mm": ("mm", 0.1, 10_000.0),
    "laser_spot_area_cm2": ("cm^2", 1e-9, 100.0),
    "sphere_spot_area_cm2": ("cm^2", 1e-9, 100.0),
}
SETUP_FILES: tuple[str, ...] = ("responsivity_file", "spectrometer_sensitivity_file")

SIM_BENCH_RESOURCE = "bench_sim.yaml"
DEFAULT_PRESET = "qd-in-matrix"


class BenchError(ValueError):
    """A bench file is malformed, or an instrument in it cannot be reached.

    The message names the entry (``roles.laser.resource``) and the problem.
    """


@dataclass(frozen=True)
class RoleConfig:
    """One role of a bench: which driver talks to which resource, with which options."""

    role: str
    driver: str
    resource: str
    options: Mapping[str, Any] = field(default_factory=dict)
    faults: Mapping[str, Any] = field(default_factory=dict)
    expect_identity: str | None = None
    #: pixel_switch only: pixel name -> switch channel (``card!channel``), substrate order.
    pixels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SimConfig:
    """Options of the simulated bench: sample preset, noise seed and ageing acceleration."""

    preset: str = DEFAULT_PRESET
    seed: int = 0
    ageing_acceleration: float = 1.0
    #: procedure -> factor, or procedure -> {preset: factor, "default": factor}
    ageing_acceleration_by_procedure: Mapping[str, float | Mapping[str, float]] = field(
        default_factory=dict
    )
    #: pixel name -> "short" or "open" (simulated substrate faults)
    faulty_pixels: Mapping[str, str] = field(default_factory=dict)

    def acceleration_for(self, procedure: str | None) -> float:
        """Return the ageing acceleration (device s per wall s) for ``procedure`` on this preset.

        Samples age at very different rates (a QD-only control dies in minutes, the
        QD-in-matrix LED in days), so a procedure's factor may depend on the preset.
        """
        chosen: Any = self.ageing_acceleration
        if procedure is not None and procedure in self.ageing_acceleration_by_procedure:
            chosen = self.ageing_acceleration_by_procedure[procedure]
            if isinstance(chosen, Mapping):
                chosen = chosen.get(self.preset, chosen.get("default", self.ageing_acceleration))
        return float(chosen)


@dataclass(frozen=True)
class BenchConfig:
    """A validated bench file."""

    name: str
    path: Path | None
    simulated: bool
    roles: Mapping[str, RoleConfig]
    setup: Mapping[str, Any]
    sim: SimConfig | None = None
    visa_library: str = ""
    #: Station id (``station:``), recorded in every run file's provenance.
    station: str = ""
    #: Calibration files as the bench file wrote them (``setup`` holds them resolved).
    files_as_given: Mapping[str, str] = field(default_factory=dict)

    def calibration_files(self) -> dict[str, Path]:
        """Return the set-up's calibration files, resolved to absolute paths."""
        return {
            key: Path(self.setup[key]) for key in SETUP_FILES if self.setup.get(key) is not None
        }

    @property
    def pixel_map(self) -> dict[str, str]:
        """Return pixel name -> switch channel of the bench's pixel switch ({} without one)."""
        switch = self.roles.get("pixel_switch")
        return dict(switch.pixels) if switch is not None else {}

    def pixel_channel(self, pixel: str | None) -> tuple[str, str]:
        """Return ``(pixel, channel)`` a run on ``pixel`` connects; ``("", "")`` without a switch.

        With a switch and no pixel given, the first pixel of the map is chosen (so a
        file is never labelled with a pixel that was not connected).

        Raises
        ------
        BenchError
            If the bench has a switch and ``pixel`` is not in its pixel map.
        """
        pixels = self.pixel_map
        if not pixels:
            return (pixel or "", "")
        if not pixel:
            pixel = next(iter(pixels))
        if pixel not in pixels:
            where = self.path or "the bench"
            raise BenchError(
                f"{where}: roles.pixel_switch.pixels: no pixel {pixel!r} "
                f"(the switch connects {', '.join(pixels)})"
            )
        return (pixel, pixels[pixel])

    def require_roles(self, roles: Iterable[str]) -> None:
        """Raise :class:`BenchError` naming every role in ``roles`` the bench lacks."""
        missing = [r for r in roles if r not in self.roles]
        if missing:
            where = self.path or "the bench"
            raise BenchError(
                f"{where}: roles: missing role(s) {', '.join(missing)} "
                f"(the bench defines {', '.join(self.roles) or 'none'})"
            )


def _fail(path: Path | None, entry: str, problem: str) -> BenchError:
    where = str(path) if path else "bench"
    return BenchError(f"{where}: {entry}: {problem}")


def _as_mapping(value: Any, path: Path | None, entry: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path, entry, f"expected a mapping, got {type(value).__name__} {value!r}")
    return dict(value)


def _number(value: Any, path: Path | None, entry: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, entry, f"expected a number from {low:g} to {high:g}, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise _fail(
            path, entry, f"value {value!r} is outside the allowed range {low:g} to {high:g}"
        )
    return number


def _resolve_file(value: Any, base: Path | None, path: Path | None, entry: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, entry, f"expected a file name, got {value!r}")
    candidate = Path(value).expanduser()
    if not candidate.is_absolute() and base is not None:
        candidate = base / candidate
    if not candidate.is_file():
        raise _fail(path, entry, f"file {str(candidate)!r} does not exist")
    return candidate.resolve()


def _known_drivers() -> Mapping[str, str]:
    from instruments import DRIVERS

    return DRIVERS


def parse_bench(data: Any, *, path: Path | None = None, base: Path | None = None) -> BenchConfig:
    """Validate a bench-file mapping and return a :class:`BenchConfig`.

    Parameters
    ----------
    data
        The safe-loaded YAML document.
    path
        The file it came from, for error messages.
    base
        Folder that relative calibration-file names are resolved against.

    Raises
    ------
    BenchError
        Naming the entry and the problem, for any malformed or out-of-range entry.
    """
    if not isinstance(data, Mapping):
        raise _fail(path, "top level", f"expected a mapping of bench settings, got {data!r}")
    allowed_top = {
        "format",
        "name",
        "station",
        "simulated",
        "sim",
        "roles",
        "setup",
        "visa_library",
    }
    for key in data:
        if key not in allowed_top:
            raise _fail(
                path, str(key), f"unknown entry (allowed: {', '.join(sorted(allowed_top))})"
            )
    fmt = data.get("format", 1)
    if fmt != 1:
        raise _fail(path, "format", f"unsupported bench file format {fmt!r} (this version reads 1)")
    simulated = data.get("simulated", False)
    if not isinstance(simulated, bool):
        raise _fail(path, "simulated", f"expected true or false, got {simulated!r}")

    drivers = _known_drivers()
    roles_in = _as_mapping(data.get("roles"), path, "roles")
    if not roles_in:
        raise _fail(path, "roles", "no roles defined (a bench needs at least a source_meter)")
    roles: dict[str, RoleConfig] = {}
    for role, entry_any in roles_in.items():
        entry_name = f"roles.{role}"
        if role not in KNOWN_ROLES:
            raise _fail(path, entry_name, f"unknown role (known: {', '.join(KNOWN_ROLES)})")
        entry = _as_mapping(entry_any, path, entry_name)
        for key in entry:
            if key not in {"driver", "resource", "options", "faults", "expect_identity"} and (
                key != "pixels" or role != "pixel_switch"
            ):
                raise _fail(path, f"{entry_name}.{key}", "unknown entry")
        driver = entry.get("driver")
        if not isinstance(driver, str) or driver not in drivers:
            raise _fail(
                path,
                f"{entry_name}.driver",
                f"unknown driver {driver!r} (known: {', '.join(sorted(drivers))})",
            )
        resource = entry.get("resource", "")
        if resource is None:
            resource = ""
        if not isinstance(resource, str):
            raise _fail(path, f"{entry_name}.resource", f"expected a string, got {resource!r}")
        faults = _as_mapping(entry.get("faults"), path, f"{entry_name}.faults")
        if faults and not simulated:
            raise _fail(
                path, f"{entry_name}.faults", "fault injection only exists on a simulated bench"
            )
        expect = entry.get("expect_identity")
        if expect is not None and not isinstance(expect, str):
            raise _fail(path, f"{entry_name}.expect_identity", f"expected a string, got {expect!r}")
        roles[role] = RoleConfig(
            role=role,
            driver=driver,
            resource=resource,
            options=_as_mapping(entry.get("options"), path, f"{entry_name}.options"),
            faults=faults,
            expect_identity=expect,
            pixels=_pixels(entry.get("pixels"), path) if role == "pixel_switch" else {},
        )

    setup_in = _as_mapping(data.get("setup"), path, "setup")
    setup: dict[str, Any] = {}
    files_as_given: dict[str, str] = {}
    for key, value in setup_in.items():
        entry_name = f"setup.{key}"
        if key in SETUP_FIELDS:
            _unit, low, high = SETUP_FIELDS[key]
            setup[key] = _number(value, path, entry_name, low, high)
        elif key in SETUP_FILES:
            resolved = _resolve_file(value, base, path, entry_name)
            try:
                load_calibration_csv(resolved, positive=key == "spectrometer_sensitivity_file")
            except ValueError as exc:
                raise _fail(path, entry_name, str(exc)) from None
            setup[key] = str(resolved)
            files_as_given[key] = value
        else:
            allowed = ", ".join([*SETUP_FIELDS, *SETUP_FILES])
            raise _fail(path, entry_name, f"unknown entry (allowed: {allowed})")

    sim: SimConfig | None = None
    if simulated:
        sim_in = _as_mapping(data.get("sim"), path, "sim")
        for key in sim_in:
            if key not in {
                "preset",
                "seed",
                "ageing_acceleration",
                "ageing_acceleration_by_procedure",
                "faulty_pixels",
            }:
                raise _fail(path, f"sim.{key}", "unknown entry")
        preset = sim_in.get("preset", DEFAULT_PRESET)
        _check_preset(preset, path, "sim.preset")
        seed = sim_in.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise _fail(path, "sim.seed", f"expected a whole number >= 0, got {seed!r}")
        acceleration = _number(
            sim_in.get("ageing_acceleration", 1.0), path, "sim.ageing_acceleration", 1e-3, 1e9
        )
        by_procedure = _accelerations(sim_in.get("ageing_acceleration_by_procedure"), path)
        pixel_names = list(roles["pixel_switch"].pixels) if "pixel_switch" in roles else ["1"]
        try:
            faulty = check_faulty_pixels(sim_in.get("faulty_pixels"), pixel_names)
        except PixelMapError as exc:
            raise _fail(path, exc.entry, exc.problem) from None
        sim = SimConfig(preset, seed, acceleration, by_procedure, faulty)
    elif "sim" in data:
        raise _fail(path, "sim", "a 'sim' section needs 'simulated: true'")

    visa_library = data.get("visa_library", "")
    if not isinstance(visa_library, str):
        raise _fail(path, "visa_library", f"expected a string such as '@py', got {visa_library!r}")
    name = data.get("name") or (path.stem if path else "bench")
    station = data.get("station", "")
    if station is None or isinstance(station, bool) or not isinstance(station, str | int):
        raise _fail(
            path, "station", f"expected a station id such as 'lab2-bench1', got {station!r}"
        )
    return BenchConfig(
        name=str(name),
        path=path,
        simulated=simulated,
        roles=roles,
        setup=setup,
        sim=sim,
        visa_library=visa_library,
        station=str(station),
        files_as_given=files_as_given,
    )


def _pixels(value: Any, path: Path | None) -> dict[str, str]:
    try:
        return check_pixel_map(value)
    except PixelMapError as exc:
        raise _fail(path, exc.entry, exc.problem) from None


def _accelerations(value: Any, path: Path | None) -> dict[str, float | dict[str, float]]:
    """Validate ``sim.ageing_acceleration_by_procedure`` (numbers or per-preset mappings)."""
    entry = "sim.ageing_acceleration_by_procedure"
    result: dict[str, float | dict[str, float]] = {}
    for name, factor in _as_mapping(value, path, entry).items():
        if isinstance(factor, Mapping):
            per_preset: dict[str, float] = {}
            for preset, number in factor.items():
                if preset != "default":
                    _check_preset(preset, path, f"{entry}.{name}.{preset}")
                per_preset[str(preset)] = _number(
                    number, path, f"{entry}.{name}.{preset}", 1e-3, 1e9
                )
            result[str(name)] = per_preset
        else:
            result[str(name)] = _number(factor, path, f"{entry}.{name}", 1e-3, 1e9)
    return result


def _check_preset(preset: Any, path: Path | None, entry: str) -> None:
    from perovlab_daq.sim.presets import PRESETS

    if not isinstance(preset, str) or preset not in PRESETS:
        raise _fail(path, entry, f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")


def load_bench(path: str | Path) -> BenchConfig:
    """Read and validate a bench file.

    Parameters
    ----------
    path
        A YAML bench file. Relative calibration-file names resolve against its folder.

    Raises
    ------
    BenchError
        If the file cannot be read, is not valid YAML, or any entry is malformed.
    """
    file_path = Path(path)
    try:
        data = load_yaml_file(file_path, "bench file", name_kind=True)
    except UnsafeInputError as exc:
        raise BenchError(str(exc)) from None
    return parse_bench(data, path=file_path, base=file_path.resolve().parent)


def sim_bench(preset: str | None = None, *, seed: int | None = None) -> BenchConfig:
    """Return the shipped simulated bench, optionally with another preset or seed.

    Parameters
    ----------
    preset
        Simulated sample (``perovlab-daq bench presets`` lists them); default ``qd-in-matrix``.
    seed
        Noise seed; default the one in the shipped file.
    """
    ref = resources.files("sim_configs") / SIM_BENCH_RESOURCE
    with resources.as_file(ref) as file_path:
        config = load_bench(file_path)
    assert config.sim is not None
    if preset is not None:
        _check_preset(preset, config.path, "--sim PRESET")
    sim = SimConfig(
        preset=preset or config.sim.preset,
        seed=config.sim.seed if seed is None else seed,
        ageing_acceleration=config.sim.ageing_acceleration,
        ageing_acceleration_by_procedure=config.sim.ageing_acceleration_by_procedure,
        faulty_pixels=config.sim.faulty_pixels,
    )
    return BenchConfig(
        name=f"simulated bench ({sim.preset})",
        path=config.path,
        simulated=True,
        roles=config.roles,
        setup=config.setup,
        sim=sim,
        visa_library="",
        station=config.station,
        files_as_given=config.files_as_given,
    )


def sha256_of(path: str | Path) -> str:
    """Return the hex sha256 of a file (recorded beside every calibration file used)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class RoleStatus:
    """What ``bench check`` found for one role."""

    role: str
    driver: str
    resource: str
    identity: str = ""
    ok: bool = False
    problem: str = ""


class Bench:
    """An open bench: the instruments of a :class:`BenchConfig`, connected.

    Use as a context manager; leaving it puts every instrument in its safe state
    (source output off, laser emission off) and closes the connections.

    Parameters
    ----------
    config
        The validated bench.
    procedure
        Name of the procedure the bench is opened for (selects the simulated ageing
        acceleration; recorded in metadata).
    roles
        Open only these roles (default: all the bench defines).
    """

    def __init__(
        self,
        config: BenchConfig,
        *,
        procedure: str | None = None,
        roles: Iterable[str] | None = None,
    ) -> None:
        self.config = config
        self.procedure = procedure
        self.role_names = list(config.roles) if roles is None else list(roles)
        config.require_roles(self.role_names)
        self.instruments: dict[str, Any] = {}
        self.world: Any = None
        self.visa_library: Any = config.visa_library
        self._opened = False
        #: role -> VISA session attributes as the driver opened them (for :meth:`reopen`)
        self._sessions: dict[str, dict[str, Any]] = {}

    # -- life cycle -------------------------------------------------------------------
    def open(self) -> Bench:
        """Connect every role; on failure close what was opened and raise :class:`BenchError`."""
        if self._opened:
            return self
        if self.config.simulated:
            self._build_simulator()
        try:
            for role in self.role_names:
                self.instruments[role] = self._open_role(self.config.roles[role])
        except BaseException:
            self.close()
            raise
        self._opened = True
        return self

    def _build_simulator(self) -> None:
        from perovlab_daq.sim.visalib import SimBenchLibrary
        from perovlab_daq.sim.world import World

        sim = self.config.sim or SimConfig()
        # Without an open switch the pixel first in the map (or "1") is wired for good.
        switched = "pixel_switch" in self.role_names
        first = next(iter(self.config.pixel_map), "1")
        self.world = World(
            sim.preset,
            seed=sim.seed,
            ageing_acceleration=sim.acceleration_for(self.procedure),
            setup=dict(self.config.setup),
            pixel_channels=self.config.pixel_map if switched else None,
            faulty_pixels=dict(sim.faulty_pixels)
            if switched
            else {"1": sim.faulty_pixels[first]}
            if first in sim.faulty_pixels
            else {},
        )
        roles = [self.config.roles[r] for r in self.role_names]
        self.visa_library = SimBenchLibrary(
            self.world,
            # Serve each instrument at the address its simulator file gives, not at whatever
            # the bench file says, so a misspelt resource fails as it would on real hardware.
            instruments=sorted({rc.driver for rc in roles}),
            faults={rc.resource: {"seed": sim.seed, **rc.faults} for rc in roles if rc.faults},
        )

    def _open_role(self, rc: RoleConfig) -> Any:
        from instruments import VISA_DRIVERS, load_driver

        cls = load_driver(rc.driver)
        entry = f"roles.{rc.role}"
        try:
            if rc.driver in VISA_DRIVERS:
                instrument = cls(rc.resource, visa_library=self.visa_library, **dict(rc.options))
            else:
                instrument = cls(rc.resource, **dict(rc.options))
        except Exception as exc:  # noqa: BLE001 - every driver failure becomes one clear message
            raise _fail(
                self.config.path,
                f"{entry}.resource",
                f"cannot open {rc.resource!r} with driver {rc.driver!r}: {exc}",
            ) from exc
        try:
            identity = str(instrument.identity)
        except Exception as exc:  # noqa: BLE001
            _safe_close(instrument)
            raise _fail(
                self.config.path,
                f"{entry}.resource",
                f"{rc.resource!r} did not answer its identity query ({exc}); "
                "check the address and that the instrument is on",
            ) from exc
        if not identity.strip():
            _safe_close(instrument)
            raise _fail(
                self.config.path,
                f"{entry}.resource",
                f"{rc.resource!r} returned an empty identity: wrong address or no instrument there",
            )
        if rc.expect_identity and rc.expect_identity.lower() not in identity.lower():
            _safe_close(instrument)
            raise _fail(
                self.config.path,
                f"{entry}.expect_identity",
                f"{rc.resource!r} identifies as {identity!r}, expected {rc.expect_identity!r}",
            )
        log.info("%s: %s at %s is %s", rc.role, rc.driver, rc.resource, identity)
        self._remember_session(rc.role, instrument)
        return instrument

    def _remember_session(self, role: str, instrument: Any) -> None:
        from perovlab_daq.reconnect import connection_settings, track_settings

        connection = getattr(getattr(instrument, "adapter", None), "connection", None)
        if connection is not None:
            self._sessions[role] = connection_settings(connection)
        track_settings(instrument)

    def __enter__(self) -> Bench:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getitem__(self, role: str) -> Any:
        try:
            return self.instruments[role]
        except KeyError:
            raise KeyError(
                f"role {role!r} is not open on this bench (open: {', '.join(self.instruments)})"
            ) from None

    def get(self, role: str, default: Any = None) -> Any:
        """Return the instrument of ``role`` or ``default`` when the bench lacks it."""
        return self.instruments.get(role, default)

    def __contains__(self, role: object) -> bool:
        return role in self.instruments

    def reopen(self, role: str) -> None:
        """Re-open the VISA connection of ``role`` in place, as it was first opened.

        Used by retries of unattended runs after repeated timeouts or I/O errors; the
        driver object (held by the procedure) stays the same. The new session gets every
        attribute the driver opened the first one with (baud rate and serial framing,
        terminations, timeout: :mod:`perovlab_daq.reconnect`), then every setting the
        procedure had written that the instrument no longer holds (source mode, range,
        level; output or emission state last) is written back.

        Raises
        ------
        BenchError
            When the role has no VISA connection to re-open.
        Exception
            Whatever the driver raises when the instrument does not answer yet (the
            caller's retry tries again).
        """
        from perovlab_daq.reconnect import connection_settings, reopen_connection, restore_settings

        instrument = self[role]
        adapter = getattr(instrument, "adapter", None)
        connection = getattr(adapter, "connection", None)
        if adapter is None or connection is None or not hasattr(adapter, "manager"):
            raise BenchError(f"roles.{role}: its connection cannot be re-opened")
        settings = self._sessions.get(role) or connection_settings(connection)
        reopen_connection(adapter, settings)
        log.warning("%s: connection to %s re-opened", role, adapter.resource_name)
        changed = restore_settings(instrument)
        if changed:
            log.warning("%s: settings restored after re-open: %s", role, ", ".join(changed))

    # -- safety and metadata ----------------------------------------------------------
    def safe_state(self) -> dict[str, str]:
        """Switch every source output and laser emission off. Never raises.

        Returns
        -------
        dict
            Role -> ``"ok"`` or the error text of a shutdown that failed.
        """
        report: dict[str, str] = {}
        for role, instrument in self.instruments.items():
            try:
                instrument.shutdown()
                report[role] = "ok"
            except Exception as exc:  # noqa: BLE001 - a safety path must reach every instrument
                log.error("%s: shutdown failed: %s", role, exc)
                report[role] = f"failed: {exc}"
        return report

    def output_states(self) -> dict[str, str]:
        """Read back source outputs and laser emission: ``"on"``, ``"off"`` or ``"unreadable"``.

        Never raises; used after a run to record that the outputs really ended off.
        """
        states: dict[str, str] = {}
        for role, instrument in self.instruments.items():
            for attribute, label in (
                ("output_enabled", "output"),
                ("emission_enabled", "emission"),
            ):
                if not hasattr(type(instrument), attribute):
                    continue
                try:
                    states[f"{role} {label}"] = "on" if getattr(instrument, attribute) else "off"
                except Exception as exc:  # noqa: BLE001 - a dead instrument must not stop the report
                    states[f"{role} {label}"] = f"unreadable: {exc}"
        return states

    def error_queues(self, limit: int = 10) -> dict[str, list[str]]:
        """Read and empty the SCPI error queue of every instrument that has one. Never raises.

        Returns
        -------
        dict
            Role -> the entries read (``'-222,"Data out of range"'``), only for roles
            that reported something; an unreadable queue is logged and skipped.
        """
        found: dict[str, list[str]] = {}
        for role, instrument in self.instruments.items():
            if not hasattr(type(instrument), "next_error"):
                continue
            for _ in range(limit):
                try:
                    code, message = instrument.next_error
                    code = int(float(code))
                except Exception as exc:  # noqa: BLE001 - a dead instrument must not stop this
                    log.debug("%s: error queue unreadable: %s", role, exc)
                    break
                if code == 0:
                    break
                found.setdefault(role, []).append(f"{code},{str(message).strip()}")
        return found

    def close(self) -> None:
        """Put every instrument in its safe state and close the connections. Never raises."""
        if self.instruments:
            self.safe_state()
        for instrument in self.instruments.values():
            _safe_close(instrument)
        self.instruments.clear()
        self._opened = False

    def metadata(self) -> dict[str, Any]:
        """Return run metadata describing the bench (simulated or not, preset, acceleration)."""
        meta: dict[str, Any] = {
            "bench_name": self.config.name,
            "bench_file": str(self.config.path) if self.config.path else "",
            "simulated": self.config.simulated,
        }
        if self.config.simulated and self.config.sim is not None:
            meta.update(
                sim_preset=self.config.sim.preset,
                sim_seed=self.config.sim.seed,
                ageing_acceleration=self.config.sim.acceleration_for(self.procedure),
            )
        else:
            meta["ageing_acceleration"] = 1.0
        for key, value in self.config.setup.items():
            meta[f"setup_{key}"] = value
        return meta

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Return, per role, driver, resource, identity, settings and calibration files.

        Every connected instrument is snapshotted; a setting that cannot be read is
        recorded as its error text rather than failing the run.
        """
        snap: dict[str, dict[str, Any]] = {}
        calibrations = {k: str(v) for k, v in self.config.calibration_files().items()}
        for role, instrument in self.instruments.items():
            rc = self.config.roles[role]
            try:
                settings = dict(instrument.snapshot())
            except Exception as exc:  # noqa: BLE001
                settings = {"snapshot_error": str(exc)}
            try:
                identity = str(instrument.identity)
            except Exception as exc:  # noqa: BLE001
                identity = f"unavailable: {exc}"
            entry: dict[str, Any] = {
                "driver": rc.driver,
                "resource": rc.resource,
                "identity": identity,
                "settings": settings,
            }
            files = _role_calibrations(role, calibrations)
            if files:
                entry["calibration_files"] = {
                    Path(p).name: {"path": p, "sha256": sha256_of(p)} for p in files
                }
            snap[role] = entry
        return snap

    def check(self) -> list[RoleStatus]:
        """Open each role in turn and report its identity; never raises for a role's failure."""
        statuses: list[RoleStatus] = []
        if self.config.simulated and self.world is None:
            self._build_simulator()
        for role in self.role_names:
            rc = self.config.roles[role]
            status = RoleStatus(role=role, driver=rc.driver, resource=rc.resource)
            try:
                instrument = self._open_role(rc)
            except BenchError as exc:
                status.problem = str(exc)
            else:
                status.identity = str(instrument.identity)
                status.ok = True
                _safe_shutdown_and_close(instrument)
            statuses.append(status)
        return statuses


def _role_calibrations(role: str, calibrations: Mapping[str, str]) -> list[str]:
    owner = {"responsivity_file": "photodetector", "spectrometer_sensitivity_file": "spectrometer"}
    return [path for key, path in calibrations.items() if owner.get(key) == role]


def _safe_close(instrument: Any) -> None:
    try:
        adapter = getattr(instrument, "adapter", None)
        if adapter is not None:
            adapter.close()
        elif hasattr(instrument, "close"):
            instrument.close()
    except Exception as exc:  # noqa: BLE001 - closing must not mask the original problem
        log.debug("closing %r failed: %s", instrument, exc)


def _safe_shutdown_and_close(instrument: Any) -> None:
    try:
        instrument.shutdown()
    except Exception as exc:  # noqa: BLE001
        log.warning("shutdown of %r failed: %s", instrument, exc)
    _safe_close(instrument)
