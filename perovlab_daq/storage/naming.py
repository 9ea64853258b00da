"""Run file names from a pattern such as ``{date}_{sample}_{procedure}_{pixel}.h5``.

User-entered identifiers are sanitised so that no value can add a path separator, climb
out of the data folder (``..``) or hide the file (leading dot); an existing file is never
reused: ``_2``, ``_3``... are appended. :func:`run_file_path` only proposes a free name
(planning creates nothing); the name is claimed atomically when the run file is created
(:func:`perovlab_daq.storage.files.claim_run_file`: an exclusive ``link``, which never
follows a symlink), moving on through :func:`candidate_names` if another run took it in
the meantime, so concurrent runs with the same identifiers each get their own file.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import string
from collections.abc import Iterator
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


def candidate_names(path: Path, limit: int = 10_000) -> Iterator[Path]:
    """Yield ``path``, then ``<stem>_2<suffix>``, ``<stem>_3<suffix>``... (free-looking ones)."""
    stem, suffix = os.path.splitext(path.name)
    for index in range(1, limit + 1):
        candidate = path if index == 1 else path.with_name(f"{stem}_{index}{suffix}")
        if not (os.path.lexists(candidate) or os.path.lexists(f"{candidate}.journal")):
            yield candidate


def run_file_path(
    folder: str | os.PathLike[str], pattern: str = DEFAULT_PATTERN, **fields: Any
) -> Path:
    """Return a new, not yet existing run file path in ``folder`` built from ``pattern``.

    Nothing is created but the folder: the name is claimed when the run file is created
    (see :func:`perovlab_daq.storage.files.claim_run_file`).

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
        If the folder cannot be created.
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
    return next(candidate_names(directory / f"{stem}{suffix}"))
