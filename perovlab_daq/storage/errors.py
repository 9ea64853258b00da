"""Exception raised by the storage back end when a run's file cannot be written or read."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class StorageError(OSError):
    """A run file or its journal cannot be created, written, read or recovered.

    The message says what failed, on which path, and what to do (free disk space,
    choose a writable folder, run ``perovlab-daq recover FILE``). It subclasses
    :class:`OSError` so code that already handles I/O errors also catches it.
    """

    #: Not an instrument hiccup: ``DaqProcedure.call_with_retry`` never retries it.
    transient = False


class DiskFullError(StorageError):
    """The disk is about to fill up: the run stopped while the file could still be closed.

    Raised before a batch is written, never after HDF5 met a full disk, so everything
    recorded before it is in the file (and in its journal).
    """


class ForeignFileError(StorageError):
    """A file given to ``recover`` was not written by perovlab-daq: it is left untouched."""
