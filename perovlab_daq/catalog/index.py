"""Rebuild the catalogue from run files: the file is the record, the catalogue its index.

:func:`read_run_record` reads what the catalogue keeps of one run file (after
:func:`perovlab_daq.filecheck.check_run_file`, so a damaged file fails in one line);
:func:`upsert_run` writes it keyed on the run id (insert, or update what changed), so
indexing the same files twice adds nothing; :func:`index_paths` walks files and folders
(files of other stations too) and reports damaged or foreign files instead of stopping.
Key figures are those the file stores in ``entry/analysis`` (``perovlab-daq analyze``
stores them in a file that has none).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from perovlab_daq.filecheck import DamagedFileError, check_run_file
from perovlab_daq.storage import StorageError, layout
from perovlab_daq.storage.files import open_for_reading
from perovlab_daq.storage.reader import read_attr, read_run_info

from .models import NAME_LENGTH, KeyFigure, Run

log = logging.getLogger(__name__)

#: File name endings of run files looked for inside a folder.
RUN_FILE_SUFFIXES = (".h5", ".hdf5", ".nxs")
#: Units of key figures stored without a ``units`` attribute, from the end of their name
#: (docs/architecture.md: keys carry their unit, ``max_luminance_cd_m2``, ``t50_h``).
UNIT_SUFFIXES = {
    "_cd_m2": "cd/m^2",
    "_ma_cm2": "mA/cm^2",
    "_w_cm2": "W/cm^2",
    "_cd_a": "cd/A",
    "_lm_w": "lm/W",
    "_v_s": "V/s",
    "_cm2": "cm^2",
    "_pct": "%",
    "_nm": "nm",
    "_mw": "mW",
    "_mm": "mm",
    "_v": "V",
    "_a": "A",
    "_w": "W",
    "_s": "s",
    "_h": "h",
}
_FIGURE_UNIT_LENGTH = 32
#: A lifetime continuation's temporary segment file (perovlab_daq.resume).
_SEGMENT = re.compile(r"\.segment\d+\.(?:h5|hdf5|nxs)$", re.IGNORECASE)


class NotARunFileError(ValueError):
    """An HDF5 file that is not a run file (no ``entry`` with a ``procedure``)."""


@dataclass
class RunRecord:
    """What the catalogue keeps of one run (the columns of :class:`~.models.Run`).

    ``figures`` maps a key figure's name to ``(number or None, text or None, unit)``.
    """

    run_id: str
    path: str
    procedure: str
    status: str
    station: str = ""
    host: str = ""
    sample: str = ""
    device: str = ""
    pixel: str = ""
    operator: str = ""
    status_reason: str = ""
    started_utc: datetime | None = None
    ended_utc: datetime | None = None
    simulated: bool | None = None
    figures: dict[str, tuple[float | None, str | None, str]] = field(default_factory=dict)
    file_size: int | None = None
    file_mtime_ns: int | None = None

    def columns(self) -> dict[str, Any]:
        """Return the ``runs`` columns (everything but the figures)."""
        return {
            "path": self.path,
            "station": _cut(self.station),
            "host": _cut(self.host),
            "sample": _cut(self.sample),
            "device": _cut(self.device),
            "pixel": _cut(self.pixel),
            "operator": _cut(self.operator),
            "procedure": _cut(self.procedure),
            "status": self.status[:32],
            "status_reason": self.status_reason,
            "started_utc": self.started_utc,
            "ended_utc": self.ended_utc,
            "simulated": self.simulated,
            "file_size": self.file_size,
            "file_mtime_ns": self.file_mtime_ns,
        }


@dataclass
class IndexReport:
    """What :func:`index_paths` did: rows added, updated, unchanged; files skipped and why."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Return a JSON-friendly summary."""
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "skipped": [{"file": path, "problem": problem} for path, problem in self.skipped],
        }


def _cut(text: str) -> str:
    return str(text or "")[:NAME_LENGTH]


def utc_naive(iso_time: str) -> datetime | None:
    """Return an ISO 8601 time as naive UTC (a time without offset is taken as local)."""
    if not iso_time:
        return None
    try:
        moment = datetime.fromisoformat(str(iso_time))
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None)


def derived_run_id(file: h5py.File, path: Path) -> str:
    """Return a stable id for a run file that has no ``run_id`` (older or foreign files).

    A hash of what identifies the run: creation time, start time, procedure, host and
    station as stored, and the file name (so a copy on another disk is the same run).
    """
    entry = file["entry"]
    provenance = entry.get("provenance")
    parts = [
        str(read_attr(file.attrs, "file_time", "")),
        str(read_attr(entry.attrs, "start_time", "")),
        str(read_attr(entry.attrs, "procedure", "")),
        _text(provenance, "host"),
        _text(provenance, "station"),
        path.name,
    ]
    return "h" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:31]


def _text(group: h5py.Group | None, name: str) -> str:
    if group is None or name not in group or not isinstance(group[name], h5py.Dataset):
        return ""
    value = layout.read_value(group[name])
    return "" if value is None else str(value)


def read_run_record(path: str | os.PathLike[str]) -> RunRecord:
    """Read what the catalogue keeps of the run file at ``path``.

    Raises
    ------
    FileNotFoundError
        If nothing is there.
    perovlab_daq.filecheck.DamagedFileError
        If the file is damaged or not HDF5.
    NotARunFileError
        If it is HDF5 but not a run file.
    perovlab_daq.storage.StorageError
        If it cannot be opened.
    """
    file_path = Path(os.path.abspath(os.fspath(path)))
    # A live run's file is open for writing (SWMR): it passes here and reads live below.
    check_run_file(file_path, allow_unreadable=True)
    stat = file_path.stat()  # before reading: a file changed meanwhile is read again later
    with open_for_reading(file_path) as file:
        entry = file.get("entry")
        if not isinstance(entry, h5py.Group) or not read_attr(entry.attrs, "procedure", ""):
            raise NotARunFileError(f"{file_path}: not a run file (no entry with a procedure)")
        attrs = entry.attrs
        status = str(read_attr(attrs, "status", "") or layout.FINISHED)
        reason = str(read_attr(attrs, "status_reason", ""))
        if status == layout.RUNNING:  # running, or its writer died: the reader tells
            info = read_run_info(file, file_path)
            status, reason = info.status, info.status_reason
        provenance = entry.get("provenance")
        sample = entry.get("sample")
        metadata = entry.get("metadata")
        simulated = read_attr(metadata.attrs, "simulated", None) if metadata is not None else None
        return RunRecord(
            run_id=(_text(provenance, "run_id") or derived_run_id(file, file_path))[:64],
            path=os.fspath(file_path),
            procedure=str(read_attr(attrs, "procedure", "")),
            status=status,
            status_reason=reason,
            station=_text(provenance, "station"),
            host=_text(provenance, "host"),
            sample=_text(sample, "sample") or _text(sample, "name"),
            device=_text(sample, "device"),
            pixel=_text(sample, "pixel"),
            operator=_text(sample, "operator"),
            started_utc=utc_naive(str(read_attr(attrs, "start_time", ""))),
            ended_utc=utc_naive(str(read_attr(attrs, "end_time", ""))),
            simulated=None if simulated is None else bool(simulated),
            figures=_figures(entry["analysis"]) if "analysis" in entry else {},
            file_size=stat.st_size,
            file_mtime_ns=stat.st_mtime_ns,
        )


def _figures(group: h5py.Group) -> dict[str, tuple[float | None, str | None, str]]:
    """Return the scalar figures of ``entry/analysis`` (nested groups and arrays left out)."""
    figures: dict[str, tuple[float | None, str | None, str]] = {}
    for name, item in group.items():
        if not isinstance(item, h5py.Dataset) or item.shape not in ((), None):
            continue
        value = layout.read_value(item)
        unit = str(read_attr(item.attrs, "units", "") or figure_unit(name))
        figures[_cut(name)] = (*figure_value(value), unit[:_FIGURE_UNIT_LENGTH])
    return figures


def figure_value(value: Any) -> tuple[float | None, str | None]:
    """Return ``(number, text)`` of a key figure: NaN and None are no number."""
    if isinstance(value, bool | int | float):
        number = float(value)
        return (None if math.isnan(number) else number), None
    if value is None:
        return None, None
    return None, str(value)


def figure_unit(name: str) -> str:
    """Return the unit a key figure's name ends with (``peak_eqe_pct`` -> ``%``), or ''."""
    lowered = name.lower()
    for suffix in sorted(UNIT_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            return UNIT_SUFFIXES[suffix]
    return ""


def figures_of(figures: Mapping[str, Any]) -> dict[str, tuple[float | None, str | None, str]]:
    """Return catalogue figures from a ``key_figures`` result (name -> value or {value, units})."""
    result = {}
    for name, value in figures.items():
        unit = figure_unit(name)
        if isinstance(value, Mapping) and "value" in value:
            unit = str(value.get("units") or unit)
            value = value["value"]
        result[_cut(name)] = (*figure_value(value), unit[:_FIGURE_UNIT_LENGTH])
    return result


def upsert_run(engine: Engine, record: RunRecord, *, keep_figures: bool = False) -> str:
    """Insert the run or update its row (and figures) to ``record``, in one transaction.

    ``keep_figures``: leave the stored figures alone (a run registering its start has
    none yet). Return ``"added"``, ``"updated"`` or ``"unchanged"``. A concurrent insert of
    the same run (a station and ``runs index`` at once) is retried as an update.

    A run id already catalogued for a different run (another path, and another procedure,
    sample, pixel, station, status, start time or key figures: a file made by copying a
    run file and editing it) keeps both: this one is stored under :func:`reused_id_key`,
    and ``record.run_id`` is set to the key the row was stored under. A true copy of a
    run file elsewhere is the same run (its row moves to the copy's path).
    """
    file_run_id = record.run_id
    for attempt in range(3):
        record.run_id = file_run_id
        try:
            with Session(engine) as session, session.begin():
                return _upsert(session, record, keep_figures)
        except IntegrityError:
            if attempt == 2:
                raise
            log.debug("run %s inserted concurrently; updating it", record.run_id)
    raise AssertionError("unreachable")


def _same_run(row: Run, record: RunRecord) -> bool:
    """Whether ``record`` is the run of ``row``: the same file, or a true copy of it."""
    if row.path == record.path:
        return True
    stored = {figure.name: (figure.value, figure.text, figure.unit) for figure in row.figures}
    return (row.procedure, row.sample, row.pixel, row.station, row.status, row.started_utc) == (
        record.procedure,
        record.sample,
        record.pixel,
        record.station,
        record.status,
        record.started_utc,
    ) and stored == record.figures


def reused_id_key(record: RunRecord) -> str:
    """Return the key of a run whose file repeats another run's id (``r`` + 31 hex digits).

    Made from the id and the file's path, so indexing the same file again (whatever
    changed in it) finds the same row.
    """
    parts = [record.run_id, record.path]
    return "r" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:31]


def _upsert(session: Session, record: RunRecord, keep_figures: bool) -> str:
    now = datetime.now(UTC).replace(tzinfo=None)
    columns = record.columns()
    row = session.get(Run, record.run_id)
    if row is not None and not _same_run(row, record):
        record.run_id = reused_id_key(record)
        row = session.get(Run, record.run_id)
    if row is None:
        row = Run(run_id=record.run_id, updated_utc=now, **columns)
        row.figures = [
            KeyFigure(name=name, value=value, text=text, unit=unit)
            for name, (value, text, unit) in record.figures.items()
        ]
        session.add(row)
        return "added"
    changed = False
    for name, value in columns.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if not keep_figures:
        changed = _update_figures(row, record.figures) or changed
    if changed:
        row.updated_utc = now
    return "updated" if changed else "unchanged"


def _update_figures(row: Run, figures: Mapping[str, tuple[float | None, str | None, str]]) -> bool:
    """Make ``row.figures`` equal ``figures`` in place; return whether anything changed."""
    changed = False
    stored = {figure.name: figure for figure in row.figures}
    for name, figure in stored.items():
        if name not in figures:
            row.figures.remove(figure)
            changed = True
    for name, (value, text, unit) in figures.items():
        figure = stored.get(name)
        if figure is None:
            row.figures.append(KeyFigure(name=name, value=value, text=text, unit=unit))
            changed = True
        elif (figure.value, figure.text, figure.unit) != (value, text, unit):
            figure.value, figure.text, figure.unit = value, text, unit
            changed = True
    return changed


def run_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Yield the files given and the run files (by suffix) inside the folders given, sorted.

    Inside folders, hidden files (``.name.<pid>.updating`` temporaries) and the
    segments of a lifetime continuation (``<run>.segment<k>.h5``, appended to their run's
    file) are left out.
    """
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for root, folders, names in os.walk(path):
                folders[:] = sorted(f for f in folders if not f.startswith("."))
                for name in sorted(names):
                    if name.startswith(".") or _SEGMENT.search(name):
                        continue
                    if name.lower().endswith(RUN_FILE_SUFFIXES):
                        yield Path(root) / name
        else:
            yield path


def index_paths(
    engine: Engine,
    paths: Iterable[str | os.PathLike[str]],
    *,
    reread: bool = False,
    jobs: int | None = None,
    scheduler: str | None = None,
) -> IndexReport:
    """(Re)build catalogue rows from the run files at ``paths`` (files or folders).

    Idempotent: a file indexed again leaves its row unchanged; a file whose size and
    modification time are those of its last reading is not read again (``reread``: read
    every file). A damaged, foreign or missing file is listed in ``skipped`` with the
    problem, and the others go on. ``jobs``: processes reading files (default: one per
    usable core, as ``analyze``); ``scheduler``: the address of a Dask cluster whose
    workers read the files instead (they must see the same paths). The rows are written
    by this process, in file order, either way.

    Raises
    ------
    OSError
        If ``scheduler`` is given and cannot be reached (``TimeoutError`` after 10 s).
    """
    report = IndexReport()
    known = {} if reread else _known_files(engine)
    done: set[str] = set()
    to_read: list[str] = []
    for path in run_files(paths):
        absolute = os.path.abspath(path)
        if absolute in done:  # given twice (a file and its folder)
            continue
        done.add(absolute)
        try:
            stat = os.stat(absolute)
        except OSError:
            stat = None
        seen = known.get(absolute)
        if stat is not None and seen is not None and seen[1:] == (stat.st_size, stat.st_mtime_ns):
            report.unchanged.append(seen[0])
        else:
            to_read.append(os.fspath(path))
    records = _read_on_cluster(to_read, scheduler) if scheduler else _read_all(to_read, jobs)
    for path, record in zip(to_read, records, strict=True):
        if isinstance(record, str):
            report.skipped.append((path, record))
            continue
        outcome = upsert_run(engine, record)
        getattr(report, outcome).append(record.run_id)
    return report


def read_or_problem(path: str) -> RunRecord | str:
    """Return the record of the run file at ``path``, or why it cannot be indexed."""
    try:
        return read_run_record(path)
    except FileNotFoundError:
        return "no such file or folder"
    except DamagedFileError as exc:
        return exc.problem
    except (NotARunFileError, StorageError, OSError, KeyError, ValueError, TypeError) as exc:
        problem = str(exc).removeprefix(f"{os.path.abspath(path)}: ")
        return " ".join(problem.split())[:300]


#: Fewest files worth starting reader processes for.
PARALLEL_FROM_FILES = 16


def _read_all(paths: list[str], jobs: int | None) -> Iterator[RunRecord | str]:
    from perovlab_daq.figures import default_jobs

    jobs = min(default_jobs() if jobs is None else max(1, int(jobs)), len(paths))
    if jobs <= 1 or len(paths) < PARALLEL_FROM_FILES:
        yield from map(read_or_problem, paths)
        return
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(1, min(16, len(paths) // (jobs * 8)))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(read_or_problem, paths, chunksize=chunk)


def _read_on_cluster(paths: list[str], scheduler: str) -> Iterator[RunRecord | str]:
    """Read ``paths`` on the workers of the Dask cluster at ``scheduler``, in input order."""
    if not paths:
        return
    from distributed import Client

    log.info("reading %d run files on the Dask cluster at %s", len(paths), scheduler)
    with Client(scheduler, timeout=10, set_as_default=False) as client:
        futures = client.map(read_or_problem, paths, pure=False)
        for future in futures:
            yield future.result()


def _known_files(engine: Engine) -> dict[str, tuple[str, int | None, int | None]]:
    """Return path -> (run id, size, mtime) of every run row read from a file."""
    statement = select(Run.path, Run.run_id, Run.file_size, Run.file_mtime_ns).where(
        Run.file_size.is_not(None)
    )
    with engine.connect() as connection:
        return {
            path: (run_id, size, mtime)
            for path, run_id, size, mtime in connection.execute(statement)
        }
