"""Creating, opening and syncing run files: the h5py options every handle here uses.

Every HDF5 handle on a run file goes through :func:`open_hdf5` (the layout's format
version, no HDF5 file locking, a small chunk cache); :func:`open_rw` and
:func:`open_for_reading` add the retries a shared file needs; :func:`create_run_file`
creates a new run atomically; :func:`update_closed_file` changes a closed run durably;
:func:`fsync_file` makes a written file and its directory entry durable;
:func:`disk_unusable` tells a full or read-only disk from other write errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py

from . import layout
from .errors import StorageError
from .journal import fsync_directory
from .layout import RunFileWriter

log = logging.getLogger(__name__)

#: errno values of a disk that cannot take more writes (full, quota, size cap, read-only).
_DISK_ERRNOS = {28, 122, 27, 30, 5, 2, 20}
_DISK_TEXTS = (
    "no space left",
    "disk is full",
    "disk quota",
    "file too large",
    "read-only file system",
    "errno = 28",
    "errno = 30",
    "errno = 27",
    "readonly database",
    "disk i/o error",
)


def open_hdf5(path: str | os.PathLike[str], mode: str, *, swmr: bool = False) -> h5py.File:
    """Open ``path`` with the package's settings (format v110, no locking, 1 MiB cache).

    Parameters
    ----------
    path
        The HDF5 file.
    mode
        h5py mode: ``"r"``, ``"r+"`` or ``"w"``.
    swmr
        Read live (SWMR) a file a writer has open; only with ``"r"``.
    """
    options = {"locking": False, "rdcc_nbytes": layout.CHUNK_CACHE_BYTES}
    if mode == "r":
        return h5py.File(path, "r", swmr=swmr, **options)
    return h5py.File(path, mode, libver=layout.LIBVER, **options)


def open_rw(path: Path, attempts: int = 40) -> h5py.File:
    """Open a run file for writing outside SWMR mode, waiting for in-process readers."""
    for attempt in range(attempts):
        try:
            return open_hdf5(path, "r+")
        except OSError as exc:
            # Another handle in this process (a reader) has the file open read-only.
            if "already open" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def open_for_reading(path: Path, attempts: int = 5) -> h5py.File:
    """Open a run file read-only, live (SWMR) if a writer has it open; retry briefly.

    Raises
    ------
    StorageError
        If the file cannot be opened as HDF5 (the message suggests ``recover``).
    """
    last: Exception | None = None
    for attempt in range(attempts):
        for swmr in (False, True):
            try:
                return open_hdf5(path, "r", swmr=swmr)
            except OSError as exc:
                last = exc
        time.sleep(0.05 * (attempt + 1))  # the writer may be between SWMR sessions
    raise StorageError(
        f"cannot open {path} as HDF5: {last}. If a run was killed, run "
        f"'perovlab-daq recover {path}'."
    ) from last


def fsync_file(path: Path) -> None:
    """Flush ``path`` and its directory entry to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(path.parent)


def disk_unusable(exc: BaseException | None) -> bool:
    """Return whether ``exc`` (or its causes) says the disk cannot be written any more."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
            return True
        text = str(exc).lower()
        if any(marker in text for marker in _DISK_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def create_run_file(path: Path, header: Mapping[str, Any]) -> RunFileWriter:
    """Write the skeleton of a new run under a temporary name, then link it into place.

    A process killed while creating leaves either no run file or a complete one (never
    a torn skeleton without a journal); the link fails if the name is taken, so a run is
    never overwritten.

    Raises
    ------
    StorageError
        If ``path`` exists or the folder is missing or unwritable.
    """
    folder = path.parent
    temporary = folder / f".{path.name}.{os.getpid()}.creating"
    if path.exists():
        raise StorageError(f"{path} already exists; runs are never overwritten")
    try:
        # 0o644 (minus umask): run files are never world-writable.
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.close(fd)
    except OSError as exc:
        raise StorageError(
            f"cannot create the run file {path}: {exc.strerror or exc}. "
            f"Check that the folder {folder} exists and is writable."
        ) from exc
    try:
        writer = RunFileWriter(header)
        with open_hdf5(temporary, "w") as file:
            writer.write_skeleton(file)
        writer.file = None
        fsync_file(temporary)
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise StorageError(f"{path} already exists; runs are never overwritten") from None
        except OSError:  # file system without hard links: exclusive rename-free path
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            os.close(fd)
            os.replace(temporary, path)
        fsync_directory(folder)
    except StorageError:
        raise
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot write the run file {path}: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    return writer


def update_closed_file(path: Path, change: Callable[[h5py.File], None]) -> None:
    """Apply ``change(file)`` to a closed run file opened for writing, then sync it.

    Raises
    ------
    OSError
        If the file cannot be opened or written.
    """
    with open_rw(path) as file:
        change(file)
    fsync_file(path)
