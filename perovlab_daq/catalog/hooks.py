"""A run registers itself in the catalogue: never raising, never holding the run up.

The runner and the operator window call :func:`register_run_start` once a run's file
exists and :func:`register_run_end` once the file is closed; a resumed lifetime run calls
:func:`register_run_resuming` before its continuation and :func:`register_run_end` once
the continuation is appended to the run's file. The database libraries are imported
before the run starts; resolving the URL, connecting, migrating and writing happen in a
background thread, never in the run's thread. The start row comes from the run's plan;
the end row is read, in the run's thread, from the finished file exactly as
``perovlab-daq runs index`` reads it (no background thread touches HDF5). The end waits
at most :data:`END_WAIT_S` for the catalogue; a catalogue that is down or slow only costs
a warning in the log, and the next ``runs index`` catches up from the file.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Longest time the end of a run waits for its catalogue row to be written (s).
END_WAIT_S = 1.0
#: Connect timeout towards a catalogue server (s; libpq rounds to whole seconds >= 2).
CONNECT_TIMEOUT_S = 2.0


@dataclass
class Registration:
    """A run's catalogue registration in progress (what :func:`register_run_end` needs).

    ``url`` is set by the start thread (None: no catalogue); ``thread`` writes the start row.
    """

    bench_config: Any
    folder: Path
    fields: dict[str, Any]
    url: str | None = None
    thread: threading.Thread | None = field(default=None, repr=False)


def register_run_start(plan: Any, results: Any) -> Registration | None:
    """Register a starting run (status ``running``) in its catalogue, in the background.

    Parameters
    ----------
    plan
        The run's :class:`~perovlab_daq.runner.RunPlan` (bench config, sample, procedure).
    results
        Its :class:`~perovlab_daq.storage.HDF5Results` (the file just created).

    Returns None (and logs why) when the run is not to be registered; never raises.
    """
    try:
        if (getattr(plan, "parameters", None) or {}).get("resume_file"):
            # A lifetime continuation runs into a temporary segment file that is then
            # appended to its run's file and deleted: that run's row is updated by the
            # next 'runs index', the segment is no run of its own.
            return None
        _load_catalogue_modules()
        path = Path(os.path.abspath(results.path))
        config = plan.bench_config
        sample = dict(plan.sample or {})
        fields = {
            "run_id": str(getattr(results, "run_id", "") or ""),
            "path": os.fspath(path),
            "procedure": str(getattr(plan.procedure_cls, "NAME", "") or ""),
            "status": "running",
            "station": str(getattr(config, "station", "") or ""),
            "host": socket.gethostname(),
            "sample": sample.get("sample") or "",
            "device": sample.get("device") or "",
            "pixel": sample.get("pixel") or "",
            "operator": sample.get("operator") or "",
            "started_utc": datetime.now(UTC).replace(tzinfo=None),
            "simulated": bool(getattr(config, "simulated", False)),
        }
        if not fields["run_id"]:
            log.warning("run file %s has no run id: not registered in the catalogue", path)
            return None
        registration = Registration(bench_config=config, folder=path.parent, fields=fields)
        return _started(registration, _write_start)
    except Exception as exc:  # noqa: BLE001 - the catalogue must never stop a run
        log.warning("run not registered in the catalogue: %s", exc)
        return None


def register_run_end(registration: Registration | None, outcome: Any) -> None:
    """Update the run's row from its closed file (status, end time, key figures).

    The file is read here, in the caller's thread (local work, as ``runs index`` reads
    it); only the database write is left to a background thread. A daemon thread still
    inside h5py when the process exits holds h5py's lock for ever, and the interpreter's
    last garbage collection then waits on it: a 16-channel rack whose catalogue rows
    were still being read hung at exit. Waits at most :data:`END_WAIT_S`; never raises.
    """
    if registration is None:
        return
    try:
        from .index import read_run_record

        path = os.fspath(outcome.path)
        record = read_run_record(path)
        thread = threading.Thread(
            target=_quietly,
            args=(_write_end, registration, record),
            name="catalog-end",
            daemon=True,
        )
        thread.start()
        thread.join(END_WAIT_S)
        if thread.is_alive():
            log.warning(
                "the catalogue has not taken the end of %s yet; 'perovlab-daq runs index' "
                "catches up from the file",
                path,
            )
    except Exception as exc:  # noqa: BLE001 - the catalogue must never stop a run
        log.warning("run end not registered in the catalogue: %s", exc)


def register_run_resuming(bench_config: Any, path: str | os.PathLike[str]) -> Registration | None:
    """Connect, in the background, to the catalogue of a run about to be resumed.

    A resumed lifetime run appends its continuation to the run's file (the continuation
    registers no row of its own): once it is appended, :func:`register_run_end` with this
    registration updates the run's row from the file, exactly as at the end of a run.
    Connecting now keeps the catalogue's first connection (and migration check) out of
    the end's :data:`END_WAIT_S`. Returns None (and logs why) if that cannot start;
    never raises.
    """
    try:
        _load_catalogue_modules()
        run_path = Path(os.path.abspath(path))
        registration = Registration(bench_config=bench_config, folder=run_path.parent, fields={})
        return _started(registration, _connect)
    except Exception as exc:  # noqa: BLE001 - the catalogue must never stop a run
        log.warning("resumed run not registered in the catalogue: %s", exc)
        return None


def _started(registration: Registration, work: Any) -> Registration:
    """Start ``work(registration)`` in the registration's background thread; return it."""
    registration.thread = threading.Thread(
        target=_quietly, args=(work, registration), name="catalog-start", daemon=True
    )
    registration.thread.start()
    return registration


def _quietly(work: Any, registration: Registration, *args: Any) -> None:
    try:
        work(registration, *args)
    except Exception as exc:  # noqa: BLE001 - a background thread has no one to raise to
        from .engine import shown_url

        log.warning(
            "catalogue %s not updated (%s: %s); 'perovlab-daq runs index' catches up later",
            shown_url(registration.url or ""),
            type(exc).__name__,
            " ".join(str(exc).split())[:300],
        )


def _load_catalogue_modules() -> None:
    """Import SQLAlchemy, Alembic and the catalogue's modules now, before the run starts.

    Imported in the background thread instead, they held the interpreter lock for 1-6 s
    (load 1-9) while the acquisition thread took its first readings: on the simulated bench
    at 20,000x that starved the L0 burst and moved the fitted acceleration factor from
    1.95 to 1.73. Importing is local work (no catalogue is contacted), so a catalogue that
    is down still costs the run nothing.
    """
    from alembic import command  # noqa: F401
    from alembic.runtime import migration  # noqa: F401
    from alembic.script import ScriptDirectory  # noqa: F401

    from . import engine, index  # noqa: F401


def _write_start(registration: Registration) -> None:
    from .engine import open_catalog, resolve_url
    from .index import RunRecord, upsert_run

    registration.url = resolve_url(
        None, bench_config=registration.bench_config, data_dir=registration.folder
    )
    if registration.url is None:  # catalog: off
        return
    engine = open_catalog(registration.url, connect_timeout_s=CONNECT_TIMEOUT_S)
    upsert_run(engine, RunRecord(**registration.fields), keep_figures=True)


def _connect(registration: Registration) -> None:
    from .engine import open_catalog, resolve_url

    registration.url = resolve_url(
        None, bench_config=registration.bench_config, data_dir=registration.folder
    )
    if registration.url is not None:
        open_catalog(registration.url, connect_timeout_s=CONNECT_TIMEOUT_S)


def _write_end(registration: Registration, record: Any) -> None:
    from .engine import open_catalog
    from .index import upsert_run

    if registration.thread is not None:
        registration.thread.join()  # the start row first (and the URL)
    if registration.url is None:
        return
    engine = open_catalog(registration.url, connect_timeout_s=CONNECT_TIMEOUT_S)
    upsert_run(engine, record)
