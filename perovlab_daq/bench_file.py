"""Bench files: reading and validating them into a :class:`BenchConfig`.

A bench file (YAML, loaded through the bounded safe loader) maps each role
(``source_meter``, ``photodetector``, ``laser``, ``power_meter``, ``spectrometer``, ...) to
a driver, a resource and options, and records the physical set-up (device area,
photodiode geometry, calibration files) and, for a simulated bench, the ``sim:`` section.
Every error names its entry (``roles.laser.driver``). Opening the instruments is
:mod:`perovlab_daq.bench`'s job; this module touches none.

The format is documented in ``docs/bench-file.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from perovlab_daq.alerts import AlertConfig, AlertConfigError, parse_alerts
from perovlab_daq.calibration import (
    load_calibration_csv,
    sha256_of,  # noqa: F401 - re-exported (bench.sha256_of)
)
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
    "thermometer": "device temperature (Keithley 2000/DMM6500 with a Pt100, or a TEC sensor)",
}

#: Roles a lifetime channel of a rack may have (``channels:``; docs/rack.md).
CHANNEL_ROLES: tuple[str, ...] = ("source_meter", "photodetector", "thermometer")
#: Channel numbers a rack may use.
MAX_CHANNEL = 64
#: Drivers of one SMU of a multi-channel instrument -> the instrument: two channels may
#: share its resource, each with another SMU (``keithley2600a`` and ``keithley2600b``).
SHARED_INSTRUMENT_DRIVERS: dict[str, str] = {
    "keithley2600a": "keithley2600",
    "keithley2600b": "keithley2600",
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
    #: LED ageing parameters overriding the preset's (``sim.sample``; docs/bench-file.md)
    sample: Mapping[str, float] = field(default_factory=dict)

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
    #: Run catalogue (``catalog:``): a URL, an SQLite file, "off", or "" for the default.
    catalog: str = ""
    #: Calibration files as the bench file wrote them (``setup`` holds them resolved).
    files_as_given: Mapping[str, str] = field(default_factory=dict)
    #: Lifetime channels of a rack: channel ("1".."64") -> role -> RoleConfig (``channels:``).
    channels: Mapping[str, Mapping[str, RoleConfig]] = field(default_factory=dict)
    #: How to notify (``alerts:``; :mod:`perovlab_daq.alerts`).
    alerts: AlertConfig = field(default_factory=AlertConfig)
    #: The channel this bench is (a channel's bench from :meth:`channel_config`), else "".
    channel: str = ""

    def channel_config(self, channel: str | int) -> BenchConfig:
        """Return the bench of one lifetime channel: its own roles, the set-up and sim options.

        Raises
        ------
        BenchError
            If the bench has no such channel.
        """
        name = str(channel)
        if name not in self.channels:
            where = self.path or "the bench"
            known = ", ".join(self.channels) or "none"
            raise BenchError(f"{where}: channels: no channel {name!r} (the bench has {known})")
        return dataclasses.replace(
            self,
            name=f"{self.name} channel {name}",
            roles=dict(self.channels[name]),
            channels={},
            channel=name,
        )

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
    from perovlab_daq.instruments import DRIVERS

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
        "catalog",
        "simulated",
        "sim",
        "roles",
        "setup",
        "visa_library",
        "channels",
        "alerts",
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
        if role not in KNOWN_ROLES:
            raise _fail(path, f"roles.{role}", f"unknown role (known: {', '.join(KNOWN_ROLES)})")
        roles[role] = _role_config(role, entry_any, f"roles.{role}", path, simulated, drivers)
    channels = _channels(data.get("channels"), path, simulated, drivers, roles)
    try:
        alerts = parse_alerts(data.get("alerts"))
    except AlertConfigError as exc:
        raise _fail(path, exc.entry, exc.problem) from None

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
                "sample",
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
        sample = _sample_overrides(sim_in.get("sample"), path)
        sim = SimConfig(
            preset, seed, acceleration, by_procedure, faulty_pixels=faulty, sample=sample
        )
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
    catalog = data.get("catalog", "")
    if catalog is False:  # YAML 1.1 reads a bare off/no as false
        catalog = "off"
    if not isinstance(catalog, str) or len(catalog) > 1000:
        raise _fail(path, "catalog", f"expected a catalogue URL or file, or 'off', got {catalog!r}")
    return BenchConfig(
        name=str(name),
        path=path,
        simulated=simulated,
        roles=roles,
        setup=setup,
        sim=sim,
        visa_library=visa_library,
        station=str(station),
        catalog=catalog,
        files_as_given=files_as_given,
        channels=channels,
        alerts=alerts,
    )


def _role_config(
    role: str,
    entry_any: Any,
    entry_name: str,
    path: Path | None,
    simulated: bool,
    drivers: Mapping[str, str],
) -> RoleConfig:
    """Validate one role entry (``roles.<role>`` or ``channels.<n>.<role>``)."""
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
    return RoleConfig(
        role=role,
        driver=driver,
        resource=resource,
        options=_as_mapping(entry.get("options"), path, f"{entry_name}.options"),
        faults=faults,
        expect_identity=expect,
        pixels=_pixels(entry.get("pixels"), path) if role == "pixel_switch" else {},
    )


def _channels(
    value: Any,
    path: Path | None,
    simulated: bool,
    drivers: Mapping[str, str],
    roles: Mapping[str, RoleConfig],
) -> dict[str, dict[str, RoleConfig]]:
    """Validate ``channels:``: channel number -> its roles, every resource its own device."""
    channels: dict[str, dict[str, RoleConfig]] = {}
    used = {rc.resource: (f"roles.{rc.role}", rc.driver) for rc in roles.values() if rc.resource}
    for number, roles_any in _as_mapping(value, path, "channels").items():
        entry_name = f"channels.{number}"
        text = str(number).strip()
        if isinstance(number, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_CHANNEL:
            raise _fail(path, entry_name, f"channel numbers are whole numbers 1 to {MAX_CHANNEL}")
        name = str(int(text))
        if name in channels:
            raise _fail(path, entry_name, "channel given twice")
        own: dict[str, RoleConfig] = {}
        for role, entry_any in _as_mapping(roles_any, path, entry_name).items():
            if role not in CHANNEL_ROLES:
                raise _fail(
                    path, f"{entry_name}.{role}", f"not a channel role ({', '.join(CHANNEL_ROLES)})"
                )
            rc = _role_config(role, entry_any, f"{entry_name}.{role}", path, simulated, drivers)
            if rc.resource and rc.resource in used and not _shares(rc.driver, used[rc.resource][1]):
                raise _fail(
                    path,
                    f"{entry_name}.{role}.resource",
                    f"{rc.resource!r} is already {used[rc.resource][0]}: each channel has its "
                    "own instruments (or its own SMU of a multi-channel source meter)",
                )
            used[rc.resource] = (f"{entry_name}.{role}", rc.driver)
            own[role] = rc
        missing = [r for r in ("source_meter", "photodetector") if r not in own]
        if missing:
            raise _fail(path, entry_name, f"missing role(s) {', '.join(missing)}")
        channels[name] = own
    return channels


def _shares(driver: str, other: str) -> bool:
    """Return whether two drivers are different SMUs of one multi-channel instrument."""
    family = SHARED_INSTRUMENT_DRIVERS.get(driver)
    return family is not None and family == SHARED_INSTRUMENT_DRIVERS.get(other) and driver != other


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


def _sample_overrides(value: Any, path: Path | None) -> dict[str, float]:
    """Validate ``sim.sample``: LED ageing parameters overriding the preset's."""
    from perovlab_daq.sim.presets import ageing_override

    result: dict[str, float] = {}
    for key, number in _as_mapping(value, path, "sim.sample").items():
        try:
            result[str(key)] = ageing_override(str(key), number)
        except ValueError as exc:
            raise _fail(path, f"sim.sample.{key}", str(exc)) from None
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
    ref = resources.files("perovlab_daq.sim_configs") / SIM_BENCH_RESOURCE
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
        sample=config.sim.sample,
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
        catalog=config.catalog,
        files_as_given=config.files_as_given,
        channels=config.channels,
        alerts=config.alerts,
    )
