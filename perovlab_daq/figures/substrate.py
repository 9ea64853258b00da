"""Substrate summary: one line per pixel of a multi-pixel substrate, the champion, mean and spread.

``perovlab-daq analyze --by pixel FILES`` groups run files by the pixel they measured
(``connected_pixel`` in ``entry/metadata``, written by the procedures when they connect a
pixel), takes each file's key figures (``perovlab_daq.figures.analyze_file``), and
reports per pixel the maximum EQE, L_max, the turn-on voltage and T50 when a lifetime run
is among the files. A pixel whose data show a short (ohmic current at low bias) or an
open circuit (no current) is named as failed and left out of the champion, the mean and
the spread; so is a pixel whose figures could not be computed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perovlab_daq.figures import AnalysisInputError, analyze_file, load_run
from perovlab_daq.figures._run import close, column, metadata

log = logging.getLogger(__name__)

#: Summary figure -> (key figure in a run's figures, label with unit).
SUMMARY_FIGURES: dict[str, tuple[str, str]] = {
    "max_eqe_pct": ("peak_eqe_pct", "max EQE (%)"),
    "max_luminance_cd_m2": ("max_luminance_cd_m2", "L_max (cd/m^2)"),
    "turn_on_voltage_v": ("turn_on_voltage_v", "turn-on (V)"),
    "t50_h": ("t50_h", "T50 (h)"),
}
#: Below this resistance at <= 1 V a pixel is shorted (a working LED is far above it).
SHORT_BELOW_OHM: float = 100.0
#: A sweep that never passes this current (A) found an open circuit.
OPEN_BELOW_A: float = 1e-8


@dataclass
class PixelSummary:
    """Key figures of one pixel, or why it failed."""

    pixel: str
    channel: str = ""
    files: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    failure: str = ""


@dataclass
class SubstrateSummary:
    """Pixels, the champion and the statistics of the working pixels."""

    pixels: list[PixelSummary]
    champion: str
    mean: dict[str, float]
    spread: dict[str, float]

    @property
    def failed(self) -> dict[str, str]:
        """Return failed pixel -> reason."""
        return {p.pixel: p.failure for p in self.pixels if p.failure}

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as plain JSON-able data."""
        return {
            "pixels": {
                p.pixel: {
                    "channel": p.channel,
                    "files": p.files,
                    "failure": p.failure,
                    **p.figures,
                }
                for p in self.pixels
            },
            "champion": self.champion,
            "mean": self.mean,
            "spread": self.spread,
            "failed": self.failed,
        }


def electrical_failure(voltage_v: np.ndarray, current_a: np.ndarray) -> str:
    """Return "short", "open" or "" from a J-V sweep (voltage and current arrays).

    Short: the current at 0 < V <= 1 V is ohmic below `SHORT_BELOW_OHM`; open: the current
    never exceeds `OPEN_BELOW_A` although the sweep passed 1 V.
    """
    voltage_v = np.asarray(voltage_v, dtype=float)
    current_a = np.asarray(current_a, dtype=float)
    low = (voltage_v > 0.05) & (voltage_v <= 1.0)
    if np.any(low) and np.any(current_a[low] / voltage_v[low] > 1.0 / SHORT_BELOW_OHM):
        return "short"
    if (
        np.nanmax(np.abs(voltage_v), initial=0.0) > 1.0
        and np.nanmax(np.abs(current_a), initial=0.0) < OPEN_BELOW_A
    ):
        return "open"
    return ""


def _file_pixel(path: Path) -> tuple[str, str, str]:
    """Return (pixel, switch channel, electrical failure) read from one run file."""
    _name, run = load_run(path)
    try:
        meta = metadata(run)
        pixel = str(meta.get("connected_pixel") or "")
        channel = str(meta.get("switch_channel") or "")
        data = getattr(run, "data", None)
        failure = ""
        if data is not None:
            voltage = column(data, "voltage")
            current = column(data, "current")
            if voltage is not None and current is not None and len(voltage):
                failure = electrical_failure(voltage, current)
    finally:
        close(run)
    return pixel or "?", channel, failure


def summarise_substrate(paths: Iterable[str | Path]) -> SubstrateSummary:
    """Build the substrate summary of run files (J-L-V and, optionally, lifetime runs).

    Parameters
    ----------
    paths
        Run files; several files of one pixel are merged (later files win per figure).

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    AnalysisInputError
        If a file is not a run file of an installed procedure.
    """
    by_pixel: dict[str, PixelSummary] = {}
    for path in map(Path, paths):
        pixel, channel, failure = _file_pixel(path)
        entry = by_pixel.setdefault(pixel, PixelSummary(pixel))
        entry.channel = entry.channel or channel
        entry.files.append(str(path))
        if failure:
            entry.failure = failure
            continue
        try:
            figures = analyze_file(path, store=False)
        except AnalysisInputError as exc:
            entry.failure = entry.failure or f"no figures: {exc}"
            continue
        for name, (key, _label) in SUMMARY_FIGURES.items():
            value = figures.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                entry.figures[name] = float(value)
    pixels = sorted(by_pixel.values(), key=lambda p: (len(p.pixel), p.pixel))
    for entry in pixels:
        if (
            not entry.failure
            and "max_luminance_cd_m2" not in entry.figures
            and ("max_eqe_pct" not in entry.figures)
        ):
            entry.failure = "no light"
    return _statistics(pixels)


def _statistics(pixels: list[PixelSummary]) -> SubstrateSummary:
    working = [p for p in pixels if not p.failure]
    mean: dict[str, float] = {}
    spread: dict[str, float] = {}
    for name in SUMMARY_FIGURES:
        values = [p.figures[name] for p in working if name in p.figures]
        if values:
            mean[name] = float(np.mean(values))
            spread[name] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    ranked = [p for p in working if "max_eqe_pct" in p.figures]
    champion = max(ranked, key=lambda p: p.figures["max_eqe_pct"]).pixel if ranked else ""
    return SubstrateSummary(pixels, champion, mean, spread)


def format_summary(summary: SubstrateSummary) -> list[str]:
    """Return the summary as text lines (one per pixel, then champion, mean, spread)."""
    names = list(SUMMARY_FIGURES)
    shown = [n for n in names if any(n in p.figures for p in summary.pixels)]
    header = ["pixel", "channel", *(SUMMARY_FIGURES[n][1] for n in shown), "status"]
    lines = ["  ".join(f"{h:>14}" for h in header)]
    for p in summary.pixels:
        cells = [p.pixel, p.channel or "-"]
        cells += [f"{p.figures[n]:.4g}" if n in p.figures else "-" for n in shown]
        status = (
            f"FAILED ({p.failure})"
            if p.failure
            else ("champion" if p.pixel == summary.champion else "ok")
        )
        lines.append("  ".join(f"{c:>14}" for c in [*cells, status]))
    for label, values in (("mean", summary.mean), ("spread (sd)", summary.spread)):
        cells = [label, ""] + [f"{values[n]:.4g}" if n in values else "-" for n in shown]
        lines.append("  ".join(f"{c:>14}" for c in [*cells, ""]))
    lines.append(f"champion: {summary.champion or 'none'}")
    failed = ", ".join(f"{k} ({v})" for k, v in summary.failed.items()) or "none"
    lines.append(f"failed (not averaged): {failed}")
    return lines


def draw_substrate(summary: SubstrateSummary, figure: Any) -> None:
    """Draw one bar panel per figure: pixels on x, the mean as a named line, failed marked.

    Parameters
    ----------
    summary
        From :func:`summarise_substrate`.
    figure
        A matplotlib ``Figure`` (Agg).
    """
    shown = [n for n in SUMMARY_FIGURES if any(n in p.figures for p in summary.pixels)] or [
        "max_eqe_pct"
    ]
    labels = [p.pixel for p in summary.pixels]
    axes = figure.subplots(1, len(shown), squeeze=False)[0]
    for ax, name in zip(axes, shown, strict=True):
        values = [p.figures.get(name, 0.0) for p in summary.pixels]
        colours = [
            "lightgrey"
            if p.failure
            else ("tab:orange" if p.pixel == summary.champion else "tab:blue")
            for p in summary.pixels
        ]
        ax.bar(labels, values, color=colours, label="pixels")
        for index, p in enumerate(summary.pixels):
            if p.failure:
                ax.annotate(p.failure, (index, 0), ha="center", va="bottom", rotation=90)
        if name in summary.mean:
            ax.axhline(summary.mean[name], color="k", linestyle="--", label="mean of working")
        ax.set_xlabel("pixel")
        ax.set_ylabel(SUMMARY_FIGURES[name][1])
        ax.legend(fontsize="small")
    figure.suptitle(f"substrate: champion {summary.champion or 'none'}")
