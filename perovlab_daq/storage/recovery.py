"""Recovery of a run file after a killed process or a power cut: merge file and journal.

A run that did not close leaves its SQLite journal (``<file>.journal``) next to an HDF5
file that is either flagged "open for write" (plain h5py refuses it until ``h5clear``),
torn, or missing recent rows. :func:`recover` reads every readable row, frame and event of
the HDF5 file (through a flag-cleared private copy if needed; the file itself is never
edited) and every intact record of the journal (a torn journal is read up to its last
good record), replays the journal into a NEW file through the same
:class:`~perovlab_daq.storage.layout.RunFileWriter` as the live writer, appends the rows,
frames and events that only the HDF5 file holds (the union keyed by index; where both hold
an index, the journal's copy is kept: it was committed before the HDF5 append), marks it
``interrupted`` (unless the run had reached a final status), and atomically replaces the
original (fsync of file and folder) before deleting the journal. The result never holds
fewer rows than either source. A file that perovlab-daq did not write is refused
(:class:`ForeignFileError`) and left byte-identical.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import layout
from .errors import ForeignFileError, StorageError
from .files import _exclusive_temporary, fsync_file, open_hdf5
from .journal import Journal, fsync_directory, journal_path, writer_alive
from .layout import RunFileWriter
from .salvage import ForeignFile, Salvage, file_size, has_hdf5_signature, open_damaged, read_salvage

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    """What :func:`recover` found and did.

    Attributes
    ----------
    path
        The run file.
    action
        ``"none"`` (file already closed cleanly), ``"rebuilt_from_journal"`` (journal
        merged with what the HDF5 file held) or ``"salvaged_from_hdf5"`` (no usable
        journal).
    status
        Status stored in the file afterwards.
    rows
        Data rows in the file afterwards.
    frames
        Frames per stream afterwards.
    events
        Events in the file afterwards.
    messages
        Human-readable notes (what was wrong, what was dropped).
    """

    path: Path
    action: str
    status: str
    rows: int = 0
    frames: dict[str, int] = field(default_factory=dict)
    events: int = 0
    messages: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        frames = ", ".join(f"{n} {s} frames" for s, n in self.frames.items())
        text = f"{self.path}: {self.action}; status {self.status}; {self.rows} rows"
        if frames:
            text += f", {frames}"
        return text + "".join(f"\n  {m}" for m in self.messages)


def recover(path: str | os.PathLike[str]) -> RecoveryReport:
    """Make a run file that a killed process left behind open with plain h5py again.

    Parameters
    ----------
    path
        The run's ``.h5`` file.

    Returns
    -------
    RecoveryReport
        What was found and done.

    Raises
    ------
    ForeignFileError
        If ``path`` is not a perovlab-daq run file (left untouched).
    StorageError
        If a live writer still holds the run, or nothing usable is left.
    """
    run_path = Path(os.fspath(path))
    journal_file = journal_path(run_path)
    if writer_alive(run_path):
        raise StorageError(f"{run_path} is still being written; stop that run first")
    messages: list[str] = []
    salvage = _read_hdf5(run_path, journal_file, messages)
    records = _journal_records(journal_file, messages) if journal_file.exists() else []
    if records and records[0][0] == "header":
        return _rebuild_from_journal(run_path, journal_file, records, salvage, messages)
    if salvage is None:
        raise StorageError(
            f"{run_path} cannot be read and has no usable journal; nothing can be recovered"
        )
    if journal_file.exists():  # killed while the journal was created, or torn before its header
        messages.append("the journal held no readable header; recovered from the HDF5 file")
        _unlink_journal(journal_file)
    for suffix in ("-wal", "-shm"):  # left if a kill hit the journal's removal
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{journal_file}{suffix}")
    status = str(_text(salvage.attrs.get("status", "")))
    if (status in layout.TERMINAL_STATUSES or status == layout.QUEUED) and not salvage.notes:
        return RecoveryReport(
            run_path,
            "none",
            status,
            rows=salvage.rows,
            messages=["file was closed cleanly; nothing to do"],
        )
    return _salvage_hdf5(run_path, messages)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _unlink_journal(journal_file: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{journal_file}{suffix}")
    fsync_directory(journal_file.parent)


def _read_hdf5(run_path: Path, journal_file: Path, messages: list[str]) -> Salvage | None:
    """Read what the run file holds; refuse a foreign file; ``None`` if nothing readable."""
    if file_size(run_path) == 0:
        return None
    if not has_hdf5_signature(run_path):
        if not journal_file.exists():
            raise ForeignFileError(
                f"{run_path} is not an HDF5 file written by perovlab-daq; refusing to touch it"
            )
        messages.append("the HDF5 file is unreadable (no signature); rebuilt from the journal")
        return None
    try:
        salvage = read_salvage(run_path)
    except ForeignFile:
        raise ForeignFileError(
            f"{run_path} was not written by perovlab-daq (no perovlab-daq marker); "
            "recover only rebuilds this program's run files and left it untouched"
        ) from None
    except (OSError, ValueError, KeyError) as exc:
        messages.append(f"the HDF5 file could not be read ({exc}); using the journal alone")
        return None
    messages.extend(salvage.notes)
    return salvage


def _journal_records(journal_file: Path, messages: list[str]) -> list[tuple[str, Any, Any]]:
    """Every intact record of the journal, up to the first unreadable one (torn journal)."""
    records: list[tuple[str, Any, Any]] = []
    try:
        journal = Journal(journal_file, create=False, lock=False)
    except StorageError as exc:
        messages.append(f"the journal cannot be opened ({exc}); ignored")
        return records
    try:
        iterator = journal.records()
        while True:
            try:
                record = next(iterator)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - any torn record ends the usable part
                messages.append(f"the journal is torn after {len(records)} records ({exc})")
                break
            records.append(record)
    finally:
        journal.close()
    return records


def _temporary_path(run_path: Path) -> tuple[Path, int]:
    return _exclusive_temporary(run_path, "recovering")


def _replace(temporary: Path, run_path: Path) -> None:
    fsync_file(temporary)
    os.replace(temporary, run_path)
    fsync_directory(run_path.parent)


def _rebuild_from_journal(
    run_path: Path,
    journal_file: Path,
    records: list[tuple[str, Any, Any]],
    salvage: Salvage | None,
    messages: list[str],
) -> RecoveryReport:
    temporary, fd = _temporary_path(run_path)
    os.close(fd)
    try:
        writer = RunFileWriter(records[0][1])
        status, reason, end_time, start_time = layout.RUNNING, "", "", ""
        analysis: dict[str, Any] = {}
        run_metadata: dict[str, Any] = {}
        with open_hdf5(temporary, "w") as file:
            writer.write_skeleton(file)
            for kind, meta, arrays in records[1:]:
                if kind == "start":
                    start_time = meta["start_time"]
                    writer.start_run(start_time)
                elif kind == "rows":
                    writer.append_rows(arrays["values"])
                elif kind == "frames":
                    keys = meta["keys"]
                    context = {k: arrays[f"ctx{i}"] for i, k in enumerate(keys)}
                    stream = meta["stream"]
                    if not writer.has_stream(stream, keys):
                        writer.add_stream(
                            stream,
                            arrays["wavelength"],
                            meta["context_units"],
                            meta.get("intensity_units", "counts"),
                        )
                    writer.append_frames(stream, arrays["intensity"], context)
                elif kind == "event":
                    writer.append_events([meta])
                elif kind == "status":
                    status = meta["status"]
                    reason = meta.get("reason", "")
                    end_time = meta.get("end_time", end_time)
                elif kind == "analysis":
                    analysis.update(meta)
                elif kind == "metadata":
                    run_metadata.update(meta)
            journal_rows = writer.rows
            if salvage is not None:
                _merge_hdf5(writer, salvage, messages)
                if status not in layout.TERMINAL_STATUSES:
                    saved = _text(salvage.attrs.get("status", ""))
                    if saved in layout.TERMINAL_STATUSES:
                        status = saved
                        reason = _text(salvage.attrs.get("status_reason", ""))
                        end_time = _text(salvage.attrs.get("end_time", "")) or end_time
                if not start_time:
                    start_time = _text(salvage.attrs.get("start_time", ""))
            if status not in layout.TERMINAL_STATUSES or not end_time:
                if status in layout.TERMINAL_STATUSES:
                    messages.append(f"run had ended {status} but the file was not closed")
                else:
                    reason = (
                        "the run stopped without closing its file (process killed or power "
                        "lost); rebuilt from the journal and the HDF5 file"
                    )
                    status = layout.INTERRUPTED
                end_time = end_time or layout.now_iso()
            writer.append_events(
                [
                    {
                        "time": np.nan,
                        "timestamp": layout.now_iso(),
                        "level": "warning",
                        "kind": "recovered",
                        "message": (
                            f"file rebuilt: {journal_rows} rows from the journal, "
                            f"{salvage.rows if salvage else 0} in the HDF5 file, "
                            f"{writer.rows} kept; status {status}"
                        ),
                    }
                ]
            )
            writer.finalize(
                status,
                reason,
                end_time,
                analysis=analysis,
                run_metadata=run_metadata,
                start_time=start_time,
            )
            report = RecoveryReport(
                run_path,
                "rebuilt_from_journal",
                status,
                rows=writer.rows,
                frames=dict(writer.frames),
                events=writer.events,
                messages=messages,
            )
        _replace(temporary, run_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    _unlink_journal(journal_file)
    log.info("%s", report)
    return report


def _merge_hdf5(writer: RunFileWriter, salvage: Salvage, messages: list[str]) -> None:
    """Append what only the HDF5 file holds (indices past the journal's) to ``writer``."""
    if salvage.rows > writer.rows:
        names = [dataset for _key, dataset, _units in writer.header["columns"]]
        extra = (
            np.column_stack(
                [
                    salvage.columns.get(name, np.full(salvage.rows, np.nan))[writer.rows :]
                    for name in names
                ]
            )
            if names
            else np.empty((0, 0))
        )
        messages.append(
            f"{salvage.rows - writer.rows} rows taken from the HDF5 file (the journal held "
            f"{writer.rows})"
        )
        writer.append_rows(extra)
    for stream, found in salvage.streams.items():
        have = writer.frames.get(stream, 0)
        count = len(found["intensity"])
        if count <= have:
            continue
        if not writer.has_stream(stream, found["context"]):
            writer.add_stream(stream, found["wavelength"], found["units"], found["intensity_units"])
        writer.append_frames(
            stream,
            found["intensity"][have:],
            {k: v[have:] for k, v in found["context"].items()},
        )
        messages.append(f"{count - have} {stream} frames taken from the HDF5 file")
    events = salvage.events
    count = min((len(v) for v in events.values()), default=0)
    if count > writer.events and "time" in events:
        extra = [
            {
                name: (float(values[i]) if name == "time" else _text(values[i]))
                for name, values in events.items()
            }
            for i in range(writer.events, count)
        ]
        writer.append_events(extra)


def _row_count(file: h5py.File) -> int:
    data = file["entry"].get("data")
    if data is None:
        return 0
    lengths = [len(d) for d in data.values() if isinstance(d, h5py.Dataset)]
    return min(lengths, default=0)


def _salvage_hdf5(run_path: Path, messages: list[str]) -> RecoveryReport:
    """Copy what a run file without a usable journal holds into a clean file."""
    temporary, fd = _temporary_path(run_path)
    os.close(fd)
    notes: list[str] = []
    try:
        with open_damaged(run_path, notes) as source, open_hdf5(temporary, "w") as target:
            for name, value in source.attrs.items():
                target.attrs[name] = value
            for name in source:
                source.copy(source[name], target, name=name)
            entry = target["entry"]
            rows = _row_count(target)
            if "data" in entry:
                for dataset in entry["data"].values():
                    if isinstance(dataset, h5py.Dataset) and len(dataset) > rows:
                        dataset.resize((rows,))
            frames = {}
            for stream, group in entry.items():
                if isinstance(group, h5py.Group) and "intensity" in group:
                    names = [n for n in group if n != "wavelength"]
                    count = min(len(group[n]) for n in names)
                    for n in names:
                        if len(group[n]) > count:
                            group[n].resize((count, *group[n].shape[1:]))
                    frames[stream] = count
            status = _text(entry.attrs.get("status", layout.RUNNING))
            if status not in layout.TERMINAL_STATUSES:
                status = layout.INTERRUPTED
                entry.attrs["status"] = status
                entry.attrs["status_reason"] = (
                    "the run stopped without closing its file; salvaged from the HDF5 file "
                    "(no journal)"
                )
                entry.attrs["end_time"] = layout.now_iso()
                layout.set_text_field(entry, "end_time", entry.attrs["end_time"])
        _replace(temporary, run_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return RecoveryReport(
        run_path,
        "salvaged_from_hdf5",
        status,
        rows=rows,
        frames=frames,
        messages=[*messages, "no journal: rows after the last HDF5 flush are lost"],
    )
