"""Reading what a damaged or still-flagged run file holds, without ``h5clear``.

A writer killed while it had the file open leaves the superblock's "open for write"
consistency flags set; HDF5 then refuses the file (``h5clear -s`` would clear them in
place). :func:`open_damaged` never edits the file: it tries the normal and the SWMR read,
and otherwise reads a private copy whose flags are cleared (superblock versions 2 and 3,
checksum recomputed). :func:`read_salvage` collects every readable row, frame stream and
event, and :func:`is_foreign` tells a file this program did not write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .files import _exclusive_temporary, open_hdf5

log = logging.getLogger(__name__)

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MASK = 0xFFFFFFFF


class ForeignFile(Exception):
    """Raised inside this module when a readable HDF5 file lacks the perovlab-daq marker."""


@dataclass
class Salvage:
    """What could be read from a run file.

    Attributes
    ----------
    columns
        Data column arrays by dataset name, all cut to ``rows``.
    rows
        Complete rows (the shortest column).
    streams
        Per frame stream: ``{"wavelength", "intensity", "context": {name: array}, "units"}``.
    events
        Event datasets by field name, cut to the shortest.
    attrs
        The ``entry`` attributes.
    notes
        What was wrong while reading.
    """

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    rows: int = 0
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


#: Rotations of the two halves of lookup3's ``mix`` step.
_MIX_ROTATIONS = ((4, 6, 8), (16, 19, 4))


def _rot(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (32 - shift))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``: the checksum HDF5 stores in its metadata."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    offset = 0
    while length > 12:
        x, y, z = struct.unpack_from("<3I", data, offset)
        a, b, c = (a + x) & _MASK, (b + y) & _MASK, (c + z) & _MASK
        for first, second, third in _MIX_ROTATIONS:  # lookup3 ``mix``: two same-shape halves
            a = ((a - c) & _MASK) ^ _rot(c, first)
            c = (c + b) & _MASK
            b = ((b - a) & _MASK) ^ _rot(a, second)
            a = (a + c) & _MASK
            c = ((c - b) & _MASK) ^ _rot(b, third)
            b = (b + a) & _MASK
        length -= 12
        offset += 12
    if length == 0:
        return c
    tail = data[offset:] + bytes(12 - length)
    x, y, z = struct.unpack("<3I", tail)
    a, b, c = (a + x) & _MASK, (b + y) & _MASK, (c + z) & _MASK
    c = ((c ^ b) - _rot(b, 14)) & _MASK
    a = ((a ^ c) - _rot(c, 11)) & _MASK
    b = ((b ^ a) - _rot(a, 25)) & _MASK
    c = ((c ^ b) - _rot(b, 16)) & _MASK
    a = ((a ^ c) - _rot(c, 4)) & _MASK
    b = ((b ^ a) - _rot(a, 14)) & _MASK
    c = ((c ^ b) - _rot(b, 24)) & _MASK
    return c


def clear_write_flags(path: Path) -> bool:
    """Clear the "open for write" flags of the superblock of ``path`` (a private copy).

    Returns whether a version 2/3 superblock with a valid checksum was found and fixed.
    """
    with open(path, "r+b") as handle:
        for base in (0, 512, 1024, 2048, 4096):
            handle.seek(base)
            head = handle.read(12)
            if len(head) < 12 or head[:8] != _SIGNATURE:
                continue
            version, offsets = head[8], head[9]
            if version not in (2, 3):
                return False
            size = 12 + 4 * offsets
            handle.seek(base)
            block = bytearray(handle.read(size + 4))
            (stored,) = struct.unpack_from("<I", block, size)
            if lookup3(bytes(block[:size])) != stored:
                return False
            block[11] = 0
            struct.pack_into("<I", block, size, lookup3(bytes(block[:size])))
            handle.seek(base)
            handle.write(block)
            return True
    return False


@contextlib.contextmanager
def open_damaged(path: Path, notes: list[str]) -> Iterator[h5py.File]:
    """Open ``path`` read-only however it was left; never modify it.

    Raises
    ------
    OSError
        If the file cannot be read as HDF5 even with its flags cleared on a copy.
    """
    for swmr in (False, True):
        try:
            file = open_hdf5(path, "r", swmr=swmr)
        except OSError as exc:
            last = exc
            continue
        with file:
            yield file
        return
    copy, fd = _exclusive_temporary(path, "salvaging")
    try:
        with open(path, "rb") as source, open(fd, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        if not clear_write_flags(copy):
            raise OSError(f"{path} is not readable as HDF5: {last}")
        notes.append(
            "the file was flagged open for write; read through a copy with the flag cleared"
        )
        with open_hdf5(copy, "r") as file:
            yield file
    finally:
        with contextlib.suppress(OSError):
            copy.unlink()


def is_ours(file: h5py.File) -> bool:
    """Return whether ``file`` carries the marker every run file of this program has."""
    creator = file.attrs.get("creator", "")
    if isinstance(creator, bytes):
        creator = creator.decode("utf-8", "replace")
    return "perovlab_daq_version" in file.attrs and str(creator).startswith("perovlab-daq")


def _readable(dataset: h5py.Dataset, notes: list[str]) -> np.ndarray | None:
    try:
        return dataset[()]
    except (OSError, ValueError, KeyError) as exc:
        notes.append(f"{dataset.name} unreadable: {exc}")
        return None


def read_salvage(path: Path) -> Salvage:
    """Read every usable row, frame stream and event of a (damaged) run file.

    Raises
    ------
    ForeignFile
        If the file opens as HDF5 but was not written by perovlab-daq.
    OSError
        If it cannot be read as HDF5 at all.
    """
    salvage = Salvage()
    notes = salvage.notes
    with open_damaged(path, notes) as file:
        if not is_ours(file):
            raise ForeignFile(f"{path} was not written by perovlab-daq")
        entry = file.get("entry")
        if not isinstance(entry, h5py.Group):
            notes.append("no entry group")
            return salvage
        salvage.attrs = dict(entry.attrs)
        data = entry.get("data")
        if isinstance(data, h5py.Group):
            for name, dataset in data.items():
                if isinstance(dataset, h5py.Dataset) and dataset.ndim == 1:
                    values = _readable(dataset, notes)
                    if values is not None:
                        salvage.columns[name] = np.asarray(values, dtype=float)
        salvage.rows = min((len(v) for v in salvage.columns.values()), default=0)
        salvage.columns = {k: v[: salvage.rows] for k, v in salvage.columns.items()}
        events = entry.get("events")
        if isinstance(events, h5py.Group):
            fields = {n: _readable(d, notes) for n, d in events.items()}
            fields = {n: v for n, v in fields.items() if v is not None}
            count = min((len(v) for v in fields.values()), default=0)
            salvage.events = {n: v[:count] for n, v in fields.items()}
        for stream, group in entry.items():
            if not (isinstance(group, h5py.Group) and "intensity" in group):
                continue
            intensity = _readable(group["intensity"], notes)
            wavelength = _readable(group["wavelength"], notes) if "wavelength" in group else None
            if intensity is None or wavelength is None:
                continue
            context = {}
            for name, dataset in group.items():
                if name in ("intensity", "wavelength") or not isinstance(dataset, h5py.Dataset):
                    continue
                values = _readable(dataset, notes)
                if values is not None:
                    context[name] = np.asarray(values, dtype=float)
            count = min([len(intensity), *(len(v) for v in context.values())])
            salvage.streams[stream] = {
                "wavelength": wavelength,
                "intensity": intensity[:count],
                "context": {k: v[:count] for k, v in context.items()},
                "units": {n: str(group[n].attrs.get("units", "")) for n in context},
                "intensity_units": str(group["intensity"].attrs.get("units", "counts")),
            }
    return salvage


def has_hdf5_signature(path: Path) -> bool:
    """Return whether ``path`` starts with an HDF5 superblock (at 0, 512, 1024... bytes)."""
    try:
        with open(path, "rb") as handle:
            for base in (0, 512, 1024, 2048, 4096):
                handle.seek(base)
                if handle.read(8) == _SIGNATURE:
                    return True
    except OSError:
        return False
    return False


def file_size(path: Path) -> int:
    """Return the size of ``path`` in bytes (0 if missing)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
