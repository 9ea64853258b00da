"""Recovery of a run file after a killed process or a power cut: rebuild it from the journal.

A run that did not close leaves its SQLite journal (``<file>.journal``) next to an HDF5
file that is either SWMR-flagged (plain h5py refuses it until ``h5clear -s``), torn, or
missing recent rows. :func:`recover` replays the journal into a fresh file through the same
:class:`~perovlab_daq.storage.layout.RunFileWriter` as the live writer, marks it
``interrupted`` (unless the run had already reached a final status), atomically replaces
the original and deletes the journal. Without a journal it salvages what the HDF5 file
holds, read in SWMR mode.
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
from .errors import StorageError
from .files import fsync_file, open_hdf5
from .journal import Journal, fsync_directory, journal_path, writer_alive
from .layout import RunFileWriter

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    """What :func:`recover` found and did.

    Attributes
    ----------
    path
        The run file.
    action
        ``"none"`` (file already closed cleanly), ``"rebuilt_from_journal"`` or
        ``"salvaged_from_hdf5"``.
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
    StorageError
        If a live writer still holds the run, or nothing usable is left.
    """
    run_path = Path(os.fspath(path))
    journal_file = journal_path(run_path)
    if writer_alive(run_path):
        raise StorageError(f"{run_path} is still being written; stop that run first")
    if journal_file.exists():
        if _journal_has_header(journal_file):
            return _rebuild_from_journal(run_path, journal_file)
        # Killed while the journal was being created: the run file was not touched yet.
        Journal(journal_file, create=False).remove()
    for suffix in ("-wal", "-shm"):  # left if a kill hit the journal's removal
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{journal_file}{suffix}")
    if not run_path.exists():
        raise StorageError(f"no run file and no journal at {run_path}")
    try:
        with open_hdf5(run_path, "r") as file:
            status = str(file["entry"].attrs.get("status", ""))
            rows = _row_count(file)
        if status in layout.TERMINAL_STATUSES or status == layout.QUEUED:
            return RecoveryReport(
                run_path,
                "none",
                status,
                rows=rows,
                messages=["file was closed cleanly; nothing to do"],
            )
    except (OSError, KeyError):
        pass
    return _salvage_hdf5(run_path)


def _journal_has_header(journal_file: Path) -> bool:
    journal = Journal(journal_file, create=False)
    try:
        first = next(journal.records(), None)
    except StorageError:
        first = None
    finally:
        journal.close()
    return first is not None and first[0] == "header"


def _row_count(file: h5py.File) -> int:
    data = file["entry"].get("data")
    if data is None:
        return 0
    lengths = [len(d) for d in data.values() if isinstance(d, h5py.Dataset)]
    return min(lengths, default=0)


def _temporary_path(run_path: Path) -> Path:
    return run_path.with_name(f".{run_path.name}.recovering")


def _replace(temporary: Path, run_path: Path) -> None:
    fsync_file(temporary)
    os.replace(temporary, run_path)
    fsync_directory(run_path.parent)


def _rebuild_from_journal(run_path: Path, journal_file: Path) -> RecoveryReport:
    journal = Journal(journal_file, create=False)
    messages: list[str] = []
    temporary = _temporary_path(run_path)
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    try:
        records = journal.records()
        first = next(records, None)
        if first is None or first[0] != "header":
            raise StorageError(f"journal {journal_file} has no header; cannot rebuild")
        writer = RunFileWriter(first[1])
        status, reason, end_time, start_time = layout.RUNNING, "", "", ""
        analysis: dict[str, Any] = {}
        run_metadata: dict[str, Any] = {}
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.close(fd)
        with open_hdf5(temporary, "w") as file:
            writer.write_skeleton(file)
            for kind, meta, arrays in records:
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
            if status not in layout.TERMINAL_STATUSES or not end_time:
                if status in layout.TERMINAL_STATUSES:
                    messages.append(f"run had ended {status} but the file was not closed")
                else:
                    reason = (
                        "the run stopped without closing its file (process killed or power "
                        "lost); rebuilt from the journal"
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
                        "message": f"file rebuilt from its journal; status {status}",
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
        journal.close()
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    journal.remove()
    log.info("%s", report)
    return report


def _salvage_hdf5(run_path: Path) -> RecoveryReport:
    """Copy what an SWMR-flagged file without a journal holds into a clean file."""
    try:
        source = open_hdf5(run_path, "r", swmr=True)
    except OSError as exc:
        raise StorageError(
            f"{run_path} cannot be read and has no journal; nothing can be recovered ({exc})"
        ) from exc
    temporary = _temporary_path(run_path)
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    try:
        with source, open_hdf5(temporary, "w") as target:
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
            status = str(entry.attrs.get("status", layout.RUNNING))
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
        messages=["no journal: rows after the last HDF5 flush are lost"],
    )
