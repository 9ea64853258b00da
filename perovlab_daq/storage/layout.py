"""The on-disk HDF5 layout of a run (docs/hdf5-layout.md): writing it, live and on recovery.

:class:`RunFileWriter` is the only code that creates groups and datasets; the live writer
thread and :func:`perovlab_daq.storage.recover` both drive it, so a rebuilt file has exactly
the layout of a file written live. Names, statuses and versions are defined here once.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5s

import perovlab_daq
from perovlab_daq.calibration import sha256_of  # noqa: F401 - one hash for every file recorded

log = logging.getLogger(__name__)

#: Version of the layout below; bump the major part on incompatible changes.
FILE_FORMAT_VERSION = "1.0"
#: HDF5 2.0 'latest' means v200, unreadable by HDF5 1.10/1.12/1.14 tools; v110 is the oldest
#: format that supports SWMR and still reads with Debian's h5dump.
LIBVER = ("v110", "v110")

RUNNING = "running"
FINISHED = "finished"
ABORTED = "aborted"
FAILED = "failed"
INTERRUPTED = "interrupted"
QUEUED = "queued"
STATUSES = (QUEUED, RUNNING, FINISHED, ABORTED, FAILED, INTERRUPTED)
TERMINAL_STATUSES = (FINISHED, ABORTED, FAILED, INTERRUPTED)

#: Rows per chunk of a live column (8 KiB: a 1,000-row run allocates 1 chunk per column,
#: not 4 times its data); frames per chunk are chosen per stream (FRAME_CHUNK_BYTES).
ROW_CHUNK = 1024
#: Bytes per chunk of a frame stream's spectra (7 spectra of 1044 px): a run of one
#: spectrum allocates 58 KiB per stream, not 259 KiB; reads of 1,024 spectra take 147 chunks.
FRAME_CHUNK_BYTES = 64 * 1024
#: Frames per chunk of a stream's per-frame context columns (2 KiB).
CONTEXT_CHUNK = 256
#: Events per chunk of the fixed-size live event texts (37 KiB; they are rewritten as
#: variable-length strings at close, and the live chunk's space is not given back).
EVENT_TEXT_CHUNK = 32
#: Chunk cache per open dataset (``rdcc_nbytes``) of the files this package opens.
#: HDF5 2.0 raised its default from 1 MiB to 8 MiB per dataset; a run file has a dozen
#: column datasets written in order (only the chunk being filled needs caching), so
#: the new default kept ~100 MB of a 1M-row run's chunks in memory while it ran.
#: 1 MiB holds 32 column chunks or 4 spectrum chunks.
CHUNK_CACHE_BYTES = 1 << 20
#: Fixed sizes of live event fields (UTF-8 bytes; longer texts are cut at a character).
EVENT_FIELDS = {"timestamp": 40, "level": 16, "kind": 64, "message": 1024}
_EVENT_TEXT_DTYPES = {f: h5py.string_dtype("utf-8", size) for f, size in EVENT_FIELDS.items()}

#: Event kinds that record a state (a JSON object), stored as changes only.
STATE_EVENT_KINDS = frozenset({"device_state"})
#: Keys of a state that change at every save without the state changing: the wall time
#: of the save and the noise generator.
VOLATILE_STATE_KEYS = frozenset({"time_s", "rng_state"})
#: Relative change of any number in a state below which the state counts as unchanged.
STATE_TOLERANCE = 1e-3

#: Units of well-known per-frame context quantities when a frame does not say.
KNOWN_UNITS = {
    "time": "s",
    "elapsed_time": "s",
    "voltage": "V",
    "bias": "V",
    "current": "A",
    "current_density": "mA/cm^2",
    "luminance": "cd/m^2",
    "laser_power": "W",
    "power": "W",
    "integration_time": "s",
    "temperature": "K",
    "wavelength": "nm",
}

_UNIT_IN_NAME = re.compile(r"\(([^()]+)\)\s*$")


#: The word that marks a simulated run in titles, on the console and on every figure.
SIMULATED_MARK = "SIMULATED"


def is_simulated(header: Mapping[str, Any]) -> bool:
    """Return whether a run header describes a run on the simulated bench (its metadata)."""
    value = (header.get("metadata") or {}).get("simulated")
    return bool(value) and str(value).lower() not in {"0", "false", "no"}


def file_is_simulated(file: h5py.File) -> bool:
    """Return whether an open run file was taken on the simulated bench.

    ``entry/instrument/simulated`` (written since issue 22), else the older
    ``entry/metadata@simulated`` attribute; False when neither is there.
    """
    flag = file.get("entry/instrument/simulated")
    if isinstance(flag, h5py.Dataset):
        return bool(flag[()])
    meta = file.get("entry/metadata")
    value = meta.attrs.get("simulated") if meta is not None else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return bool(value) and str(value).lower() not in {"0", "false", "no"}


def now_iso() -> str:
    """Return the current local time as ISO 8601 with its UTC offset."""
    return _dt.datetime.now().astimezone().isoformat(timespec="milliseconds")


def dataset_name(name: str) -> str:
    """Return a valid HDF5 link name for a column or key (no '/', not '.' or empty)."""
    cleaned = str(name).replace("/", "_").strip()
    if cleaned in {"", ".", ".."}:
        cleaned = "_" + cleaned.replace(".", "_")
    return cleaned


def unit_from_column_name(name: str) -> str:
    """Return the unit written in parentheses at the end of a pymeasure column, or ''."""
    match = _UNIT_IN_NAME.search(str(name))
    return match.group(1).strip() if match else ""


def truncate_utf8(text: str, size: int) -> bytes:
    """Encode ``text`` as UTF-8 and cut it to ``size`` bytes on a character boundary."""
    raw = str(text).encode("utf-8")
    if len(raw) <= size:
        return raw
    return raw[:size].decode("utf-8", "ignore").encode("utf-8")


#: Attribute of a dataset that stands for ``None`` (not set): the dataset holds NaN.
UNSET_ATTR = "unset"


def _string_or_number(value: Any) -> Any:
    """Return a value h5py can store as a dataset or attribute, converting the rest to text.

    ``None`` becomes NaN: an empty HDF5 dataset (``h5py.Empty``) makes nexusformat's
    ``nxload`` fail, so :func:`create_value` marks such a dataset with ``@unset``.
    """
    if value is None:
        return np.nan
    if isinstance(value, bool | int | float | str | np.generic):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        return value
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, bool | int | float | np.number) for v in value):
            return np.asarray(value)
        if value and all(isinstance(v, str) for v in value):
            return np.asarray(value, dtype=h5py.string_dtype())
        if not value:
            return np.zeros(0)
    return str(value)


def create_value(group: h5py.Group, name: str, value: Any) -> h5py.Dataset:
    """Create dataset ``name`` holding ``value``; ``None`` is NaN with ``@unset = 1``."""
    dataset = group.create_dataset(name, data=_string_or_number(value))
    if value is None:
        dataset.attrs[UNSET_ATTR] = 1
    return dataset


def state_changed(previous: str | None, message: str, tolerance: float = STATE_TOLERANCE) -> bool:
    """Return whether state event ``message`` differs from the ``previous`` one stored.

    Both are JSON objects; :data:`VOLATILE_STATE_KEYS` are ignored and numbers count as
    equal within a relative ``tolerance``. A message that is not JSON compares as text.
    """
    if previous is None:
        return True
    try:
        old, new = json.loads(previous), json.loads(message)
    except ValueError:
        return previous != message
    return not _same_state(old, new, tolerance)


def _same_state(old: Any, new: Any, tolerance: float) -> bool:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = (set(old) | set(new)) - VOLATILE_STATE_KEYS
        return all(_same_state(old.get(k), new.get(k), tolerance) for k in keys)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(
            _same_state(a, b, tolerance) for a, b in zip(old, new, strict=True)
        )
    # Floats within the tolerance are the same state; integers (counters, and random-number
    # generator states of 128 bits, which numpy cannot hold) only when equal.
    if isinstance(old, float) or isinstance(new, float):
        if isinstance(old, int | float) and isinstance(new, int | float):
            if math.isnan(old) and math.isnan(new):
                return True
            return math.isclose(old, new, rel_tol=tolerance, abs_tol=0.0)
    return old == new


def write_mapping(group: h5py.Group, mapping: Mapping[str, Any]) -> None:
    """Write a nested mapping into ``group``: dicts become subgroups, the rest datasets.

    A value given as ``{"value": v, "units": u}`` becomes one dataset with a ``units``
    attribute.
    """
    for key, value in mapping.items():
        name = dataset_name(key)
        if name in group:
            del group[name]
        if isinstance(value, Mapping) and set(value) <= {"value", "units"} and "value" in value:
            dataset = create_value(group, name, value["value"])
            dataset.attrs["units"] = str(value.get("units") or "")
        elif isinstance(value, Mapping):
            sub = group.create_group(name, track_order=True)
            sub.attrs["NX_class"] = "NXcollection"
            write_mapping(sub, value)
        else:
            create_value(group, name, value)


def read_value(dataset: h5py.Dataset) -> Any:
    """Read a scalar or small dataset back as Python values (strings decoded)."""
    if dataset.shape is None or dataset.attrs.get(UNSET_ATTR, 0):  # None (older: h5py.Empty)
        return None
    value = dataset[()]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_mapping(group: h5py.Group) -> dict[str, Any]:
    """Read a group written by :func:`write_mapping` back into nested dicts."""
    result: dict[str, Any] = {}
    for name, item in group.items():
        if isinstance(item, h5py.Group):
            result[name] = read_mapping(item)
        else:
            result[name] = read_value(item)
    return result


def calibration_record(path: str | os.PathLike[str], embed_limit: int = 1 << 20) -> dict[str, Any]:
    """Describe a file: path as given, resolved path, size, sha256 and small text content.

    Keys: ``file_name`` (as given), ``path`` (resolved), ``size``, ``sha256`` and, when
    text under ``embed_limit`` bytes, ``content``; ``error`` if it cannot be read.
    """
    file_path = Path(path).expanduser()
    record: dict[str, Any] = {
        "file_name": os.fspath(path),
        "path": os.fspath(file_path.resolve()),
    }
    try:
        record["sha256"] = sha256_of(file_path)
        record["size"] = file_path.stat().st_size
        if record["size"] <= embed_limit:
            try:
                record["content"] = file_path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                pass
    except OSError as exc:
        record["error"] = f"cannot read: {exc.strerror or exc}"
    return record


class RunFileWriter:
    """Write one run into an open :class:`h5py.File` following the layout.

    Parameters
    ----------
    header
        The run description (see :meth:`perovlab_daq.storage.results.HDF5Results` header):
        versions, procedure, columns ``[[key, dataset, units], ...]``, parameters,
        instruments, sample, metadata.
    """

    def __init__(self, header: Mapping[str, Any]) -> None:
        self.header = header
        self.file: h5py.File | None = None
        self.rows = 0
        self.events = 0
        self.frames: dict[str, int] = {}
        self.column_datasets: list[h5py.Dataset] = []
        #: The live event datasets (time, then EVENT_FIELDS), looked up once per file.
        self.event_datasets: list[h5py.Dataset] = []
        #: Rows routed to the header's ``split`` group (lifetime: check sweeps), if any.
        self.split_index: int | None = None
        self.split_datasets: list[h5py.Dataset] = []
        self.split_rows = 0

    # -- file handles -----------------------------------------------------------------
    def attach(self, file: h5py.File) -> None:
        """Use ``file`` (freshly opened or re-opened) and pick up the current sizes."""
        self.file = file
        self.event_datasets = []
        data = file["entry/data"]
        columns = self.header["columns"]
        self.column_datasets = [data[dataset] for _key, dataset, _units in columns]
        self.rows = min((len(d) for d in self.column_datasets), default=0)
        split = self.header.get("split") or {}
        group = file["entry"].get(dataset_name(split.get("group", ""))) if split else None
        self.split_index = None
        self.split_datasets = []
        self.split_rows = 0
        if group is not None:
            keys = [key for key, _name, _units in columns]
            self.split_index = keys.index(split["column"])
            self.split_datasets = [group[name] for _key, name, _units in columns]
            self.split_rows = min((len(d) for d in self.split_datasets), default=0)
        self.events = len(file["entry/events/time"]) if "entry/events/time" in file else 0
        spectra = {}
        for stream, item in file["entry"].items():
            if isinstance(item, h5py.Group) and "intensity" in item:
                spectra[stream] = len(item["intensity"])
        self.frames = spectra

    # -- skeleton ---------------------------------------------------------------------
    def write_skeleton(self, file: h5py.File) -> None:
        """Create every group and dataset known before the run starts (status ``queued``)."""
        header = self.header
        file.attrs["NX_class"] = "NXroot"
        file.attrs["default"] = "entry"
        file.attrs["perovlab_daq_version"] = header["perovlab_daq_version"]
        file.attrs["file_format_version"] = header["file_format_version"]
        file.attrs["creator"] = f"perovlab-daq {perovlab_daq.__version__}"
        file.attrs["HDF5_Version"] = h5py.version.hdf5_version
        file.attrs["h5py_version"] = h5py.version.version
        file.attrs["file_time"] = header["created"]

        entry = file.create_group("entry", track_order=True)
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        entry.attrs["procedure"] = header["procedure"]
        entry.attrs["procedure_class"] = header["procedure_class"]
        simulated = is_simulated(header)
        title = header.get("title") or header["procedure"]
        if simulated and not str(title).startswith(SIMULATED_MARK):
            title = f"{SIMULATED_MARK}: {title}"
        entry.attrs["title"] = title
        entry.create_dataset("title", data=str(title))
        entry.attrs["status"] = QUEUED
        entry.attrs["status_reason"] = ""
        entry.attrs["start_time"] = ""
        entry.attrs["end_time"] = ""
        entry.attrs["durability_interval_s"] = float(header["durability_interval_s"])
        entry.attrs["power_loss_safe"] = bool(header["power_loss_safe"])
        entry.attrs["simulated"] = simulated

        parameters = entry.create_group("parameters", track_order=True)
        parameters.attrs["NX_class"] = "NXparameters"
        for parameter in header["parameters"]:
            name = dataset_name(parameter["key"])
            dataset = create_value(parameters, name, parameter["value"])
            dataset.attrs["units"] = parameter.get("units") or ""
            dataset.attrs["name"] = parameter.get("name") or parameter["key"]
            dataset.attrs["type"] = parameter.get("type") or ""

        metadata = entry.create_group("metadata", track_order=True)
        metadata.attrs["NX_class"] = "NXcollection"
        for key, value in (header.get("metadata") or {}).items():
            if value is not None:  # an unset value is left out (NeXus tools reject empty ones)
                metadata.attrs[dataset_name(key)] = _string_or_number(value)

        sample = entry.create_group("sample", track_order=True)
        sample.attrs["NX_class"] = "NXsample"
        sample_fields = dict(header.get("sample") or {})
        if "sample" in sample_fields and "name" not in sample_fields:
            sample_fields["name"] = sample_fields["sample"]
        write_mapping(sample, sample_fields)

        instrument = entry.create_group("instrument", track_order=True)
        instrument.attrs["NX_class"] = "NXinstrument"
        flag = instrument.create_dataset("simulated", data=simulated)
        flag.attrs["long_name"] = "taken on the simulated bench (no real instrument)"
        for role, description in (header.get("instruments") or {}).items():
            group = instrument.create_group(dataset_name(role), track_order=True)
            group.attrs["NX_class"] = "NXcollection"
            description = dict(description)
            calibrations = description.pop("calibration_files", None) or []
            settings = description.pop("settings", None) or {}
            write_mapping(group, {k: v for k, v in description.items() if v is not None})
            settings_group = group.create_group("settings", track_order=True)
            settings_group.attrs["NX_class"] = "NXcollection"
            write_mapping(settings_group, settings)
            if calibrations:
                files = group.create_group("calibration_files", track_order=True)
                files.attrs["NX_class"] = "NXcollection"
                for record in calibrations:
                    base = dataset_name(Path(record["path"]).name)
                    name, n = base, 1
                    while name in files:
                        n += 1
                        name = f"{base}_{n}"
                    _write_file_note(files, name, record)
                    for key in ("path", "sha256"):  # also as attributes (format 1.0 readers)
                        if key in record:
                            files[name].attrs[key] = record[key]

        columns = header["columns"]
        data = entry.create_group("data", track_order=True)
        plot = header.get("plot") or {}
        set_plot(data, [name for _key, name, _units in columns], plot)
        self._create_columns(data, columns)
        split = header.get("split")
        if split and any(key == split["column"] for key, _n, _u in columns):
            group = entry.create_group(dataset_name(split["group"]), track_order=True)
            set_plot(group, [name for _key, name, _units in columns], split.get("plot") or {})
            group.attrs["selection"] = f"rows with {split['column']} > 0"
            self._create_columns(group, columns)
        if plot.get("group", "data") != "data":
            entry.attrs["default"] = "data"  # until the default stream's group exists
        write_provenance(entry, header.get("provenance") or {})

        events = entry.create_group("events", track_order=True)
        events.attrs["NX_class"] = "NXcollection"
        time = events.create_dataset(
            "time", shape=(0,), maxshape=(None,), chunks=(256,), dtype="f8"
        )
        time.attrs["units"] = "s"
        time.attrs["long_name"] = "time since the run started"
        for field, size in EVENT_FIELDS.items():
            events.create_dataset(
                field,
                shape=(0,),
                maxshape=(None,),
                chunks=(EVENT_TEXT_CHUNK,),
                dtype=h5py.string_dtype("utf-8", size),
            )
        self.attach(file)

    @staticmethod
    def _create_columns(group: h5py.Group, columns: Sequence[Sequence[str]]) -> None:
        for key, name, units in columns:
            dataset = group.create_dataset(
                name,
                shape=(0,),
                maxshape=(None,),
                chunks=(ROW_CHUNK,),
                dtype="f8",
                fillvalue=np.nan,
            )
            dataset.attrs["units"] = units or ""
            if key != name:
                dataset.attrs["long_name"] = key

    def start_run(self, start_time: str) -> None:
        """Mark the run as running (before SWMR mode: attributes cannot change after)."""
        entry = self.file["entry"]
        entry.attrs["status"] = RUNNING
        entry.attrs["start_time"] = start_time
        set_text_field(entry, "start_time", start_time)

    # -- streaming --------------------------------------------------------------------
    def append_rows(self, values: np.ndarray) -> None:
        """Append an ``(n, n_columns)`` float array to the data columns."""
        if len(values) == 0:
            return
        if self.split_index is not None:
            routed = values[:, self.split_index] > 0  # NaN compares False: stays in data
            if routed.any():
                self.split_rows = _append(self.split_datasets, self.split_rows, values[routed].T)
                values = values[~routed]
        self.rows = _append(self.column_datasets, self.rows, values.T)

    def has_stream(self, stream: str, context_keys: Iterable[str]) -> bool:
        """Return whether ``stream`` and every context dataset exist (else restructure)."""
        group = self.file["entry"].get(dataset_name(stream))
        if group is None:
            return False
        return all(dataset_name(k) in group for k in context_keys)

    def add_stream(
        self,
        stream: str,
        wavelength: np.ndarray,
        context_units: Mapping[str, str],
        intensity_units: str = "counts",
    ) -> None:
        """Create (or extend with new context datasets) the NXdata group of a frame stream.

        Needs the file out of SWMR mode: the caller re-opens it around this call.
        """
        name = dataset_name(stream)
        entry = self.file["entry"]
        pixels = len(wavelength)
        if name not in entry:
            group = entry.create_group(name, track_order=True)
            group.attrs["NX_class"] = "NXdata"
            group.attrs["signal"] = "intensity"
            group.attrs["axes"] = ["time", "wavelength"]
            group.attrs["time_indices"] = 0
            group.attrs["wavelength_indices"] = 1
            wl = group.create_dataset("wavelength", data=np.asarray(wavelength, dtype="f8"))
            wl.attrs["units"] = "nm"
            frames_per_chunk = max(1, min(64, FRAME_CHUNK_BYTES // max(1, pixels * 8)))
            intensity = group.create_dataset(
                "intensity",
                shape=(0, pixels),
                maxshape=(None, pixels),
                chunks=(frames_per_chunk, pixels),
                dtype="f8",
                fillvalue=np.nan,
            )
            intensity.attrs["units"] = intensity_units
            intensity.attrs["interpretation"] = "spectrum"
            self.frames[stream] = 0
            if (self.header.get("plot") or {}).get("group") == name:
                entry.attrs["default"] = name
        group = entry[name]
        count = len(group["intensity"])
        for key, units in context_units.items():
            key_name = dataset_name(key)
            if key_name in group:
                continue
            dataset = group.create_dataset(
                key_name,
                shape=(count,),
                maxshape=(None,),
                chunks=(CONTEXT_CHUNK,),
                dtype="f8",
                fillvalue=np.nan,
            )
            dataset.attrs["units"] = units or ""
        group.attrs["context"] = [
            n
            for n in group
            if n not in ("wavelength", "intensity") and isinstance(group[n], h5py.Dataset)
        ]

    def append_frames(
        self, stream: str, intensity: np.ndarray, context: Mapping[str, np.ndarray]
    ) -> None:
        """Append ``(k, pixels)`` frames and their per-frame context columns."""
        group = self.file["entry"][dataset_name(stream)]
        count = len(intensity)
        start = self.frames.get(stream, len(group["intensity"]))
        stop = start + count
        group["intensity"].resize((stop, intensity.shape[1]))
        group["intensity"][start:stop] = intensity
        for name in group.attrs.get("context", []):
            dataset = group[name]
            dataset.resize((stop,))
            key = next((k for k in context if dataset_name(k) == name), None)
            if key is not None:
                dataset[start:stop] = context[key]
        self.frames[stream] = stop

    def append_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Append events (``time``, ``timestamp``, ``level``, ``kind``, ``message``)."""
        if not events:
            return
        if not self.event_datasets:
            group = self.file["entry/events"]
            self.event_datasets = [group["time"], *(group[field] for field in EVENT_FIELDS)]
        columns = [np.array([float(e.get("time", np.nan)) for e in events])]
        for field, size in EVENT_FIELDS.items():
            columns.append(
                np.array(
                    [truncate_utf8(e.get(field, ""), size) for e in events],
                    dtype=_EVENT_TEXT_DTYPES[field],
                )
            )
        self.events = _append(self.event_datasets, self.events, columns)

    # -- end of run -------------------------------------------------------------------
    def finalize(
        self,
        status: str,
        reason: str,
        end_time: str,
        *,
        analysis: Mapping[str, Any] | None = None,
        run_metadata: Mapping[str, Any] | None = None,
        start_time: str | None = None,
    ) -> None:
        """Write the final status, end time, pymeasure metadata and analysis (file not SWMR)."""
        entry = self.file["entry"]
        entry.attrs["status"] = status
        entry.attrs["status_reason"] = reason or ""
        entry.attrs["end_time"] = end_time
        if start_time and not entry.attrs.get("start_time"):
            entry.attrs["start_time"] = start_time
        if entry.attrs.get("start_time"):
            set_text_field(entry, "start_time", entry.attrs["start_time"])
        set_text_field(entry, "end_time", end_time)
        if entry.attrs.get("default") not in entry:
            entry.attrs["default"] = "data"
        if run_metadata:
            write_mapping(entry["metadata"], run_metadata)
        self.compact_events()
        if analysis:
            self.write_analysis(analysis)

    def append_closed_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Append events to a closed run's file (texts already variable-length)."""
        self.compact_events()
        group = self.file["entry/events"]
        start = len(group["time"])
        stop = start + len(events)
        group["time"].resize((stop,))
        group["time"][start:stop] = [float(e.get("time", np.nan)) for e in events]
        for field in EVENT_FIELDS:
            group[field].resize((stop,))
            group[field][start:stop] = np.array(
                [str(e.get(field, "")) for e in events], dtype=object
            )
        self.events = stop

    def compact_events(self) -> None:
        """Rewrite the fixed-size live event texts as variable-length strings (not SWMR)."""
        self.event_datasets = []
        group = self.file["entry/events"]
        for field in EVENT_FIELDS:
            dataset = group.get(field)
            if dataset is None or h5py.check_string_dtype(dataset.dtype).length is None:
                continue
            values = [v.decode("utf-8", "replace") for v in dataset[: len(group["time"])]]
            del group[field]
            group.create_dataset(
                field,
                data=np.array(values, dtype=object),
                dtype=h5py.string_dtype(),
                maxshape=(None,),
                chunks=(256,),
            )

    def write_analysis(self, analysis: Mapping[str, Any]) -> None:
        """Write (or update) ``entry/analysis`` from a mapping of figures."""
        write_mapping(analysis_group(self.file), analysis)


def append_closed_event(file: h5py.File, event: Mapping[str, Any]) -> None:
    """Append ``event`` to the open file of a closed run (if it has an events group)."""
    if "entry/events/time" in file:
        writer = RunFileWriter({})
        writer.file = file
        writer.append_closed_events([event])


def _append(datasets: Sequence[h5py.Dataset], start: int, columns: Sequence[np.ndarray]) -> int:
    """Append ``columns[i]`` to ``datasets[i]`` at row ``start``; return the new end.

    Through h5py's low-level calls (extent, hyperslab, write): the high-level
    ``resize`` + slice assignment costs about 3 times as much Python per column (139 us
    against 48 us for 600 rows, measured), and the writer thread holds the GIL the
    acquisition needs meanwhile.
    """
    count = len(columns[0]) if len(columns) else 0
    stop = start + count
    if count:
        memory = h5s.create_simple((count,))
        for dataset, column in zip(datasets, columns, strict=True):
            dataset_id = dataset.id
            dataset_id.set_extent((stop,))
            space = dataset_id.get_space()
            space.select_hyperslab((start,), (count,))
            dataset_id.write(memory, space, np.ascontiguousarray(column, dataset.dtype))
    return stop


def set_text_field(group: h5py.Group, name: str, text: Any) -> None:
    """Write (or replace) the string field ``name`` (NeXus fields: title, start_time...)."""
    value = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    if name in group:
        del group[name]
    group.create_dataset(name, data=value, dtype=h5py.string_dtype())


def set_plot(group: h5py.Group, names: Sequence[str], plot: Mapping[str, Any]) -> None:
    """Make ``group`` an NXdata of columns ``names`` plotting ``plot`` (signal, axes, aux).

    Without a usable ``plot`` the second column is plotted against the first.
    """
    group.attrs["NX_class"] = "NXdata"
    if not names:
        return
    axis, signal = plot.get("axes"), plot.get("signal")
    if axis not in names or signal not in names:
        axis, signal = names[0], names[1] if len(names) > 1 else names[0]
    group.attrs["signal"] = signal
    group.attrs["axes"] = axis
    group.attrs[f"{axis}_indices"] = 0
    auxiliary = [n for n in plot.get("auxiliary_signals", ()) if n in names and n != signal]
    if auxiliary:
        group.attrs["auxiliary_signals"] = auxiliary


def write_provenance(entry: h5py.Group, provenance: Mapping[str, Any]) -> None:
    """Write ``entry/provenance`` (docs/hdf5-layout.md) from :func:`header.provenance`.

    Versions, host, station, the bench file and the calibration files (path as given,
    resolved path, sha256, content), each file as an NXnote.
    """
    if not provenance:
        return
    group = entry.create_group("provenance", track_order=True)
    group.attrs["NX_class"] = "NXcollection"
    plain = {k: v for k, v in provenance.items() if k not in ("bench_file", "calibration_files")}
    write_mapping(group, {k: ("" if v is None else v) for k, v in plain.items()})
    bench = provenance.get("bench_file")
    if bench:
        _write_file_note(group, "bench_file", bench)
    calibrations = provenance.get("calibration_files") or {}
    if calibrations:
        files = group.create_group("calibration_files", track_order=True)
        files.attrs["NX_class"] = "NXcollection"
        for key, record in calibrations.items():
            _write_file_note(files, dataset_name(key), record)


def _write_file_note(parent: h5py.Group, name: str, record: Mapping[str, Any]) -> None:
    """Write one file record as an NXnote: file_name (as given), path, sha256, size, data."""
    note = parent.create_group(name, track_order=True)
    note.attrs["NX_class"] = "NXnote"
    for key in ("file_name", "path", "sha256", "error"):
        if record.get(key) is not None:
            set_text_field(note, key, record[key])
    if record.get("size") is not None:
        note.create_dataset("size", data=int(record["size"])).attrs["units"] = "B"
    if record.get("content") is not None:
        set_text_field(note, "data", record["content"])
        set_text_field(note, "type", "text/plain")


def analysis_group(file: h5py.File) -> h5py.Group:
    """Return ``entry/analysis``, created if needed (the file must not be in SWMR mode)."""
    group = file["entry"].require_group("analysis")
    group.attrs["NX_class"] = "NXcollection"
    return group
