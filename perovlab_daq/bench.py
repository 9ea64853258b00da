"""An open bench: the instruments of a bench file, connected, and their safe state.

:class:`Bench` opens every role of a :class:`~perovlab_daq.bench_file.BenchConfig` (or
the simulator behind ``--sim``), switches every output off when it closes (read back),
and re-opens a role with the settings it was opened with. Procedures never build
instruments: they receive them from an open :class:`Bench`. Reading and validating bench
files is :mod:`perovlab_daq.bench_file` (its names are re-exported here).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perovlab_daq.bench_file import (  # noqa: F401 - the public names of bench files, re-exported
    DEFAULT_PRESET,
    DEFAULT_REQUIRED_ROLES,
    KNOWN_ROLES,
    SETUP_FIELDS,
    SETUP_FILES,
    SIM_BENCH_RESOURCE,
    BenchConfig,
    BenchError,
    RoleConfig,
    SimConfig,
    _fail,
    _known_drivers,
    load_bench,
    parse_bench,
    sha256_of,
    sim_bench,
)

log = logging.getLogger(__name__)


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
        from perovlab_daq.sim.presets import get_preset, with_ageing
        from perovlab_daq.sim.visalib import SimBenchLibrary
        from perovlab_daq.sim.world import World

        sim = self.config.sim or SimConfig()
        # Without an open switch the pixel first in the map (or "1") is wired for good.
        switched = "pixel_switch" in self.role_names
        first = next(iter(self.config.pixel_map), "1")
        self.world = World(
            with_ageing(get_preset(sim.preset), sim.sample),
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
        from perovlab_daq.instruments import VISA_DRIVERS, load_driver

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
            for key, value in self.config.sim.sample.items():
                meta[f"sim_sample_{key}"] = value
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
