"""Tidy CSV export of a run file, for people who finish in a spreadsheet or Origin.

``perovlab-daq export FILE --csv DIR`` writes one CSV per table of the run, named
``<file stem>_<table>.csv``; every header names the quantity and its unit
(``voltage (V)``, ``current_density (mA/cm^2)``); a value that is undefined (NaN) is an
empty cell:

* ``data``: one row per data row (``entry/data``), one column per quantity;
* ``check_sweeps`` (lifetime runs with check sweeps): the same, for those rows;
* ``<stream>`` for each frame stream (``spectra``, ``spectra_raw``, ...), long format:
  one row per (frame, wavelength) with the frame's context (``frame``, ``time (s)``,
  ``bias (V)``...), ``wavelength (nm)`` and ``intensity (<units>)``;
* ``key_figures``: ``key_figure, value, unit`` (recomputed from the file as ``analyze``
  does; the stored ones when they cannot be);
* ``parameters``: ``parameter, value, unit`` (current names, docs/parameters.md);
* ``events``: ``time (s), timestamp, level, kind, message``;
* ``run``: ``field, value``: procedure, title, status, start and end, sample, pixel,
  simulated.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from perovlab_daq.figures import analyze_file
from perovlab_daq.procedures.parameter_names import canonical_name
from perovlab_daq.storage import RunReader, layout

log = logging.getLogger(__name__)

#: Unit of a key figure from the end of its name (docs/analysis.md naming rule).
FIGURE_UNITS = (
    ("_ma_cm2", "mA/cm^2"),
    ("_w_cm2", "W/cm^2"),
    ("_j_cm2", "J/cm^2"),
    ("_cd_m2", "cd/m^2"),
    ("_cd_a", "cd/A"),
    ("_lm_w", "lm/W"),
    ("_cm2", "cm^2"),
    ("_pct", "%"),
    ("_nm", "nm"),
    ("_v_s", "V/s"),
    ("_v", "V"),
    ("_a", "A"),
    ("_w", "W"),
    ("_h", "h"),
    ("_s", "s"),
)


def heading(name: str, units: str) -> str:
    """Return a column heading with its unit: ``voltage (V)``; the name alone without one."""
    return f"{name} ({units})" if units else name


def figure_unit(name: str) -> str:
    """Return the unit a key figure's name ends with (``peak_eqe_pct`` -> ``%``), or ''."""
    return next((unit for suffix, unit in FIGURE_UNITS if name.endswith(suffix)), "")


def _cell(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    if value is None:
        return ""
    if isinstance(value, np.ndarray):
        return " ".join(str(_cell(v)) for v in value.ravel())
    return value


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
    return path


def _row_group(group: h5py.Group) -> tuple[list[str], list[np.ndarray]]:
    """Return (headings, columns) of an NXdata group of 1-D columns."""
    names, values = [], []
    for name, dataset in group.items():
        if isinstance(dataset, h5py.Dataset) and dataset.ndim == 1:
            names.append(heading(name, _units(dataset)))
            values.append(dataset[()])
    rows = min((len(v) for v in values), default=0)
    return names, [v[:rows] for v in values]


def _units(dataset: h5py.Dataset) -> str:
    units = dataset.attrs.get("units", "")
    return units.decode("utf-8", "replace") if isinstance(units, bytes) else str(units)


def _data_tables(path: Path, reader: RunReader, folder: Path, stem: str) -> list[Path]:
    written = []
    columns = reader.columns
    values = reader.read_columns(list(columns))
    header = [heading(key, units) for key, units in columns.items()]
    rows = zip(*(values[key] for key in columns), strict=True) if values else iter(())
    written.append(_write(folder / f"{stem}_data.csv", header, rows))
    with h5py.File(path, "r", locking=False) as file:
        group = file.get("entry/check_sweeps")
        if isinstance(group, h5py.Group):
            names, cols = _row_group(group)
            written.append(
                _write(folder / f"{stem}_check_sweeps.csv", names, zip(*cols, strict=True))
            )
    return written


def _stream_table(reader: RunReader, stream: str, path: Path) -> Path:
    frames = reader.frames(stream)
    units = frames.units
    context = list(frames.context.columns)
    header = ["frame", *(heading(c, units.get(c, "")) for c in context)]
    header += [
        heading("wavelength", units.get("wavelength", "nm")),
        heading("intensity", units.get("intensity", "")),
    ]

    def rows() -> Iterable[list[Any]]:
        for index in range(len(frames)):
            context_values = [frames.context[c].iloc[index] for c in context]
            for wavelength, intensity in zip(
                frames.wavelength, frames.intensity[index], strict=True
            ):
                yield [index, *context_values, float(wavelength), float(intensity)]

    return _write(path, header, rows())


def _key_figures(path: Path, reader: RunReader) -> dict[str, Any]:
    try:
        return dict(analyze_file(path, store=False))
    except Exception as exc:  # noqa: BLE001 - fall back to what the file stores
        log.warning("%s: key figures not recomputed (%s); the stored ones are exported", path, exc)
        return dict(reader.analysis)


def _figure_rows(figures: Mapping[str, Any]) -> list[list[Any]]:
    rows = []
    for key, value in figures.items():
        if isinstance(value, Mapping) and "value" in value:
            rows.append([key, value["value"], value.get("units") or figure_unit(key)])
        else:
            rows.append([key, value, figure_unit(key)])
    return rows


def _parameter_rows(path: Path) -> list[list[Any]]:
    rows = []
    with h5py.File(path, "r", locking=False) as file:
        for key, dataset in (file.get("entry/parameters") or {}).items():
            if isinstance(dataset, h5py.Dataset):
                rows.append([canonical_name(key), layout.read_value(dataset), _units(dataset)])
    return rows


def _run_rows(path: Path, reader: RunReader) -> list[list[Any]]:
    with h5py.File(path, "r", locking=False) as file:
        entry = file["entry"]
        simulated = layout.file_is_simulated(file)
        sample = layout.read_mapping(entry["sample"]) if "sample" in entry else {}
        title = entry.get("title")
        title_text = layout.read_value(title) if isinstance(title, h5py.Dataset) else ""
    rows = [
        ["file", path.name],
        ["procedure", reader.procedure],
        ["title", title_text],
        ["status", reader.status],
        ["start_time", reader.info.start_time],
        ["end_time", reader.info.end_time],
        ["simulated", "true" if simulated else "false"],
    ]
    rows += [[key, value] for key, value in sample.items()]
    return rows


def export_csv(path: str | Path, folder: str | Path) -> list[Path]:
    """Write the tidy CSV tables of a run file into ``folder``; return the files written.

    Raises
    ------
    perovlab_daq.storage.StorageError
        If the file is not a run file.
    """
    path, out = Path(path), Path(folder)
    reader = RunReader(path)
    out.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    written = _data_tables(path, reader, out, stem)
    for stream in reader.streams():
        written.append(_stream_table(reader, stream, out / f"{stem}_{stream}.csv"))
    figures = _key_figures(path, reader)
    header = ["key_figure", "value", "unit"]
    written.append(_write(out / f"{stem}_key_figures.csv", header, _figure_rows(figures)))
    header = ["parameter", "value", "unit"]
    written.append(_write(out / f"{stem}_parameters.csv", header, _parameter_rows(path)))
    events = reader.events
    written.append(
        _write(
            out / f"{stem}_events.csv",
            ["time (s)", "timestamp", "level", "kind", "message"],
            ([e.get(k) for k in ("time", "timestamp", "level", "kind", "message")] for e in events),
        )
    )
    written.append(_write(out / f"{stem}_run.csv", ["field", "value"], _run_rows(path, reader)))
    return written
