"""Comparison figures across runs: J-V, L-V and EQE of several pixels; L/L0 of several currents.

``perovlab-daq report --compare FILES -o OUT.pdf|png`` overlays runs of one procedure:

* ``jlv`` files: J-V (log |J|), L-V, EQE-J and current efficiency-J of each file's main
  sweep (the first forward one, as the key figures), one colour per file, labelled by
  sample and pixel;
* ``lifetime`` files: L/L0 against device time (linear and log), labelled by sample,
  pixel and current density.

The curves are recomputed from each file exactly as its own report does
(:func:`perovlab_daq.figures.jlv.recompute_jlv`,
:func:`perovlab_daq.figures.lifetime.stress_series`). Files of different procedures, or
of a procedure without a comparison, raise :class:`CompareInputError` (exit 2). The page
carries the title, the dates and a ``SIMULATED`` mark when any run was simulated.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from perovlab_daq.figures import _run, jlv, lifetime, load_run, procedure_name_of
from perovlab_daq.figures._run import AnalysisInputError
from perovlab_daq.figures.report import (
    A4_INCHES,
    ReportInfo,
    finish_axes,
    mark_simulated,
    read_report_info,
    report_style,
)

log = logging.getLogger(__name__)

#: Procedures with a comparison figure.
COMPARABLE = ("jlv", "lifetime")


class CompareInputError(AnalysisInputError):
    """The files cannot be compared (mixed procedures, no comparison for the procedure)."""


def curve_label(info: ReportInfo, figures: dict[str, Any] | None = None) -> str:
    """Return a run's legend label: sample, pixel (and the drive of a lifetime run)."""
    sample = info.sample.get("sample") or info.sample.get("name") or info.path.stem
    label = f"{sample} pixel {info.sample['pixel']}" if info.sample.get("pixel") else sample
    density = (figures or {}).get("current_density_ma_cm2")
    if isinstance(density, int | float) and math.isfinite(density):
        label += f", {density:.3g} mA/cm$^2$"
    return label


def check_comparable(names: dict[Path, str]) -> str:
    """Return the one procedure of the files; raise :class:`CompareInputError` otherwise."""
    kinds = sorted(set(names.values()))
    if len(kinds) > 1:
        listing = ", ".join(f"{path.name}: {name}" for path, name in names.items())
        raise CompareInputError(
            f"--compare overlays runs of one procedure; these files hold {', '.join(kinds)} "
            f"({listing})"
        )
    if kinds[0] not in COMPARABLE:
        raise CompareInputError(
            f"--compare draws {' and '.join(COMPARABLE)} runs; {kinds[0]!r} has no comparison"
        )
    return kinds[0]


def _draw_jlv(runs: Sequence[tuple[ReportInfo, Any]], figure: Any) -> None:
    ax_j, ax_l, ax_eqe, ax_ce = figure.subplots(2, 2).ravel()
    for colour, (info, run) in enumerate(runs):
        _index, _direction, rows = jlv.recompute_jlv(run).main_sweep()
        label, style = curve_label(info), {"color": f"C{colour % 10}", "label": curve_label(info)}
        volts = rows["voltage"].to_numpy()
        density = np.abs(rows["current_density"].to_numpy())
        lum = rows["luminance"].to_numpy()
        ax_j.semilogy(volts, np.where(density > 0, density, np.nan), **style)
        ax_l.semilogy(volts, np.where(lum > 1e-2, lum, np.nan), **style)
        forward = rows["current_density"].to_numpy()
        lit = (forward > 0) & (lum >= jlv.TURN_ON_THRESHOLD_CD_M2)
        ax_eqe.semilogx(forward[lit], rows["eqe"].to_numpy()[lit], **style)
        ax_ce.semilogx(forward[lit], rows["current_efficiency"].to_numpy()[lit], **style)
        log.debug("compare: %s drawn", label)
    ax_j.set(xlabel="voltage (V)", ylabel="|J| (mA/cm$^2$)", title="J-V")
    ax_l.set(xlabel="voltage (V)", ylabel="luminance (cd/m$^2$)", title="L-V")
    ax_eqe.set(xlabel="J (mA/cm$^2$)", ylabel="EQE (%)", title="EQE-J")
    ax_ce.set(xlabel="J (mA/cm$^2$)", ylabel="current efficiency (cd/A)", title="CE-J")
    for axis in (ax_j, ax_l, ax_eqe, ax_ce):
        axis.grid(True, which="both", alpha=0.3)


def _draw_lifetime(runs: Sequence[tuple[ReportInfo, Any]], figure: Any) -> None:
    ax_lin, ax_log = figure.subplots(1, 2)
    for colour, (info, run) in enumerate(runs):
        series = lifetime.stress_series(run)
        figures = lifetime.key_figures(run)
        l0 = float(figures["l0_cd_m2"])
        hours = series.device_time_s / lifetime.S_PER_H
        relative = series.luminance / l0
        style = {"color": f"C{colour % 10}", "label": curve_label(info, figures)}
        ax_lin.plot(hours, relative, ".-", ms=2, lw=0.8, **style)
        shown = hours > 0
        ax_log.semilogx(hours[shown], relative[shown], ".-", ms=2, lw=0.8, **style)
    for axis, title in ((ax_lin, "L/L0"), (ax_log, "L/L0, log time")):
        axis.axhline(0.5, color="0.7", lw=0.6, ls="--")
        axis.set(xlabel="device time (h)", ylabel="L / L0 (fraction)", title=title)
        axis.grid(True, which="both", alpha=0.3)


DRAW = {"jlv": _draw_jlv, "lifetime": _draw_lifetime}


def compare_title(procedure: str, infos: Sequence[ReportInfo]) -> str:
    """Return the comparison title: procedure, number of runs, samples and dates."""
    samples = sorted({i.sample.get("sample") or i.sample.get("name") or "?" for i in infos})
    dates = sorted(i.date[:10] for i in infos if i.date)
    when = dates[0] if dates and dates[0] == dates[-1] else " to ".join(dates[:: len(dates) - 1])
    return (
        f"{infos[0].procedure_title} ({procedure}): {len(infos)} runs | "
        f"sample {', '.join(samples)}" + (f" | {when}" if when else "")
    )


def write_comparison(paths: Sequence[str | Path], output: str | Path) -> Path:
    """Overlay the runs of ``paths`` on one page written to ``output`` (.png or A4 .pdf).

    Raises
    ------
    CompareInputError
        Fewer than two files, files of different procedures, or a procedure without a
        comparison figure.
    AnalysisInputError
        A file lacks what its curves need.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    if len(paths) < 2:
        raise CompareInputError("--compare needs two or more run files")
    names = {Path(p): procedure_name_of(p) for p in paths}
    procedure = check_comparable(names)
    out = Path(output)
    runs: list[tuple[ReportInfo, Any]] = []
    try:
        for path in names:
            _name, run = load_run(path)
            runs.append((read_report_info(path, procedure), run))
        with report_style():
            pdf = out.suffix.lower() == ".pdf"
            size = A4_INCHES if pdf else (11.0, 8.5)
            figure = Figure(figsize=size, layout="constrained")
            head, body = figure.subfigures(2, 1, height_ratios=[1, 6 if pdf else 9])
            infos = [info for info, _run in runs]
            head.text(0.01, 0.6, compare_title(procedure, infos), fontsize=12, fontweight="bold")
            head.text(
                0.01,
                0.15,
                "files: " + ", ".join(i.path.name for i in infos),
                fontsize=7,
                color="0.3",
                wrap=True,
            )
            DRAW[procedure](runs, body)
            finish_axes(body)
            simulated = [i for i in infos if i.simulated]
            if simulated:
                mark_simulated(figure)
            figure.savefig(out, dpi=110, metadata=_metadata(out, infos))
    finally:
        for _info, run in runs:
            _run.close(run)
    return out


def _metadata(out: Path, infos: Sequence[ReportInfo]) -> dict[str, str]:
    if out.suffix.lower() != ".pdf":
        return {}
    mark = "SIMULATED: " if any(i.simulated for i in infos) else ""
    return {"Title": f"{mark}comparison of {len(infos)} runs", "Creator": "perovlab-daq report"}
