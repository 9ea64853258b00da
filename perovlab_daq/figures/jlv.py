"""Key figures and report of a J-L-V run (procedure ``jlv``), recomputed from its file.

Luminance, EQE, current efficiency and luminous efficacy are recomputed from the stored
raw columns (``photocurrent``, ``current``, ``voltage``), the stored EL spectrum and the
stored set-up (docs/procedures/jlv.md, Analysis), never taken from the provisional live
columns, so a file written by another program is analysed the same way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perovlab_daq.analysis.windows import spectrum_snr
from perovlab_daq.calibration import load_calibration_csv
from perovlab_daq.figures import _run
from perovlab_daq.figures._run import AnalysisInputError
from perovlab_daq.procedures.jlv import (
    MIN_POINT_SPECTRUM_SNR,
    RESPONSIVITY_STREAM,
    SPECTRA_STREAM,
    PhotometricFactors,
    nominal_el_spectrum,
)

log = logging.getLogger(__name__)

#: Luminance at which the LED counts as switched on (REFERENCE section 3).
TURN_ON_THRESHOLD_CD_M2 = 1.0
#: Current density at which the roll-off EQE is reported ([P2]: ~13 % at 100 mA/cm^2).
EQE_REFERENCE_MA_CM2 = 100.0


@dataclass
class JlvAnalysis:
    """A J-L-V run recomputed from its raw columns, EL spectrum and set-up.

    Attributes
    ----------
    rows : pandas.DataFrame
        The usable rows (finite voltage, current, photocurrent) with recomputed
        ``current_density`` (mA/cm^2), ``luminance`` (cd/m^2), ``eqe`` (%),
        ``current_efficiency`` (cd/A), ``luminous_efficacy`` (lm/W) (efficiencies NaN
        where undefined: no forward current or below turn-on), ``cie_x``/``cie_y`` of
        the spectrum used (NaN with a single spectrum), ``el_spectrum`` (``own``,
        ``interpolated``, ``single`` or ``nominal``), and ``sweep_index`` and
        ``direction`` (one forward sweep assumed when the file has neither).
    wavelength_nm, spectrum : numpy.ndarray
        The EL spectrum used (relative spectral power).
    spectrum_source : str
        ``"measured"`` or ``"nominal"`` (of the spectrum the key figures describe).
    point_spectra : int
        Spectra taken at lit points and used per row (0: one spectrum for every row).
    spectrum_bias_v : float
        Bias of the measured spectrum (NaN for nominal or unknown).
    spectrum_units : str
        Units of the stored spectrum (``W/nm`` when calibrated).
    extra_spectra : list of tuple
        Every stored EL spectrum as (bias V, wavelength, intensity, kind), for the report;
        kind is ``point`` (a lit point's spectrum used for its row), ``point-unused``
        (too noisy or saturated) or ``extra`` (taken after the sweep).
    area_cm2, pd_radius_mm, pd_distance_mm : float
        Set-up used.
    """

    rows: Any
    wavelength_nm: np.ndarray
    spectrum: np.ndarray
    spectrum_source: str
    point_spectra: int
    spectrum_bias_v: float
    spectrum_units: str
    extra_spectra: list[tuple[float, np.ndarray, np.ndarray, str]]
    area_cm2: float
    pd_radius_mm: float
    pd_distance_mm: float

    def sweeps(self) -> list[tuple[int, int, Any]]:
        """Return (sweep index, direction, rows) of every sweep, in order."""
        out = []
        for index, group in self.rows.groupby("sweep_index", sort=True):
            direction = int(np.sign(np.nanmedian(group["direction"].to_numpy())) or 1)
            out.append((int(index), direction, group))
        return out

    def main_sweep(self) -> tuple[int, int, Any]:
        """Return the sweep the key figures describe: the first forward one, else the first."""
        sweeps = self.sweeps()
        return next((s for s in sweeps if s[1] > 0), sweeps[0])


def _positive_number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _setup_value(
    parameters: Mapping[str, Any], metadata: Mapping[str, Any], parameter: str, setup_key: str
) -> float:
    """Resolve a set-up constant: value used by the run, parameter > 0, bench set-up."""
    for value in (
        metadata.get(f"resolved_{setup_key}"),
        parameters.get(parameter),
        metadata.get(f"setup_{setup_key}"),
    ):
        number = _positive_number(value)
        if number is not None:
            return number
    raise AnalysisInputError(
        f"missing {setup_key.replace('_', ' ')}: need parameter {parameter!r} > 0 or "
        f"metadata 'setup_{setup_key}'"
    )


def _responsivity(run: Any, metadata: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    frames = _run.frames_or_none(run, RESPONSIVITY_STREAM)
    if frames is not None:
        return np.asarray(frames.wavelength, float), np.asarray(frames.intensity[0], float)
    for key in ("responsivity_file", "setup_responsivity_file"):
        path = metadata.get(key)
        if isinstance(path, str) and path and Path(path).is_file():
            return load_calibration_csv(path)
    raise AnalysisInputError(
        "missing photodiode responsivity: no 'responsivity' frame stream and no readable "
        "'responsivity_file' / 'setup_responsivity_file' in the metadata"
    )


def _choose_spectrum(frames: Any, bright_voltage: float) -> tuple[int, float]:
    """Return (row, bias) of the EL spectrum for luminance/EQE among a stream's frames."""
    context = frames.context
    count = len(frames)
    usable = np.array([np.isfinite(frames.intensity[i]).sum() >= 3 for i in range(count)])
    if "saturated" in context:
        unsaturated = usable & (np.nan_to_num(context["saturated"].to_numpy()) == 0)
        if unsaturated.any():
            usable = unsaturated
    if not usable.any():
        return -1, math.nan
    bias = np.full(count, math.nan)
    for name in ("bias", "voltage"):
        if name in context:
            bias = context[name].to_numpy(dtype=float)
            break
    if "eqe_spectrum" in context:
        flagged = usable & (np.nan_to_num(context["eqe_spectrum"].to_numpy()) == 1)
        if flagged.any():
            index = int(np.flatnonzero(flagged)[0])
            return index, float(bias[index])
    candidates = np.flatnonzero(usable)
    if np.isfinite(bias[candidates]).any() and math.isfinite(bright_voltage):
        distance = np.where(np.isfinite(bias), np.abs(bias - bright_voltage), np.inf)
        index = int(candidates[np.argmin(distance[candidates])])
    else:
        index = int(candidates[0])
    return index, float(bias[index])


@dataclass
class PointSpectra:
    """The EL spectra taken at the lit points of a sweep, each indexed to its row.

    Attributes
    ----------
    frame : numpy.ndarray
        Frame (row of the ``spectra`` stream) of each usable point spectrum.
    row_index : numpy.ndarray
        Data row (0-based, emission order) each spectrum belongs to.
    bias_v : numpy.ndarray
        Measured device voltage (V) at each spectrum.
    luminance_per_a, eqe_pct_per_ratio, cie_x, cie_y : numpy.ndarray
        Photometric factors (:class:`PhotometricFactors`) and chromaticity of each.
    brightest_position : int
        Position (in these arrays) of the spectrum with the highest photocurrent.
    """

    frame: np.ndarray
    row_index: np.ndarray
    bias_v: np.ndarray
    luminance_per_a: np.ndarray
    eqe_pct_per_ratio: np.ndarray
    cie_x: np.ndarray
    cie_y: np.ndarray
    brightest_position: int

    @property
    def brightest(self) -> int:
        """Frame of the brightest point's spectrum."""
        return int(self.frame[self.brightest_position])

    @classmethod
    def from_frames(
        cls, frames: Any, setup: tuple[Any, float, float, float]
    ) -> PointSpectra | None:
        """Collect the usable point spectra (``row_index`` in their context), else None.

        Saturated frames, spectra whose peak is below :data:`MIN_POINT_SPECTRUM_SNR`
        times their noise sigma and spectra without positive weight are skipped; their
        rows are interpolated from the neighbouring ones.
        """
        from perovlab_daq.analysis import cie_xy

        if frames is None or "row_index" not in frames.context:
            return None
        context = frames.context
        row_index = context["row_index"].to_numpy(dtype=float)
        saturated = (
            np.nan_to_num(context["saturated"].to_numpy(dtype=float))
            if "saturated" in context
            else np.zeros(len(frames))
        )
        photocurrent = (
            context["photocurrent"].to_numpy(dtype=float)
            if "photocurrent" in context
            else np.zeros(len(frames))
        )
        grid = np.asarray(frames.wavelength, dtype=float)
        found: list[tuple[float, ...]] = []
        for i in np.flatnonzero(np.isfinite(row_index) & (saturated == 0)):
            spectrum = np.asarray(frames.intensity[i], dtype=float)
            keep = np.isfinite(spectrum)
            if not spectrum_snr(spectrum[keep]) >= MIN_POINT_SPECTRUM_SNR:
                continue
            try:
                factors = PhotometricFactors.compute(grid[keep], spectrum[keep], *setup)
                x, y = cie_xy(grid[keep], spectrum[keep])
            except ValueError:
                continue
            bias = float(context["voltage"].iloc[i]) if "voltage" in context else math.nan
            found.append(
                (i, row_index[i], bias, factors.luminance_per_a, factors.eqe_pct_per_ratio)
                + (x, y, photocurrent[i])
            )
        if not found:
            return None
        table = np.array(found, dtype=float)
        return cls(
            frame=table[:, 0].astype(int),
            row_index=table[:, 1].astype(int),
            bias_v=table[:, 2],
            luminance_per_a=table[:, 3],
            eqe_pct_per_ratio=table[:, 4],
            cie_x=table[:, 5],
            cie_y=table[:, 6],
            brightest_position=int(np.nanargmax(np.nan_to_num(table[:, 7], nan=-np.inf))),
        )

    def at_rows(self, row_index: np.ndarray, voltage_v: np.ndarray) -> tuple[np.ndarray, ...]:
        """Return (luminance per A, EQE per ratio, CIE x, CIE y, kind) for data rows.

        A row with its own spectrum uses it (kind ``own``); any other row (below the
        detection threshold, or its spectrum failed) interpolates linearly in voltage
        between the measured spectra, the nearest one outside them (kind ``interpolated``).
        """
        from perovlab_daq.analysis.efficiency import interpolate_in_bias

        position = {int(r): k for k, r in enumerate(self.row_index)}
        own = np.array([int(r) in position for r in row_index], dtype=bool)
        out = []
        for values in (self.luminance_per_a, self.eqe_pct_per_ratio, self.cie_x, self.cie_y):
            column = interpolate_in_bias(voltage_v, self.bias_v, values)
            column[own] = [values[position[int(r)]] for r in row_index[own]]
            out.append(column)
        out.append(np.where(own, "own", "interpolated").astype(object))
        return tuple(out)


def recompute_jlv(run: Any) -> JlvAnalysis:
    """Recompute a J-L-V run from what its file holds (docs/procedures/jlv.md, Analysis).

    Needs the columns ``voltage`` (V), ``current`` (A) and ``photocurrent`` (A,
    dark-subtracted); optional ``sweep_index``, ``direction`` (+1/-1) and ``time``. The
    set-up comes from the metadata/parameters, the photodiode responsivity from the
    ``responsivity`` frame stream (or the calibration file named in the metadata), and
    the EL spectrum from the ``spectra`` stream (the frame flagged ``eqe_spectrum``, else
    the one nearest the brightest point), else the nominal band of the parameters
    ``el_peak``/``el_fwhm``.

    Raises
    ------
    AnalysisInputError
        Naming what is missing.
    """
    data = run.data
    if data is None or len(data) == 0:
        raise AnalysisInputError("no data rows: the run recorded no J-L-V point")
    voltage = _run.column(data, "voltage", "measured device voltage, V")
    current = _run.column(data, "current", "device current, A")
    photocurrent = _run.column(data, "photocurrent", "dark-subtracted photodiode current, A")
    count = len(voltage)
    sweep_index = (
        data["sweep_index"].to_numpy(dtype=float) if "sweep_index" in data else np.zeros(count)
    )
    direction = data["direction"].to_numpy(dtype=float) if "direction" in data else np.ones(count)
    times = data["time"].to_numpy(dtype=float) if "time" in data else np.full(count, math.nan)

    parameters = _run.stored_parameters(run)
    metadata = _run.metadata(run)
    area = _setup_value(parameters, metadata, "device_area", "device_area_cm2")
    radius = _setup_value(parameters, metadata, "pd_radius", "photodiode_radius_mm")
    distance = _setup_value(parameters, metadata, "pd_distance", "photodiode_distance_mm")
    responsivity = _responsivity(run, metadata)

    good = np.isfinite(voltage) & np.isfinite(current) & np.isfinite(photocurrent)
    if not good.any():
        raise AnalysisInputError("no row with finite voltage, current and photocurrent")
    bright = float(voltage[good][np.argmax(photocurrent[good])])

    extra: list[tuple[float, np.ndarray, np.ndarray, str]] = []
    frames = _run.frames_or_none(run, SPECTRA_STREAM)
    index = -1
    if frames is not None:
        index, bias = _choose_spectrum(frames, bright)
        bias_column = next((c for c in ("bias", "voltage") if c in frames.context), None)
        at_point = (
            np.isfinite(frames.context["row_index"].to_numpy(dtype=float))
            if "row_index" in frames.context
            else np.zeros(len(frames), dtype=bool)
        )
    photometry = PointSpectra.from_frames(frames, (responsivity, area, radius, distance))
    if frames is not None:
        used = set() if photometry is None else {int(f) for f in photometry.frame}
        for i in range(len(frames)):
            value = float(frames.context[bias_column].iloc[i]) if bias_column else math.nan
            kind = ("point" if i in used else "point-unused") if at_point[i] else "extra"
            extra.append((value, np.asarray(frames.wavelength, float), frames.intensity[i], kind))
    if photometry is not None:
        # One spectrum per lit point: the report's spectrum is the brightest point's.
        index, bias = photometry.brightest, photometry.bias_v[photometry.brightest_position]
    if index >= 0:
        grid = np.asarray(frames.wavelength, dtype=float)
        spectrum = np.asarray(frames.intensity[index], dtype=float)
        keep = np.isfinite(spectrum)
        grid, spectrum = grid[keep], spectrum[keep]
        source, units = "measured", str(getattr(frames, "units", {}).get("intensity", ""))
    else:
        peak = _positive_number(parameters.get("el_peak"))
        fwhm = _positive_number(parameters.get("el_fwhm"))
        if peak is None or fwhm is None:
            raise AnalysisInputError(
                "missing EL spectrum: no usable frame in the 'spectra' stream and no "
                "parameters 'el_peak'/'el_fwhm' for a nominal band"
            )
        grid, spectrum = nominal_el_spectrum(peak, fwhm)
        source, bias, units = "nominal", math.nan, "relative"
    try:
        factors = PhotometricFactors.compute(grid, spectrum, responsivity, area, radius, distance)
    except ValueError as exc:
        raise AnalysisInputError(f"EL spectrum or responsivity unusable: {exc}") from None

    import pandas as pd

    rows_index = np.flatnonzero(good)
    if photometry is not None:
        lum_per_a, eqe_per_ratio, cie_x, cie_y, kind = photometry.at_rows(rows_index, voltage[good])
    else:
        count_good = len(rows_index)
        lum_per_a = np.full(count_good, factors.luminance_per_a)
        eqe_per_ratio = np.full(count_good, factors.eqe_pct_per_ratio)
        cie_x, cie_y = np.full((2, count_good), math.nan)
        kind = np.full(count_good, "single" if source == "measured" else "nominal", dtype=object)
    density = current[good] * 1e3 / area
    # Negative luminance below turn-on is photodiode noise: kept, never clipped.
    luminance = lum_per_a * photocurrent[good]
    # Efficiencies are undefined without forward current or below turn-on: NaN.
    defined = (current[good] > 0) & (luminance >= TURN_ON_THRESHOLD_CD_M2)
    with np.errstate(divide="ignore", invalid="ignore"):
        eqe = np.where(defined, eqe_per_ratio * photocurrent[good] / current[good], np.nan)
        cd_a = np.where(defined & (density > 0), luminance / (density * 10.0), np.nan)
        lm_w = np.where(voltage[good] > 0, math.pi * cd_a / voltage[good], np.nan)
    rows = pd.DataFrame(
        {
            "time": times[good],
            "voltage": voltage[good],
            "current": current[good],
            "photocurrent": photocurrent[good],
            "current_density": density,
            "luminance": luminance,
            "eqe": eqe,
            "current_efficiency": cd_a,
            "luminous_efficacy": lm_w,
            "cie_x": cie_x,
            "cie_y": cie_y,
            "el_spectrum": kind,
            "sweep_index": np.nan_to_num(sweep_index[good]),
            "direction": np.where(np.isfinite(direction[good]), direction[good], 1.0),
        }
    )
    return JlvAnalysis(
        rows=rows,
        wavelength_nm=grid,
        spectrum=spectrum,
        spectrum_source=source,
        point_spectra=0 if photometry is None else len(photometry.frame),
        spectrum_bias_v=bias,
        spectrum_units=units,
        extra_spectra=extra,
        area_cm2=area,
        pd_radius_mm=radius,
        pd_distance_mm=distance,
    )


def _sweep_figures(rows: Any, analysis: JlvAnalysis, with_spectrum: bool) -> dict[str, float]:
    from perovlab_daq.analysis import jlv_figures

    # jlv_figures reads a sweep in rising order (turn-on is the first lit point, the
    # reference J the first crossing): present a downward sweep bottom-up.
    if len(rows) > 1 and rows["voltage"].iloc[-1] < rows["voltage"].iloc[0]:
        rows = rows.iloc[::-1]
    spectrum_args: tuple[Any, ...] = (
        (analysis.wavelength_nm, analysis.spectrum) if with_spectrum else (None, None)
    )
    return jlv_figures(
        rows["voltage"].to_numpy(),
        rows["current_density"].to_numpy(),
        rows["luminance"].to_numpy(),
        rows["eqe"].to_numpy(),  # NaN where undefined; jlv_figures skips those points
        *spectrum_args,
        turn_on_threshold_cd_m2=TURN_ON_THRESHOLD_CD_M2,
        eqe_reference_current_density_ma_cm2=EQE_REFERENCE_MA_CM2,
    )


def _sweep_rate(rows: Any) -> float:
    times = rows["time"].to_numpy()
    volts = rows["voltage"].to_numpy()
    ok = np.isfinite(times) & np.isfinite(volts)
    if ok.sum() < 2 or times[ok][-1] == times[ok][0]:
        return math.nan
    return abs(volts[ok][-1] - volts[ok][0]) / abs(times[ok][-1] - times[ok][0])


def key_figures(run: Any) -> dict[str, float | str]:
    """Return the key figures of a J-L-V run (``perovlab-daq analyze``).

    Computed from the first forward sweep (else the first sweep) of
    :func:`recompute_jlv`; the first sweep of the other direction is summarised with
    the prefix ``reverse_`` (hysteresis). Keys carry their unit (``_v``, ``_cd_m2``,
    ``_pct``, ``_ma_cm2``); NaN where a figure does not exist (e.g. never turned on).
    """
    analysis = recompute_jlv(run)
    sweep_index, direction, rows = analysis.main_sweep()
    base = _sweep_figures(rows, analysis, with_spectrum=True)
    label = "forward" if direction > 0 else "reverse"
    figures: dict[str, float | str] = {
        "turn_on_voltage_v": base["turn_on_voltage_v"],
        "turn_on_threshold_cd_m2": base["turn_on_threshold_cd_m2"],
        "max_luminance_cd_m2": base["max_luminance_cd_m2"],
        "voltage_at_max_luminance_v": base["voltage_at_max_luminance_v"],
        "peak_eqe_pct": base["max_eqe_pct"],
        "current_density_at_peak_eqe_ma_cm2": base["current_density_at_max_eqe_ma_cm2"],
        "eqe_at_100_ma_cm2_pct": base["eqe_at_reference_pct"],
        "max_current_efficiency_cd_a": base["max_current_efficiency_cd_a"],
        "max_luminous_efficacy_lm_w": base["max_luminous_efficacy_lm_w"],
        "el_peak_nm": base["el_peak_nm"],
        "el_fwhm_nm": base["el_fwhm_nm"],
        "cie_x": base["cie_x"],
        "cie_y": base["cie_y"],
        "el_spectrum_source": analysis.spectrum_source,
        "el_spectrum_mode": "each lit point" if analysis.point_spectra else "single",
        "el_point_spectra_count": float(analysis.point_spectra),
        "el_spectrum_bias_v": analysis.spectrum_bias_v,
        "analysed_sweep": f"{sweep_index} ({label})",
        "sweep_count": float(len(analysis.sweeps())),
        f"{label}_sweep_rate_v_s": _sweep_rate(rows),
        "device_area_cm2": analysis.area_cm2,
    }
    for other_index, other_direction, other_rows in analysis.sweeps():
        if other_index == sweep_index:
            continue
        prefix = "reverse" if other_direction < 0 else f"sweep{other_index}"
        if f"{prefix}_max_luminance_cd_m2" in figures:
            continue  # only the first sweep of each kind is summarised
        other = _sweep_figures(other_rows, analysis, with_spectrum=False)
        figures[f"{prefix}_turn_on_voltage_v"] = other["turn_on_voltage_v"]
        figures[f"{prefix}_max_luminance_cd_m2"] = other["max_luminance_cd_m2"]
        figures[f"{prefix}_peak_eqe_pct"] = other["max_eqe_pct"]
        figures[f"{prefix}_eqe_at_100_ma_cm2_pct"] = other["eqe_at_reference_pct"]
        figures[f"{prefix}_sweep_rate_v_s"] = _sweep_rate(other_rows)
    return figures


# --------------------------------------------------------------------------- report
def _spectral_locus_xy() -> tuple[np.ndarray, np.ndarray]:
    import colour

    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    xyz = np.asarray(cmfs.values, dtype=float)
    total = xyz.sum(axis=1)
    keep = total > 0
    return xyz[keep, 0] / total[keep], xyz[keep, 1] / total[keep]


def draw(run: Any, figure: Any) -> None:
    """Draw J-V (log), L-V, EQE-J and the EL spectrum with its CIE point on ``figure``."""
    analysis = recompute_jlv(run)
    figures = key_figures(run)
    ax_j, ax_l, ax_eqe, ax_el = figure.subplots(2, 2).ravel()
    for index, direction, rows in analysis.sweeps():
        style = "-" if direction > 0 else "--"
        label = f"sweep {index} ({'forward' if direction > 0 else 'reverse'})"
        volts = rows["voltage"].to_numpy()
        density = np.abs(rows["current_density"].to_numpy())
        ax_j.semilogy(volts, np.where(density > 0, density, np.nan), style, label=label)
        lum = rows["luminance"].to_numpy()
        # Below ~0.01 cd/m^2 the dark-subtracted photocurrent is noise: not drawn.
        ax_l.semilogy(volts, np.where(lum > 1e-2, lum, np.nan), style, label=label)
        forward_j = rows["current_density"].to_numpy()
        lit = (forward_j > 0) & (lum >= TURN_ON_THRESHOLD_CD_M2)
        ax_eqe.semilogx(forward_j[lit], rows["eqe"].to_numpy()[lit], style, label=label)
    ax_j.set(xlabel="Voltage (V)", ylabel="|J| (mA/cm$^2$)", title="J-V")
    ax_l.set(xlabel="Voltage (V)", ylabel="Luminance (cd/m$^2$)", title="L-V")
    ax_l.set_xlim(ax_j.get_xlim())
    turn_on = float(figures["turn_on_voltage_v"])
    if math.isfinite(turn_on):
        ax_l.axvline(turn_on, color="grey", lw=0.8, ls=":")
        ax_l.annotate(f"turn-on {turn_on:.2f} V", (turn_on, TURN_ON_THRESHOLD_CD_M2))
    ax_eqe.set(xlabel="J (mA/cm$^2$)", ylabel="EQE (%)", title="EQE-J")
    ax_eqe.axvline(EQE_REFERENCE_MA_CM2, color="grey", lw=0.8, ls=":")
    for axis in (ax_j, ax_l, ax_eqe):
        axis.legend(fontsize="small")
        axis.grid(True, which="both", alpha=0.3)

    peak = float(np.max(analysis.spectrum)) or 1.0
    point_label = f"{analysis.point_spectra} lit points (each normalised)"
    for bias, grid, intensity, kind in analysis.extra_spectra:
        if kind == "point":
            # One thin line per lit point, normalised: shows how the band moves with bias.
            top = float(np.nanmax(intensity))
            ax_el.plot(grid, intensity / top, color="0.6", lw=0.4, alpha=0.5, label=point_label)
            point_label = "_nolegend_"
        elif kind == "extra" and bias != analysis.spectrum_bias_v:
            ax_el.plot(grid, intensity / peak, lw=0.8, alpha=0.7, label=f"{bias:.3g} V")
    label = (
        f"{analysis.spectrum_bias_v:.3g} V "
        + ("(brightest point)" if analysis.point_spectra else "(used)")
        if analysis.spectrum_source == "measured"
        else "nominal band (no measured spectrum)"
    )
    ax_el.plot(analysis.wavelength_nm, analysis.spectrum / peak, color="k", lw=1.5, label=label)
    ax_el.set(
        xlabel="Wavelength (nm)",
        ylabel="EL (normalised)",
        title=f"EL: peak {float(figures['el_peak_nm']):.1f} nm, "
        f"FWHM {float(figures['el_fwhm_nm']):.1f} nm",
    )
    ax_el.legend(fontsize="small", loc="upper left")
    inset = ax_el.inset_axes([0.64, 0.40, 0.34, 0.56])
    locus_x, locus_y = _spectral_locus_xy()
    inset.plot(np.append(locus_x, locus_x[0]), np.append(locus_y, locus_y[0]), "k-", lw=0.6)
    inset.plot([figures["cie_x"]], [figures["cie_y"]], "o", color="crimson", ms=4)
    inset.set(xlim=(0, 0.8), ylim=(0, 0.9), xticks=[], yticks=[])
    inset.text(
        0.97,
        0.95,
        f"CIE 1931\nx = {float(figures['cie_x']):.3f}\ny = {float(figures['cie_y']):.3f}",
        transform=inset.transAxes,
        ha="right",
        va="top",
        fontsize="small",
    )
