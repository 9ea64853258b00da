"""Append-only SQLite journal of a run: the durable copy a crashed run is rebuilt from.

Every record the worker hands to the storage back end is committed here, in group commits
from the writer thread, before it is appended to the live HDF5 file. SQLite in WAL mode
survives a killed process after each commit (``synchronous=NORMAL``) and, with
``synchronous=FULL`` (an fsync per commit), a power cut as well. The journal lives next to
the run file as ``<file>.journal`` and is deleted once the HDF5 file is closed and synced.

Records are ``(kind, meta, arrays)``: ``meta`` is JSON, ``arrays`` are numpy arrays stored
raw after the JSON head (see :func:`pack`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import sqlite3
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StorageError

try:  # POSIX only; on other systems the live-writer check is skipped
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<I")


def journal_path(run_path: str | os.PathLike[str]) -> Path:
    """Return the journal path of a run file (``<file>.journal``)."""
    return Path(f"{os.fspath(run_path)}.journal")


def json_default(value: Any) -> Any:
    """Convert numpy scalars/arrays, paths and dates for :func:`json.dumps`."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def pack(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None) -> bytes:
    """Serialise a JSON-able mapping and named numpy arrays into one blob."""
    described = []
    blobs = []
    for name, array in (arrays or {}).items():
        contiguous = np.ascontiguousarray(array)
        if contiguous.dtype.hasobject:
            raise TypeError(f"array {name!r} holds Python objects; only numeric arrays")
        described.append([name, contiguous.dtype.str, list(contiguous.shape)])
        blobs.append(contiguous.tobytes())
    head = json.dumps({"meta": meta, "arrays": described}, default=json_default).encode()
    return _HEAD.pack(len(head)) + head + b"".join(blobs)


def unpack(blob: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Invert :func:`pack`: return ``(meta, arrays)``."""
    (size,) = _HEAD.unpack_from(blob, 0)
    head = json.loads(blob[_HEAD.size : _HEAD.size + size])
    offset = _HEAD.size + size
    arrays = {}
    for name, dtype_str, shape in head["arrays"]:
        dtype = np.dtype(dtype_str)
        count = int(np.prod(shape, dtype=np.int64))
        arrays[name] = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(shape)
        offset += count * dtype.itemsize
    return head["meta"], arrays


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Flush a directory entry to disk so a newly created or removed file survives power loss."""
    with contextlib.suppress(OSError):  # not supported on every platform/file system
        fd = os.open(os.fspath(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Journal:
    """The SQLite journal of one run.

    Parameters
    ----------
    path
        Journal path (see :func:`journal_path`).
    create
        Create a new journal (fails if one exists) instead of opening an existing one.
    power_loss_safe
        fsync every commit (``synchronous=FULL``); otherwise commits survive a killed
        process but not a power cut.
    lock
        Hold an exclusive ``flock`` on the journal while open, so :func:`writer_alive`
        and recovery can tell a live run from a dead one.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool,
        power_loss_safe: bool = False,
        lock: bool = True,
    ) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        try:
            if create:
                # O_EXCL: never reuse a journal of another run; no world-write bit.
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
                os.close(fd)
            elif not self.path.exists():
                raise StorageError(f"no journal at {self.path}")
            if lock and fcntl is not None:
                self._lock_fd = os.open(self.path, os.O_RDWR)
                try:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(self._lock_fd)
                    self._lock_fd = None
                    raise StorageError(
                        f"{self.path} is held by a running writer; "
                        "wait for the run to end before recovering it"
                    ) from None
            self._db = sqlite3.connect(
                os.fspath(self.path), check_same_thread=False, isolation_level=None
            )
            # Exclusive locking before WAL: SQLite then keeps the WAL index in heap memory
            # instead of a memory-mapped -shm file, which raises SIGBUS when the disk
            # fills up. Only this connection ever uses the journal (flock above).
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if power_loss_safe else 'NORMAL'}")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS records ("
                "seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload BLOB NOT NULL)"
            )
            if create:
                fsync_directory(self.path.parent)
        except sqlite3.Error as exc:
            self._release_lock()
            raise StorageError(f"cannot open the journal {self.path}: {exc}") from exc
        except OSError as exc:
            self._release_lock()
            if isinstance(exc, StorageError):
                raise
            raise StorageError(
                f"cannot create the journal {self.path}: {exc.strerror or exc}"
            ) from exc
        self._in_transaction = False

    def append(
        self, kind: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None
    ) -> None:
        """Add one record to the current transaction (opened on demand)."""
        try:
            if not self._in_transaction:
                self._db.execute("BEGIN")
                self._in_transaction = True
            self._db.execute(
                "INSERT INTO records (kind, payload) VALUES (?, ?)", (kind, pack(meta, arrays))
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write the journal {self.path}: {exc}") from exc

    def commit(self) -> None:
        """Commit the records appended since the last commit (one group commit)."""
        if not self._in_transaction:
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot commit the journal {self.path}: {exc}") from exc
        finally:
            self._in_transaction = self._db.in_transaction

    def records(self) -> Iterator[tuple[str, dict[str, Any], dict[str, np.ndarray]]]:
        """Yield every committed record in order as ``(kind, meta, arrays)``."""
        try:
            cursor = self._db.execute("SELECT kind, payload FROM records ORDER BY seq")
            for kind, payload in cursor:
                meta, arrays = unpack(payload)
                yield kind, meta, arrays
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the journal {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the database and release the writer lock; idempotent."""
        db = getattr(self, "_db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            db.close()
            self._db = None  # type: ignore[assignment]
        self._release_lock()

    def remove(self) -> None:
        """Close and delete the journal and its WAL/shared-memory files."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")
        fsync_directory(self.path.parent)

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def writer_alive(run_path: str | os.PathLike[str]) -> bool:
    """Return whether a live writer holds the journal of ``run_path``."""
    path = journal_path(run_path)
    if fcntl is None or not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
