"""Creating, opening and syncing run files: the h5py options every handle here uses.

Every HDF5 handle on a run file goes through :func:`open_hdf5` (the layout's format
version, no HDF5 file locking, a small chunk cache); :func:`open_rw` and
:func:`open_for_reading` add the retries a shared file needs; :func:`create_run_file`
creates a new run atomically and :func:`claim_run_file` moves on to a free name if
needed; :func:`update_closed_file` changes a closed run crash-safely (copy, change,
fsync, atomic rename);
:func:`fsync_file` makes a written file and its directory entry durable;
:func:`disk_unusable` tells a full or read-only disk from other write errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import h5py

from . import layout
from .errors import StorageError
from .journal import fsync_directory
from .layout import RunFileWriter
from .naming import candidate_names

try:  # POSIX only; elsewhere concurrent updaters are not serialised
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")

log = logging.getLogger(__name__)

#: An exclusive creation that never follows a symlink.
_CLAIM_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)

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


class NameTakenError(StorageError):
    """The run file name was taken (by another run, a file or a symlink) before the link."""


def create_run_file(path: Path, header: Mapping[str, Any]) -> RunFileWriter:
    """Write the skeleton of a new run under a temporary name, then link it into place.

    The temporary is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``; the ``link`` onto
    ``path`` is exclusive and never follows a symlink planted there. A process killed
    while creating leaves either no run file or a complete one; a run is never
    overwritten.

    Raises
    ------
    NameTakenError
        If ``path`` exists (file, folder or symlink).
    StorageError
        If the folder is missing or unwritable.
    """
    folder = path.parent
    if os.path.lexists(path):
        raise NameTakenError(f"{path} already exists; runs are never overwritten")
    temporary, fd = _exclusive_temporary(path, "creating")
    os.close(fd)  # 0o644 (minus umask): run files are never world-writable
    try:
        writer = RunFileWriter(header)
        with open_hdf5(temporary, "w") as file:
            writer.write_skeleton(file)
        writer.file = None
        fsync_file(temporary)
        try:
            os.link(temporary, path, follow_symlinks=False)
        except FileExistsError:
            raise NameTakenError(f"{path} already exists; runs are never overwritten") from None
        except OSError:  # file system without hard links: exclusive claim, then replace it
            try:
                os.close(os.open(path, _CLAIM_FLAGS, 0o644))
            except FileExistsError:
                raise NameTakenError(f"{path} already exists; runs are never overwritten") from None
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


def claim_run_file(path: Path, header: Mapping[str, Any]) -> tuple[RunFileWriter, Path]:
    """Create the run file at ``path``, or at ``<stem>_2``... if another run took it first.

    Two runs planned with the same identifiers in the same second each get their own
    file: the name is claimed by the exclusive link of :func:`create_run_file`.

    Returns
    -------
    tuple
        The writer and the path actually created.
    """
    for candidate in candidate_names(path):
        try:
            writer = create_run_file(candidate, header)
        except NameTakenError:
            continue
        if candidate != path:
            log.warning("%s was taken by another run; this run writes %s", path, candidate)
        return writer, candidate
    raise StorageError(f"no free run file name left beside {path}")


#: Free space kept beyond the copy when a closed run file is updated (bytes).
UPDATE_MARGIN_BYTES = 16 << 20


@contextlib.contextmanager
def updating_closed_file(path: str | os.PathLike[str]) -> Iterator[h5py.File]:
    """Yield a writable copy of a closed run file; on success it atomically replaces it.

    The copy is made in the same folder under a temporary name created with
    ``O_CREAT | O_EXCL | O_NOFOLLOW`` (no planted symlink is followed), changed through
    the yielded handle, flushed and fsynced, then ``os.replace``-d over ``path`` and the
    folder is fsynced. A process killed at any moment leaves either the old or the new
    complete file (plus, at worst, a ``.<name>.*.updating`` temporary that is never read).
    An exception in the ``with`` body discards the copy and leaves ``path`` untouched.
    Concurrent updaters of one file are serialised by an ``flock`` on the file itself.

    Raises
    ------
    StorageError
        If the folder lacks the free space for the copy, or the copy cannot be written.
    OSError
        If ``path`` cannot be read.
    """
    run_path = Path(os.fspath(path))
    lock_fd = _lock_current(run_path)
    temporary: Path | None = None
    try:
        size = os.fstat(lock_fd).st_size
        _check_room_for_copy(run_path, size)
        temporary, fd = _exclusive_temporary(run_path, "updating")
        try:
            with open(lock_fd, "rb", closefd=False) as source, open(fd, "wb") as target:
                source.seek(0)
                shutil.copyfileobj(source, target, 1 << 20)
                target.flush()
                os.fchmod(target.fileno(), os.fstat(lock_fd).st_mode & 0o7777)
        except OSError as exc:
            raise StorageError(f"cannot copy {run_path} to update it: {exc}") from exc
        with open_hdf5(temporary, "r+") as file:
            yield file
        fsync_file(temporary)
        os.replace(temporary, run_path)
        temporary = None
        fsync_directory(run_path.parent)
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink()
        os.close(lock_fd)


def update_closed_file(path: Path, change: Callable[[h5py.File], T]) -> T:
    """Apply ``change(file)`` to a closed run file crash-safely; return its result.

    See :func:`updating_closed_file`: the change is made on a copy that replaces the
    file atomically, so a kill or power cut never leaves a torn run file.

    Raises
    ------
    OSError
        If the file cannot be read, copied or replaced (``StorageError`` for a full disk).
    """
    with updating_closed_file(path) as file:
        return change(file)


def _lock_current(path: Path) -> int:
    """Open ``path`` and hold an exclusive ``flock`` on the inode the name points at now."""
    for _attempt in range(100):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            current = os.stat(path, follow_symlinks=False)
            held = os.fstat(fd)
            if (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # another updater replaced the file meanwhile: lock the new one
    raise StorageError(f"{path} keeps being replaced; cannot update it")


def _exclusive_temporary(path: Path, purpose: str) -> tuple[Path, int]:
    """Create ``.<name>.<pid>.<random>.<purpose>`` beside ``path`` without following links."""
    flags = _CLAIM_FLAGS
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{purpose}")
    try:
        return temporary, os.open(temporary, flags, 0o644)
    except OSError as exc:
        raise StorageError(
            f"cannot create the file {path}: {exc.strerror or exc}. "
            f"Check that the folder {path.parent} exists and is writable."
        ) from exc


def _check_room_for_copy(path: Path, size: int) -> None:
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return
    needed = size + max(UPDATE_MARGIN_BYTES, size // 20)
    if free < needed:
        raise StorageError(
            f"not enough free disk space in {path.parent} to update {path.name} safely: "
            f"{needed / 1e6:.1f} MB needed (a copy of the file), {free / 1e6:.1f} MB free. "
            "Free disk space and retry; the file was not changed."
        )
