"""Compacting a closed run file: the same content without the slack of a live file.

A live run file is written in SWMR mode, uncompressed (deflate on a live dataset with
frequent flushes inflates a file up to 400x) and in whole chunks, so a short run carries
mostly empty chunks: a one-spectrum PL run took 593 kB for 51 kB of values. Once the run
is closed, :func:`compact_run_file` writes a copy with the same groups, datasets,
attributes and links in the same order, the chunked datasets keeping their chunk shapes
(a resumed lifetime run still appends to them) but deflate-compressed, so an unfilled
chunk costs almost nothing; space the closing rewrite left unused is not copied. The
copy is fsynced and atomically replaces the file, under the same lock as
:func:`~perovlab_daq.storage.files.updating_closed_file`: a kill at any moment leaves the
complete old or the complete new file. Files larger than :data:`COMPACT_UP_TO_BYTES`
are left as they are (their chunks are full; the copy would cost seconds).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import h5py

from .errors import StorageError
from .files import (
    _check_room_for_copy,
    _exclusive_temporary,
    _lock_current,
    fsync_file,
    open_hdf5,
)
from .journal import fsync_directory

log = logging.getLogger(__name__)

#: Largest file that is compacted when its run closes (bytes).
COMPACT_UP_TO_BYTES = 64 << 20
#: Filters of the chunked numeric datasets of a compacted file (readable by any HDF5 tool).
COMPACT_FILTERS: dict[str, Any] = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
#: Rows copied at a time from a large dataset (bounds the memory of a compaction).
_COPY_ROWS = 1 << 16


def compact_run_file(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """Rewrite a closed run file without its unused space; return (bytes before, after).

    Returns None when the file was left as it is (larger than
    :data:`COMPACT_UP_TO_BYTES`, or the copy would not be smaller).

    Raises
    ------
    StorageError
        If the copy cannot be written (the file is then unchanged).
    OSError
        If the file cannot be read.
    """
    run_path = Path(os.fspath(path))
    lock_fd = _lock_current(run_path)
    temporary: Path | None = None
    try:
        before = os.fstat(lock_fd).st_size
        if before > COMPACT_UP_TO_BYTES:
            return None
        _check_room_for_copy(run_path, before)
        temporary, fd = _exclusive_temporary(run_path, "compacting")
        os.fchmod(fd, os.fstat(lock_fd).st_mode & 0o7777)
        os.close(fd)
        try:
            with open_hdf5(run_path, "r") as source, open_hdf5(temporary, "w") as target:
                copy_tree(source, target)
        except (OSError, ValueError, TypeError) as exc:
            raise StorageError(f"cannot write a compact copy of {run_path}: {exc}") from exc
        after = temporary.stat().st_size
        if after >= before:
            return None
        fsync_file(temporary)
        os.replace(temporary, run_path)
        temporary = None
        fsync_directory(run_path.parent)
        return before, after
    finally:
        if temporary is not None:
            try:
                temporary.unlink()
            except OSError:
                pass
        os.close(lock_fd)


def copy_tree(source: h5py.File, target: h5py.File) -> None:
    """Copy every group, dataset, attribute and link of ``source`` into ``target``.

    Order of links and attributes is kept (creation order where the source tracks it);
    an object reached by several hard links is copied once and linked again.
    """
    copied: dict[Any, Any] = {}
    _copy_attributes(source, target)
    _copy_members(source, target, copied)


def _copy_members(source: h5py.Group, target: h5py.Group, copied: dict[Any, Any]) -> None:
    for name in source:
        link = source.get(name, getlink=True)
        if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
            target[name] = link
            continue
        item = source[name]
        key = item.id  # equal for every hard link to one object
        if key in copied:
            target[name] = copied[key]
            continue
        if isinstance(item, h5py.Group):
            plist = item.id.get_create_plist()
            group = target.create_group(name, track_order=bool(plist.get_link_creation_order()))
            _copy_attributes(item, group)
            _copy_members(item, group, copied)
            copied[key] = group
        else:
            copied[key] = _copy_dataset(item, target, name)


def _copy_attributes(source: h5py.HLObject, target: h5py.HLObject) -> None:
    for name in source.attrs:
        dtype = source.attrs.get_id(name).dtype
        target.attrs.create(name, source.attrs[name], dtype=dtype)


def _copy_dataset(source: h5py.Dataset, parent: h5py.Group, name: str) -> h5py.Dataset:
    plist = source.id.get_create_plist()
    options: dict[str, Any] = {
        "track_order": bool(plist.get_attr_creation_order()),
    }
    if source.shape is None:  # an empty (null dataspace) dataset
        dataset = parent.create_dataset(name, data=h5py.Empty(source.dtype), **options)
        _copy_attributes(source, dataset)
        return dataset
    numeric = source.dtype.kind in "biuf"
    if source.chunks is not None:
        options["chunks"] = source.chunks
        options["maxshape"] = source.maxshape
        if numeric:
            options.update(COMPACT_FILTERS)
    if numeric or source.dtype.kind == "S":
        options["fillvalue"] = source.fillvalue
    dataset = parent.create_dataset(name, shape=source.shape, dtype=source.dtype, **options)
    if source.shape == ():
        dataset[()] = source[()]
    elif source.size:
        for start in range(0, source.shape[0], _COPY_ROWS):
            stop = min(source.shape[0], start + _COPY_ROWS)
            dataset[start:stop] = source[start:stop]
    _copy_attributes(source, dataset)
    return dataset
