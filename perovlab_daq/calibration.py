"""Calibration curves against wavelength: photodiode responsivity, spectrometer sensitivity.

A lab measures these once (a calibrated photodiode's datasheet or certificate, a
spectrometer calibrated against a lamp) and keeps them as two-column CSV files,
``wavelength_nm,<value>``, with ``#`` comment lines and one header line. The bench file
names them (``setup.responsivity_file``, ``setup.spectrometer_sensitivity_file``); every
reader in the application goes through :func:`load_calibration_csv`, so a file is either
accepted everywhere or refused everywhere with the same message.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def load_calibration_csv(
    path: str | Path, *, positive: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Read a two-column calibration CSV.

    Parameters
    ----------
    path
        File with ``#`` comment lines, one optional header line, then ``nm,value`` rows.
    positive
        Also require every value to be > 0 (sensitivities, which spectra are divided by).

    Returns
    -------
    wavelength_nm, values
        Arrays sorted by wavelength (nm strictly increasing).

    Raises
    ------
    ValueError
        Naming the file and line: unreadable rows, fewer than two rows, repeated
        wavelengths, non-finite (or, with ``positive``, non-positive) values.
    """
    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file_path}: cannot read calibration file ({exc})") from None
    rows: list[tuple[float, float]] = []
    header_seen = False
    for number, line in enumerate(text.splitlines(), 1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        fields = [field.strip() for field in content.split(",")]
        try:
            row = (float(fields[0]), float(fields[1]))
        except (IndexError, ValueError):
            if not header_seen and not rows:
                header_seen = True
                continue
            raise ValueError(
                f"{file_path}: line {number}: expected 'wavelength_nm,value', got {content!r}"
            ) from None
        if not (math.isfinite(row[0]) and math.isfinite(row[1])):
            raise ValueError(f"{file_path}: line {number}: values must be finite, got {content!r}")
        if positive and row[1] <= 0:
            raise ValueError(f"{file_path}: line {number}: value must be > 0, got {content!r}")
        rows.append(row)
    if len(rows) < 2:
        raise ValueError(f"{file_path}: needs at least two 'wavelength_nm,value' rows")
    table = np.array(sorted(rows), dtype=float)
    if np.any(np.diff(table[:, 0]) <= 0):
        raise ValueError(f"{file_path}: wavelengths repeat")
    return table[:, 0], table[:, 1]


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 of a file (recorded beside every calibration file used)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
