"""Opening and syncing run files: the h5py options every handle of this package uses.

Every HDF5 handle on a run file goes through :func:`open_hdf5` (the layout's format
version, no HDF5 file locking, a small chunk cache); :func:`open_rw` and
:func:`open_for_reading` add the retries a shared file needs; :func:`fsync_file` makes a
written file and its directory entry durable; :func:`disk_unusable` tells a full or
read-only disk from other write errors.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import h5py

from . import layout
from .errors import StorageError
from .journal import fsync_directory

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
