"""Reports for people: a run's figures with who, what and when, as PNG or multi-page A4 PDF.

:func:`write_report` is what ``perovlab-daq report FILE -o OUT`` draws:

* every page and picture carries a title with the sample, pixel, procedure and date
  (:func:`report_title`) and, for a run on the simulated bench, a ``SIMULATED`` mark
  (:func:`mark_simulated`);
* the PDF is A4 portrait (595 x 842 pt), vector, with TrueType fonts embedded (matplotlib
  ``pdf.fonttype 42``, set in a context by :func:`report_style`, never globally; no Type 3
  fonts): page 1 the procedure's figure (``figures/<procedure>.py`` ``draw``), then the
  key figures, the parameters, and a bench and calibration summary (bench file and
  calibration files with their sha256, instruments and their identities);
* a PNG is the first page alone.

What the pages say about the run comes from the file alone (:func:`read_report_info`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from perovlab_daq.procedures.parameter_names import canonical_name
from perovlab_daq.procedures.registry import PROCEDURES
from perovlab_daq.storage import layout

log = logging.getLogger(__name__)

#: A4 portrait in inches (210 x 297 mm = 595 x 842 pt).
A4_INCHES = (210 / 25.4, 297 / 25.4)
#: Matplotlib settings of every report: TrueType (Type 42) fonts in PDF and PS, one family.
REPORT_RC: dict[str, Any] = {
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "font.family": "DejaVu Sans",
    "mathtext.fontset": "dejavusans",
    "axes.titlesize": "medium",
    "legend.fontsize": "small",
}
#: Table rows per A4 page.
ROWS_PER_PAGE = 42
MARK = layout.SIMULATED_MARK


@dataclass
class ReportInfo:
    """What a report says about a run, read from its file."""

    path: Path
    procedure: str
    procedure_title: str = ""
    title: str = ""
    status: str = ""
    start_time: str = ""
    simulated: bool = False
    sample: dict[str, str] = field(default_factory=dict)
    parameters: list[tuple[str, Any, str]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    instruments: list[tuple[str, str, str]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def date(self) -> str:
        """Return the start date and time as ``YYYY-MM-DD HH:MM`` (the file's local time)."""
        text = self.start_time or ""
        return text[:16].replace("T", " ") if len(text) >= 16 else text


def _text(value: Any) -> str:
    value = layout.read_value(value) if isinstance(value, h5py.Dataset) else value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    return "" if value is None else str(value)


def read_report_info(path: str | Path, procedure: str) -> ReportInfo:
    """Read the identifiers, parameters and provenance a report shows from a run file."""
    cls = PROCEDURES.get(procedure)
    title = str(getattr(cls, "TITLE", "") or procedure)
    info = ReportInfo(Path(path), procedure, procedure_title=title.split(" (")[0])
    with h5py.File(path, "r", locking=False) as file:
        entry = file["entry"]
        info.title = _text(entry.get("title")) or _text(entry.attrs.get("title"))
        info.status = _text(entry.attrs.get("status"))
        info.start_time = _text(entry.get("start_time")) or _text(entry.attrs.get("start_time"))
        info.simulated = layout.file_is_simulated(file)
        if "sample" in entry:
            info.sample = {k: _text(v) for k, v in layout.read_mapping(entry["sample"]).items()}
        for key, dataset in (entry.get("parameters") or {}).items():
            if isinstance(dataset, h5py.Dataset):
                units = _text(dataset.attrs.get("units", ""))
                info.parameters.append((canonical_name(key), layout.read_value(dataset), units))
        if "provenance" in entry:
            info.provenance = layout.read_mapping(entry["provenance"])
        for role, group in (entry.get("instrument") or {}).items():
            if isinstance(group, h5py.Group):
                driver = _text(group.get("driver"))
                info.instruments.append((role, driver, _text(group.get("identity"))))
        if "metadata" in entry:
            info.metadata = {k: _text(v) for k, v in entry["metadata"].attrs.items()}
    return info


def report_title(info: ReportInfo) -> str:
    """Return the title line: sample, pixel, procedure and date (what is there)."""
    parts = []
    sample = info.sample.get("sample") or info.sample.get("name") or "no sample given"
    parts.append(f"sample {sample}")
    if info.sample.get("device"):
        parts.append(f"device {info.sample['device']}")
    if info.sample.get("pixel"):
        parts.append(f"pixel {info.sample['pixel']}")
    parts.append(f"{info.procedure_title} ({info.procedure})")
    if info.date:
        parts.append(info.date)
    return " | ".join(parts)


def fitted_font_size(
    text: str, width_in: float, size: float, minimum: float = 6.0, weight: str = "bold"
) -> float:
    """Return the font size (pt, at most ``size``) at which ``text`` fits ``width_in``.

    A title with a long procedure name or long identifiers would otherwise run off the
    page's edge (the date, last on the line, was lost). Below ``minimum`` it is not shrunk
    further.
    """
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer = RendererAgg(1, 1, 72)  # 72 dpi: widths in points
    font = FontProperties(size=size, weight=weight)
    width_pt = max(
        renderer.get_text_width_height_descent(line, font, ismath=False)[0]
        for line in text.splitlines() or [""]
    )
    if width_pt <= width_in * 72:
        return size
    return max(minimum, size * width_in * 72 / width_pt)


def fitted_title(
    text: str, width_in: float, size: float, readable: float = 8.0, weight: str = "bold"
) -> tuple[str, float]:
    """Return ``text`` and a font size that fit ``width_in``, on two lines if need be.

    One line, shrunk from ``size``; if that would be smaller than ``readable`` (very long
    identifiers: up to 64 characters each), two lines broken at the `` | `` nearest the
    middle.
    """
    one = fitted_font_size(text, width_in, size, minimum=0.0, weight=weight)
    parts = text.split(" | ")
    if one >= readable or len(parts) < 2:
        return text, max(one, 6.0)
    middle = min(
        range(1, len(parts)),
        key=lambda k: abs(len(" | ".join(parts[:k])) - len(" | ".join(parts[k:]))),
    )
    two = " | ".join(parts[:middle]) + " |\n" + " | ".join(parts[middle:])
    return two, fitted_font_size(two, width_in, size, weight=weight)


def report_subtitle(info: ReportInfo) -> str:
    """Return the second line: file, status, operator, bench."""
    parts = [info.path.name, f"status {info.status or 'unknown'}"]
    if info.sample.get("operator"):
        parts.append(f"operator {info.sample['operator']}")
    bench = info.metadata.get("bench") or info.provenance.get("station") or ""
    if bench:
        parts.append(f"bench {bench}")
    return " | ".join(parts)


def mark_simulated(figure: Any) -> None:
    """Mark a figure (or subfigure) as simulated: a red label and a faint diagonal watermark."""
    figure.text(
        0.99,
        0.995,
        f"{MARK}: not a measurement",
        ha="right",
        va="top",
        color="white",
        fontsize=10,
        fontweight="bold",
        bbox={"facecolor": "#c0392b", "edgecolor": "none", "pad": 3},
        zorder=10,
    )
    figure.text(
        0.5,
        0.45,
        MARK,
        ha="center",
        va="center",
        rotation=35,
        fontsize=80,
        color="#c0392b",
        alpha=0.10,
        fontweight="bold",
        zorder=0,
    )


def finish_axes(figure: Any) -> None:
    """Give every plot with labelled lines a legend (twin axes share one)."""
    for axis in figure.get_axes():
        if axis.get_legend() is not None:
            continue
        handles, labels = axis.get_legend_handles_labels()
        twins = [
            other
            for other in figure.get_axes()
            if other is not axis and other.bbox.bounds == axis.bbox.bounds
        ]
        if twins and any(t.get_legend() is not None for t in twins):
            continue
        for twin in twins:
            more_handles, more_labels = twin.get_legend_handles_labels()
            handles, labels = handles + more_handles, labels + more_labels
        shown = [(h, lab) for h, lab in zip(handles, labels, strict=True) if lab]
        if shown:
            axis.legend(*zip(*shown, strict=True), fontsize="small")


@contextlib.contextmanager
def report_style() -> Iterator[None]:
    """Matplotlib settings of a report (TrueType fonts), only inside the ``with`` block."""
    import matplotlib

    with matplotlib.rc_context(REPORT_RC):
        yield


def draw_run_page(module: Any, run: Any, info: ReportInfo, figure: Any) -> None:
    """Draw the title block and the procedure's figure on ``figure`` (a page or a picture)."""
    head, body = figure.subfigures(2, 1, height_ratios=[1, 11])
    title, size = fitted_title(report_title(info), 0.97 * figure.get_figwidth(), 12)
    head.text(0.01, 0.62, title, fontsize=size, fontweight="bold", va="center")
    subtitle = report_subtitle(info)
    small = fitted_font_size(subtitle, 0.97 * figure.get_figwidth(), 8, weight="normal")
    head.text(0.01, 0.18, subtitle, fontsize=small, color="0.3", va="center")
    module.draw(run, body)
    finish_axes(body)
    if info.simulated:
        mark_simulated(figure)


def _table_pages(
    pdf: Any,
    info: ReportInfo,
    heading: str,
    columns: Sequence[str],
    rows: list[list[str]],
    widths: Sequence[float],
) -> None:
    """Add one or more A4 pages holding a table (``ROWS_PER_PAGE`` rows each).

    ``widths`` are the columns' shares of the page width (summing to 1 at most).
    """
    from matplotlib.figure import Figure

    chunks = [rows[i : i + ROWS_PER_PAGE] for i in range(0, len(rows), ROWS_PER_PAGE)] or [[]]
    for number, chunk in enumerate(chunks):
        figure = Figure(figsize=A4_INCHES)
        title, size = fitted_title(report_title(info), 0.92 * figure.get_figwidth(), 10)
        # Two lines (very long identifiers) sit lower, clear of the SIMULATED label.
        top = 0.965 if "\n" not in title else 0.957
        figure.text(0.06, top, title, fontsize=size, fontweight="bold")
        more = f" (continued {number + 1}/{len(chunks)})" if len(chunks) > 1 else ""
        figure.text(0.06, 0.94, heading + more, fontsize=12)
        axis = figure.add_axes((0.06, 0.05, 0.88, 0.87))
        axis.axis("off")
        if chunk:
            table = axis.table(
                cellText=chunk,
                colLabels=list(columns),
                colWidths=list(widths),
                loc="upper left",
                cellLoc="left",
            )
            table.auto_set_font_size(False)
            table.set_fontsize(7.5)
            for (row, _col), cell in table.get_celld().items():
                cell.set_height(1.0 / (ROWS_PER_PAGE + 2))
                if row == 0:
                    cell.set_text_props(fontweight="bold")
        else:
            axis.text(0, 1, "(none recorded)", va="top")
        if info.simulated:
            mark_simulated(figure)
        pdf.savefig(figure)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.5g}"
    if isinstance(value, np.ndarray):
        return ", ".join(_format(v) for v in value.ravel()[:8])
    if isinstance(value, Mapping) and "value" in value:
        return f"{_format(value['value'])} {value.get('units', '')}".strip()
    text = str(value)
    return text if len(text) <= 70 else text[:67] + "..."


def _summary_rows(info: ReportInfo) -> list[list[str]]:
    """Rows of the bench and calibration page: what, name, sha256 or identity."""
    prov = info.provenance
    rows = [["simulated", "yes: simulated bench, no instrument" if info.simulated else "no", ""]]
    for key in ("station", "host", "package_version", "git_describe"):
        if prov.get(key):
            rows.append([key, _format(prov[key]), ""])
    for key in ("bench", "preset", "sim_preset", "ageing_acceleration", "sim_seed"):
        if info.metadata.get(key):
            rows.append([key, _format(info.metadata[key]), ""])
    bench = prov.get("bench_file") or {}
    if bench:
        rows.append(["bench file", _short(bench.get("file_name")), _sha(bench.get("sha256"))])
    for key, record in (prov.get("calibration_files") or {}).items():
        record = record if isinstance(record, Mapping) else {}
        rows.append(
            [f"calibration: {key}", _short(record.get("file_name")), _sha(record.get("sha256"))]
        )
    for role, driver, identity in info.instruments:
        rows.append([f"instrument: {role}", driver, _text(identity)[:40]])
    return rows


def _short(value: Any, size: int = 40) -> str:
    """Return a value as text of at most ``size`` characters (the end of a long path)."""
    text = _text(value)
    return text if len(text) <= size else "..." + text[-(size - 3) :]


def _sha(value: Any) -> str:
    text = _text(value)
    return text[:24] + "..." if len(text) > 24 else text


def write_report(
    path: str | Path, output: str | Path, procedure: str, module: Any, run: Any
) -> Path:
    """Write the report of a loaded run to ``output`` (.png: page 1; .pdf: all pages).

    Parameters
    ----------
    path
        The run file (for the identifiers, parameters and provenance).
    output
        The picture or PDF to write.
    procedure
        The run's procedure name (``entry/procedure``).
    module
        The procedure's figures module (``key_figures``, ``draw``).
    run
        The loaded run.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    out = Path(output)
    info = read_report_info(path, procedure)
    with report_style():
        if out.suffix.lower() == ".png":
            figure = Figure(figsize=(11, 8.5), layout="constrained")
            draw_run_page(module, run, info, figure)
            figure.savefig(out, dpi=110)
            return out
        figures = module.key_figures(run)
        with PdfPages(out, metadata=_pdf_metadata(info)) as pdf:
            figure = Figure(figsize=A4_INCHES, layout="constrained")
            draw_run_page(module, run, info, figure)
            pdf.savefig(figure)
            _table_pages(
                pdf,
                info,
                "Key figures (computed from the file; units in the names)",
                ("key figure", "value"),
                [[key, _format(value)] for key, value in figures.items()],
                (0.45, 0.55),
            )
            _table_pages(
                pdf,
                info,
                "Parameters (docs/parameters.md)",
                ("parameter", "value", "unit"),
                [[name, _format(value), units] for name, value, units in info.parameters],
                (0.35, 0.45, 0.2),
            )
            _table_pages(
                pdf,
                info,
                "Bench and calibration",
                ("item", "file or value", "sha256 (first 24 digits) / identity"),
                _summary_rows(info),
                (0.3, 0.36, 0.34),
            )
    return out


def _pdf_metadata(info: ReportInfo) -> dict[str, str]:
    title = report_title(info)
    return {
        "Title": f"{MARK}: {title}" if info.simulated else title,
        "Subject": info.path.name,
        "Creator": "perovlab-daq report",
    }
