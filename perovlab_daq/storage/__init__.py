"""Crash-safe HDF5 storage of runs: a PyMeasure ``Results`` replacement, journal, recovery.

Public API:

* :class:`HDF5Results` - one self-describing HDF5 file per run, live-readable (SWMR),
  backed by an SQLite journal; ``HDF5Results.load(path)`` reads one back;
* :class:`DaqWorker` - pymeasure Worker that routes rows, frames, events and status to it;
* :class:`RunReader` - read a finished or live run file by path, no procedure needed;
* :func:`recover` - rebuild a file a killed run left behind (``perovlab-daq recover FILE``);
* :func:`run_file_path` - safe, never-overwriting file names from a pattern;
* :class:`StorageError` - what the runner catches when the disk is full or unwritable.

The layout is documented in ``docs/hdf5-layout.md``.
"""

import logging

from .errors import DiskFullError, ForeignFileError, StorageError
from .header import describe_instrument
from .layout import FILE_FORMAT_VERSION
from .naming import DEFAULT_PATTERN, run_file_path, sanitize_field
from .reader import FrameSet, RunReader
from .recovery import RecoveryReport, recover
from .results import HDF5Results
from .worker import DaqWorker

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PATTERN",
    "FILE_FORMAT_VERSION",
    "DaqWorker",
    "DiskFullError",
    "ForeignFileError",
    "FrameSet",
    "HDF5Results",
    "RecoveryReport",
    "RunReader",
    "StorageError",
    "describe_instrument",
    "recover",
    "run_file_path",
    "sanitize_field",
]
