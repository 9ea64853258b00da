"""Checks a run file before anything reads it: a damaged or foreign file fails in one line.

A run file comes from anywhere (another PC, a killed run, a disk error), so before
``analyze``, ``report``, ``lifetime-fit``, ``recover`` or the GUI read one,
:func:`check_run_file` makes sure that reading it is bounded:

* it is a regular file (a FIFO or device would block or never end), with the HDF5
  signature;
* it opens with h5py, and walking it visits at most :data:`MAX_OBJECTS` objects, whose
  attributes all read (a damaged header fails here at once; read later in SWMR mode it
  would be retried for minutes);
* no link leads outside the file (external links are refused: a file must not make the
  reader open other paths);
* no dataset declares more data than the file can hold: a dataset's shape times its
  element size may exceed the file's size only by a compression allowance
  (:data:`MAX_EXPANSION`), and never :data:`MAX_DATASET_BYTES`; a contiguous dataset must
  lie inside the file. A header that declares 10^11 elements is refused before anything
  is allocated.

The module depends on h5py only (and :mod:`perovlab_daq.safe_input`), so the storage
reader can call it too. Problems raise :class:`DamagedFileError` naming the file.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from perovlab_daq.safe_input import UnsafeInputError, check_regular_file

log = logging.getLogger(__name__)

#: HDF5 format signature; it sits at offset 0 or after a user block (512, 1024, 2048...).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Most objects (groups, datasets) a run file may hold.
MAX_OBJECTS = 50_000
#: How much larger than the file a (compressed) dataset may be once read.
MAX_EXPANSION = 64
#: Headroom for small files whose datasets compress well (bytes).
EXPANSION_HEADROOM = 64 << 20
#: Largest attribute read (bytes): run files keep small metadata in attributes.
MAX_ATTRIBUTE_BYTES = 16 << 20
#: No single dataset is ever read beyond this size (bytes).
MAX_DATASET_BYTES = 8 << 30


#: What HDF5 says when a file's writer died in SWMR mode (its consistency flags are set).
_LEFT_OPEN_FOR_WRITING = "already open for write"


class DamagedFileError(ValueError):
    """A run file is damaged or not a run file; the message names the file and the problem.

    ``path`` is the file and ``problem`` what is wrong (the message without the path).
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Sent back from analyze's worker processes and Dask workers: rebuilt from both
        # arguments (the default would call __init__ with the message alone).
        return type(self), (self.path, self.problem)


class NotHdf5Error(DamagedFileError):
    """The file is not HDF5 at all: not a file this program wrote (``recover`` refuses it)."""


class _Refused(Exception):
    """A problem found inside the file, before the path is known to the message."""


def _has_signature(path: Path, size: int) -> bool:
    offsets = [0] + [512 << k for k in range(20) if (512 << k) + 8 <= size]
    with open(path, "rb") as handle:
        for offset in offsets:
            handle.seek(offset)
            if handle.read(8) == HDF5_SIGNATURE:
                return True
    return False


def check_run_file(path: str | os.PathLike[str], *, allow_unreadable: bool = False) -> None:
    """Refuse a file that cannot be read safely as HDF5 (see the module docstring).

    Parameters
    ----------
    path
        The run file.
    allow_unreadable
        Let a file pass that does not open because its writer died in SWMR mode
        (``recover`` salvages it with an SWMR reader). Any other file is checked in full:
        a damaged header would make that SWMR reader retry for minutes.

    Raises
    ------
    FileNotFoundError
        If nothing is at ``path``.
    DamagedFileError
        Naming the file and what is wrong with it.
    """
    import h5py

    file_path = Path(path)
    if not os.path.lexists(file_path):
        raise FileNotFoundError(str(file_path))
    try:
        info = check_regular_file(file_path, "run file")
    except UnsafeInputError as exc:
        raise DamagedFileError(file_path, str(exc).removeprefix(f"{file_path}: ")) from None
    size = info.st_size
    try:
        signed = _has_signature(file_path, size)
    except OSError as exc:
        raise DamagedFileError(file_path, f"cannot read ({exc.strerror or exc})") from None
    if not signed:
        raise NotHdf5Error(file_path, "not an HDF5 file (no HDF5 signature)")
    budget = min(MAX_DATASET_BYTES, max(EXPANSION_HEADROOM, MAX_EXPANSION * size))
    try:
        handle = h5py.File(file_path, "r", locking=False)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        if allow_unreadable and _LEFT_OPEN_FOR_WRITING in str(exc):
            return  # a writer killed in SWMR mode: only recover's SWMR reader opens it
        raise DamagedFileError(file_path, f"damaged or not HDF5 ({_brief(exc)})") from None
    # Once the file opens, what it holds must read: a damaged header read later in SWMR
    # mode is retried for minutes, so it is refused here, where it fails at once.
    try:
        with handle:
            _check_objects(handle, size, budget)
    except DamagedFileError:
        raise
    except _Refused as exc:
        raise DamagedFileError(file_path, str(exc)) from None
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, SystemError) as exc:
        raise DamagedFileError(file_path, f"damaged ({_brief(exc)})") from None


def _brief(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _check_objects(handle: Any, file_size: int, budget: int) -> None:
    import h5py

    # Collect first, check after: an exception raised inside h5py's visit callback
    # surfaces as a SystemError. Returning a value stops the visit. The low-level visit
    # gives each link's type without h5py's per-name path lookups (half the check's time).
    links: list[tuple[bytes, int]] = []

    def collect(name: bytes, info: Any) -> bool | None:
        links.append((name, info.type))
        return True if len(links) > MAX_OBJECTS else None

    handle.id.links.visit(collect, info=True)
    if len(links) > MAX_OBJECTS:
        raise _Refused(f"more than {MAX_OBJECTS} objects")
    _check_attributes(handle["/"])
    for raw_name, kind in links:
        name = raw_name.decode("utf-8", "surrogateescape")
        if kind == h5py.h5l.TYPE_EXTERNAL:
            target = handle.id.links.get_val(raw_name)
            filename = target[0].decode("utf-8", "replace") if target else "?"
            raise _Refused(f"{name!r} links to another file ({filename!r})")
        if kind != h5py.h5l.TYPE_HARD:
            continue  # soft links point inside the file, at objects visited anyway
        object_id = h5py.h5o.open(handle.id, raw_name)
        if isinstance(object_id, h5py.h5d.DatasetID):
            item = h5py.Dataset(object_id)
            check_dataset(item, file_size, budget)
        else:
            item = h5py.Group(object_id) if isinstance(object_id, h5py.h5g.GroupID) else None
        if item is not None:
            _check_attributes(item)


def _check_attributes(item: Any) -> None:
    """Read every attribute of ``item`` (bounded in size): damage shows here, at once.

    Numbers and strings are read with h5py's low-level calls into arrays of the stored
    type (the same bytes as ``item.attrs[name]`` at about half its cost); booleans,
    compounds and references through ``item.attrs``, which knows their conversions.
    """
    import h5py
    import numpy as np

    names: list[bytes] = []
    h5py.h5a.iterate(item.id, names.append)
    for name in names:
        attribute = h5py.h5a.open(item.id, name)
        if attribute.get_space().get_simple_extent_type() == h5py.h5s.NULL:
            continue  # an empty attribute has nothing to read
        shape = attribute.shape or ()
        size = (math.prod(shape) if shape else 1) * max(1, int(attribute.dtype.itemsize))
        if size > MAX_ATTRIBUTE_BYTES:
            shown = name.decode("utf-8", "replace")
            raise _Refused(f"attribute {shown!r} of {item.name!r} declares {size} bytes")
        dtype = attribute.dtype
        if dtype.kind in "iufS" or h5py.check_string_dtype(dtype) is not None:
            attribute.read(np.empty(shape, dtype=dtype))
        else:  # booleans (enums), compounds, references: h5py's own conversion
            item.attrs[name.decode("utf-8", "surrogateescape")]


def check_dataset(dataset: Any, file_size: int, budget: int | None = None) -> None:
    """Refuse a dataset whose declared size the file cannot back (see the module docstring).

    Parameters
    ----------
    dataset
        An open ``h5py.Dataset``.
    file_size
        Size of its file in bytes.
    budget
        Largest size allowed once read (bytes); default from ``file_size``.

    Raises
    ------
    DamagedFileError
        Naming the file, the dataset, its shape and the limit.
    """
    if budget is None:
        budget = min(MAX_DATASET_BYTES, max(EXPANSION_HEADROOM, MAX_EXPANSION * file_size))
    shape = dataset.shape or ()
    elements = math.prod(int(n) for n in shape) if shape else 1
    declared = elements * max(1, int(dataset.dtype.itemsize))
    if declared > budget:
        raise DamagedFileError(
            dataset.file.filename,
            f"dataset {dataset.name!r} declares shape {tuple(shape)} ({declared} bytes) "
            f"in a file of {file_size} bytes: damaged or forged",
        )
    if dataset.chunks is None and elements:
        offset = dataset.id.get_offset()
        stored = dataset.id.get_storage_size()
        if offset is not None and offset + stored > file_size:
            raise DamagedFileError(
                dataset.file.filename,
                f"dataset {dataset.name!r} ends at byte {offset + stored}, beyond the end "
                f"of the file ({file_size} bytes): truncated?",
            )
