"""Run file names from a pattern such as ``{date}_{sample}_{procedure}_{pixel}.h5``.

User-entered identifiers are sanitised so that no value can add a path separator, climb
out of the data folder (``..``) or hide the file (leading dot); an existing file is never
reused: ``_2``, ``_3``... are appended. A name is claimed atomically by creating an empty
placeholder with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (:func:`claim_path`), so concurrent
runs with the same identifiers each get their own file and a symlink planted in a shared
data folder is never followed; :func:`perovlab_daq.storage.files.create_run_file` then
replaces exactly that placeholder.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import stat
import string
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_PATTERN = "{date}_{sample}_{procedure}_{pixel}.h5"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_MAX_FIELD = 64


def sanitize_field(value: Any) -> str:
    """Return ``value`` as a safe file-name fragment (letters, digits, ``._+-``)."""
    text = _UNSAFE.sub("-", str(value)).strip("-.")
    text = re.sub(r"\.{2,}", ".", text)
    return text[:_MAX_FIELD] or "unknown"


class _SafeFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        return sanitize_field(super().format_field(value, format_spec))

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        if isinstance(key, int) or key not in kwargs:
            raise KeyError(key)
        return kwargs[key]

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if not field_name.isidentifier():  # no attribute or index look-ups from a pattern
            raise ValueError(f"invalid field {{{field_name}}} in the file name pattern")
        return super().get_field(field_name, args, kwargs)


#: Flags of an exclusive, symlink-refusing creation.
CLAIM_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)


def claim_path(path: str | os.PathLike[str]) -> bool:
    """Claim ``path`` by creating it empty and exclusively; return ``False`` if it is taken.

    An existing file, directory or symlink (even a dangling one) counts as taken.

    Raises
    ------
    OSError
        For errors other than the name being taken (missing or read-only folder...).
    """
    try:
        fd = os.open(path, CLAIM_FLAGS, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def is_claim(path: str | os.PathLike[str]) -> bool:
    """Return whether ``path`` is an empty placeholder of :func:`claim_path` (this user's)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    owner = getattr(os, "geteuid", lambda: info.st_uid)()
    return stat.S_ISREG(info.st_mode) and info.st_size == 0 and info.st_uid == owner


def run_file_path(
    folder: str | os.PathLike[str], pattern: str = DEFAULT_PATTERN, **fields: Any
) -> Path:
    """Claim and return a new run file path in ``folder`` built from ``pattern``.

    The name is claimed with an empty placeholder file created exclusively (see
    :func:`claim_path`); the run file replaces it when the run is created.

    Parameters
    ----------
    folder
        The data folder (created if missing).
    pattern
        ``str.format`` pattern; fields are given as keywords, plus ``date``
        (YYYY-MM-DD), ``time`` (HHMMSS) and ``datetime`` by default. ``.h5`` is added
        if the pattern has no extension.
    **fields
        Values for the pattern (sample, procedure, pixel, ...); sanitised.

    Raises
    ------
    ValueError
        If the pattern names a field that is not given, or contains a path separator.
    OSError
        If the folder cannot be created or written.
    """
    now = _dt.datetime.now()
    values = {
        "date": now.strftime("%Y-%m-%d"),
        "time": now.strftime("%H%M%S"),
        "datetime": now.strftime("%Y-%m-%dT%H%M%S"),
    }
    values.update(fields)
    literal = "".join(text for text, *_ in string.Formatter().parse(pattern))
    if "/" in literal or "\\" in literal or os.sep in literal:
        raise ValueError(f"the file name pattern {pattern!r} must not contain a folder")
    try:
        name = _SafeFormatter().format(pattern, **values)
    except KeyError as exc:
        raise ValueError(
            f"the file name pattern {pattern!r} needs field {exc.args[0]!r}; "
            f"given: {sorted(values)}"
        ) from None
    name = name.lstrip(".") or "run"
    stem, suffix = os.path.splitext(name)
    if suffix.lower() not in (".h5", ".hdf5", ".nxs"):
        stem, suffix = name, ".h5"
    directory = Path(os.fspath(folder))
    directory.mkdir(parents=True, exist_ok=True)
    candidate = directory / f"{stem}{suffix}"
    index = 1
    while os.path.lexists(f"{candidate}.journal") or not claim_path(candidate):
        index += 1
        candidate = directory / f"{stem}_{index}{suffix}"
    return candidate
