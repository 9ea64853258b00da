"""The procedure side of a run file: its header written from a procedure, and back.

:func:`run_header` turns a pymeasure procedure and what the runner knows about the bench
into the header :class:`~perovlab_daq.storage.layout.RunFileWriter` writes into the file
skeleton and the journal keeps for recovery. :func:`procedure_from_info` rebuilds a
procedure from a file's description: its class is the one installed under the file's
procedure name (``procedures.registry``); nothing read from a file is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pymeasure.experiment import Procedure

import perovlab_daq

from . import layout
from .reader import RunInfo

log = logging.getLogger(__name__)

#: Default plot of each shipped procedure (docs/hdf5-layout.md "Default plot"): the NXdata
#: group the entry's ``@default`` names, its ``@signal``, ``@axes`` and auxiliary signals.
#: A group other than ``data`` is a frame stream; it becomes the default once it exists.
_SPECTRA = {"group": "spectra", "signal": "intensity", "axes": ["time", "wavelength"]}
DEFAULT_PLOTS: dict[str, dict[str, Any]] = {
    "jlv": {
        "group": "data",
        "signal": "current_density",
        "axes": "voltage",
        "auxiliary_signals": ["luminance"],
    },
    "lifetime": {"group": "data", "signal": "relative_luminance", "axes": "device_time"},
    "pl-stability": {"group": "data", "signal": "relative_intensity", "axes": "device_time"},
    "pl-fluence": {"group": "data", "signal": "integrated_pl", "axes": "power_density"},
    "el-spectra": _SPECTRA,
    "pl-spectrum": _SPECTRA,
    "plqy": _SPECTRA,
}
#: Rows stored apart from ``entry/data`` (by procedure): rows whose ``column`` is > 0 go
#: to ``group``. The lifetime's short J-L-V check sweeps are not stress rows.
ROW_SPLITS: dict[str, dict[str, Any]] = {
    "lifetime": {
        "column": "jlv_sweep",
        "group": "check_sweeps",
        "plot": DEFAULT_PLOTS["jlv"],
    },
}
#: Seconds ``git describe`` may take (it must never hold up a run).
GIT_TIMEOUT_S = 2.0


def procedure_name(procedure_class: type) -> str:
    """Return the short procedure name (``NAME`` or the snake_case class name)."""
    name = getattr(procedure_class, "NAME", "") or ""
    if name:
        return str(name)
    base = procedure_class.__name__.removesuffix("Procedure") or procedure_class.__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()


def column_specs(procedure: Procedure) -> list[list[str]]:
    """Return ``[[key, dataset_name, units], ...]`` from ``COLUMNS`` and ``DATA_COLUMNS``."""
    declared = dict(getattr(procedure, "COLUMNS", None) or {})
    keys = list(getattr(procedure, "DATA_COLUMNS", None) or []) or list(declared)
    specs: list[list[str]] = []
    used: set[str] = set()
    for key in keys:
        name = layout.dataset_name(key)
        base, n = name, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        units = declared.get(key)
        if units is None:
            units = layout.unit_from_column_name(key)
        specs.append([str(key), name, str(units or "")])
    return specs


def parameter_records(procedure: Procedure) -> list[dict[str, Any]]:
    """Return ``[{key, name, value, units, type}, ...]`` of the procedure's parameters."""
    records = []
    for key, parameter in procedure.parameter_objects().items():
        try:
            value = parameter.value
        except ValueError:  # not set
            value = None
        records.append(
            {
                "key": key,
                "name": parameter.name,
                "value": value,
                "units": getattr(parameter, "units", None) or "",
                "type": type(parameter).__name__,
            }
        )
    return records


def describe_instrument(instrument: Any) -> dict[str, Any]:
    """Describe a connected instrument (a driver object or a ready-made mapping).

    A mapping is taken as ``{driver, resource, identity, settings, calibration_files}``;
    from a driver object the description is read from ``snapshot()``, ``identity`` and its
    adapter. Nothing here raises: a failing snapshot is recorded as ``snapshot_error``.
    """
    if isinstance(instrument, Mapping):
        description = dict(instrument)
    else:
        cls = type(instrument)
        description = {"driver": f"{cls.__module__}:{cls.__qualname__}"}
        adapter = getattr(instrument, "adapter", None)
        connection = getattr(adapter, "connection", None)
        resource = getattr(connection, "resource_name", None) or getattr(
            instrument, "resource", None
        )
        description["resource"] = resource
        try:
            description["identity"] = getattr(instrument, "identity", None)
        except Exception as exc:  # noqa: BLE001 - a snapshot must never stop a run
            description["identity_error"] = str(exc)
        try:
            description["settings"] = instrument.snapshot()
        except Exception as exc:  # noqa: BLE001
            description["snapshot_error"] = str(exc)
        description["calibration_files"] = list(getattr(instrument, "calibration_files", []) or [])
    description["calibration_files"] = calibration_records(
        description.get("calibration_files") or []
    )
    for key in ("driver", "resource", "identity"):
        if description.get(key) is None:
            description[key] = ""
    return description


def calibration_records(calibrations: Any) -> list[dict[str, Any]]:
    """Return full records of calibration files (paths, records or a name -> either map).

    Each record is :func:`~perovlab_daq.storage.layout.calibration_record` of the file; a
    given record's ``file_name`` (path as the bench file wrote it) is kept.
    """
    items = calibrations.values() if isinstance(calibrations, Mapping) else calibrations
    records = []
    for item in items:
        if isinstance(item, Mapping):
            record = layout.calibration_record(item["path"])
            if item.get("file_name"):
                record["file_name"] = str(item["file_name"])
        else:
            record = layout.calibration_record(item)
        records.append(record)
    return records


def git_describe(package_dir: Path | None = None) -> str:
    """Return ``git describe --always --dirty --tags`` of the package's checkout, or ''.

    '' for an installed package, no git, or a slow or failing git: this never raises.
    """
    root = (package_dir or Path(perovlab_daq.__file__).resolve().parent).parent
    if not (root / ".git").exists():
        return ""
    try:
        done = subprocess.run(
            ["git", "-C", os.fspath(root), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("git describe failed: %s", exc)
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def provenance(bench: Any = None) -> dict[str, Any]:
    """Return what made the file (``entry/provenance``, docs/hdf5-layout.md).

    The run's unique id (a new UUID: the run catalogue's key), package version, git
    describe, host, station, the bench file (path, sha256, content) and every calibration
    file of the bench's set-up (path as given, resolved path, sha256, content).
    ``bench``: an open Bench, a BenchConfig, or None.
    """
    config = getattr(bench, "config", bench)
    record: dict[str, Any] = {
        "run_id": uuid.uuid4().hex,
        "package_version": perovlab_daq.__version__,
        "git_describe": git_describe(),
        "host": socket.gethostname(),
        "station": str(getattr(config, "station", "") or ""),
    }
    path = getattr(config, "path", None)
    if path:
        record["bench_file"] = layout.calibration_record(path)
    given = dict(getattr(config, "files_as_given", None) or {})
    files = {}
    calibration_files = getattr(config, "calibration_files", None)
    for key, resolved in (calibration_files() if calibration_files else {}).items():
        files[key] = layout.calibration_record(resolved)
        files[key]["file_name"] = str(given.get(key, files[key]["file_name"]))
    record["calibration_files"] = files
    return record


def run_header(
    procedure: Procedure,
    columns: list[list[str]],
    *,
    durability_interval_s: float,
    power_loss_safe: bool,
    metadata: Mapping[str, Any] | None = None,
    instruments: Mapping[str, Any] | None = None,
    sample: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the header of a new run of ``procedure`` (see docs/hdf5-layout.md).

    Parameters
    ----------
    procedure
        The run's procedure (class, parameters).
    columns
        ``[[key, dataset_name, units], ...]`` from :func:`column_specs`.
    durability_interval_s, power_loss_safe
        The run's durability settings.
    metadata, instruments, sample
        As for :class:`~perovlab_daq.storage.HDF5Results`.
    """
    cls = type(procedure)
    name = procedure_name(cls)
    return {
        "perovlab_daq_version": perovlab_daq.__version__,
        "file_format_version": layout.FILE_FORMAT_VERSION,
        "created": layout.now_iso(),
        "procedure": name,
        "procedure_class": f"{cls.__module__}:{cls.__qualname__}",
        "title": getattr(cls, "TITLE", "") or "",
        "columns": columns,
        "parameters": parameter_records(procedure),
        "instruments": {
            str(role): describe_instrument(inst) for role, inst in (instruments or {}).items()
        },
        "sample": dict(sample or {}),
        "metadata": dict(metadata or {}),
        "durability_interval_s": float(durability_interval_s),
        "power_loss_safe": bool(power_loss_safe),
        "plot": dict(getattr(cls, "DEFAULT_PLOT", None) or DEFAULT_PLOTS.get(name) or {}),
        "split": ROW_SPLITS.get(name),
        "provenance": provenance(getattr(procedure, "bench", None)),
    }


def procedure_from_info(info: RunInfo, procedure_class: type | None, path: Path) -> Procedure:
    """Return a procedure of ``procedure_class`` (default: the registered one) set from ``info``.

    A stored value is matched to a parameter by key, else by display name; a parameter the
    file lacks keeps its default, and a value the parameter refuses is logged and skipped.

    Raises
    ------
    procedures.registry.UnknownProcedureError
        If ``procedure_class`` is None and no procedure is installed under ``info.procedure``.
    """
    if procedure_class is None:
        from perovlab_daq.procedures.registry import UnknownProcedureError
        from perovlab_daq.procedures.registry import procedure_class as registered

        try:
            procedure_class = registered(info.procedure)
        except UnknownProcedureError as exc:
            raise UnknownProcedureError(
                f"{path}: {exc}; pass procedure_class= to load a run of a procedure that is "
                "not installed"
            ) from None
    procedure = procedure_class()
    by_name = {info.parameter_names[key]: value for key, value in info.parameters.items()}
    for key, parameter in procedure.parameter_objects().items():
        if key in info.parameters:
            value = info.parameters[key]
        elif parameter.name in by_name:
            value = by_name[parameter.name]
        else:
            log.warning("parameter %r not in %s; keeping its default", key, path)
            continue
        try:
            setattr(procedure, key, parameter.convert(value) if value is not None else None)
        except (ValueError, TypeError) as exc:
            log.warning("parameter %r: stored value %r refused (%s)", key, value, exc)
    with contextlib.suppress(Exception):
        procedure.refresh_parameters()
    return procedure
