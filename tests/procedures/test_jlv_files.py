"""J-L-V runs as files: runner to HDF5 to ``analyze``, and files written by other programs.

``analyze`` must work on any file that follows docs/hdf5-layout.md and holds the columns
and set-up the figures need (issue 5, item 3); a file written here with plain h5py, with
data built from the REFERENCE section 3 formulas by hand, plays "another program".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from scipy import constants

from perovlab_daq.bench import sim_bench
from perovlab_daq.figures import AnalysisInputError, analyze_file

AREA_CM2 = 0.04
RADIUS_MM = 4.0
DISTANCE_MM = 25.0
PEAK_EQE = 0.12


# --------------------------------------------------------------------------- our own runs
@pytest.fixture(scope="module")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    from perovlab_daq.runner import execute_run, plan_run

    folder = tmp_path_factory.mktemp("jlv")
    plan = plan_run(
        "jlv",
        bench_config=sim_bench("qd-in-matrix"),
        parameters={"dwell": 0, "dark_readings": 3, "direction": "both", "el_biases": "4"},
        output=folder / "run.h5",
        sample={"sample": "S1", "pixel": "1"},
    )
    outcome = execute_run(plan, log_file=False)
    if outcome.status == "aborted" and not outcome.interrupted_by:
        pytest.fail(
            "execute_run aborted a run nobody stopped: runner polls worker.join(0.1), and "
            "pymeasure's StoppableThread.join(timeout) stops the worker after the timeout"
        )
    return plan.path, outcome


def test_run_finishes_and_its_figures_meet_the_p2_targets(run_file: tuple[Path, Any]) -> None:
    path, outcome = run_file
    assert outcome.status == "finished", outcome.reason
    assert outcome.safe_state and all(v == "ok" for v in outcome.safe_state.values())
    figures = outcome.figures
    assert figures["peak_eqe_pct"] == pytest.approx(18.0, rel=0.10)
    assert figures["eqe_at_100_ma_cm2_pct"] == pytest.approx(13.0, rel=0.15)
    assert figures["max_luminance_cd_m2"] == pytest.approx(4700.0, rel=0.15)
    again = analyze_file(path, store=False)
    for key in ("peak_eqe_pct", "max_luminance_cd_m2", "cie_x", "el_peak_nm"):
        assert again[key] == pytest.approx(figures[key], rel=1e-9)


def test_the_file_records_sweeps_spectra_and_set_up(run_file: tuple[Path, Any]) -> None:
    path, _ = run_file
    with h5py.File(path, "r") as handle:
        entry = handle["entry"]
        assert entry.attrs["procedure"] == "jlv"
        data = entry["data"]
        assert data["photocurrent"].attrs["units"] == "A"
        assert data["current_density"].attrs["units"] == "mA/cm^2"
        direction = data["direction"][()]
        assert set(np.unique(direction)) == {-1.0, 1.0}
        assert set(np.unique(data["sweep_index"][()])) == {0.0, 1.0}
        for name in ("dwell", "prebias_voltage", "prebias_time", "direction"):
            assert name in entry["parameters"]
        # One spectrum per lit point (indexed to its data row), then the two after the sweep.
        row_index = entry["spectra/row_index"][()]
        after_sweep = np.isnan(row_index)
        assert after_sweep.sum() == 2
        assert list(entry["spectra/eqe_spectrum"][()][after_sweep]) == [1.0, 0.0]
        lit_rows = row_index[~after_sweep].astype(int)
        assert lit_rows.size > 20 and np.all(np.diff(lit_rows) > 0)
        assert np.all(data["photocurrent"][()][lit_rows] > 0)
        assert entry["spectra/intensity"].shape[0] == row_index.size
        assert "responsivity" in entry
        metadata = entry["metadata"]
        stored = {**dict(metadata.attrs), **{k: metadata[k][()] for k in metadata}}
        assert stored["setup_device_area_cm2"] == pytest.approx(0.09)
        assert len(_text(stored["responsivity_sha256"])) == 64
        assert _text(stored["el_spectrum_plan"]) == "measured"
        assert 0 < float(stored["dark_photocurrent_a"]) < 1e-11
        analysis = entry["analysis"]
        assert float(analysis["peak_eqe_pct"][()]) == pytest.approx(18.0, rel=0.10)


def test_analyze_stores_the_figures_in_the_file(run_file: tuple[Path, Any], tmp_path: Path) -> None:
    path, _ = run_file
    copy = tmp_path / "copy.h5"
    copy.write_bytes(path.read_bytes())
    with h5py.File(copy, "a") as handle:
        del handle["entry/analysis"]
    figures = analyze_file(copy)
    with h5py.File(copy, "r") as handle:
        assert float(handle["entry/analysis/max_luminance_cd_m2"][()]) == pytest.approx(
            figures["max_luminance_cd_m2"]
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------- another program
def _designed_device() -> dict[str, Any]:
    """A made-up LED with known EQE and luminance, computed independently of the package."""
    import colour

    grid = np.arange(380.0, 781.0, 1.0)
    spectrum = np.exp(-4 * math.log(2) * ((grid - 630.0) / 28.0) ** 2) * 2e-9  # W/nm
    responsivity_nm = np.arange(300.0, 1101.0, 10.0)
    responsivity = 0.45 * np.exp(-(((responsivity_nm - 850.0) / 400.0) ** 2))
    r_on_grid = np.interp(grid, responsivity_nm, responsivity)
    photopic = colour.SDS_LEFS["CIE 1924 Photopic Standard Observer"]
    v_lambda = np.interp(grid, photopic.wavelengths, photopic.values)
    fraction = RADIUS_MM**2 / (RADIUS_MM**2 + DISTANCE_MM**2)

    voltage = np.round(np.arange(0.0, 7.0001, 0.1), 6)
    current = 1e-9 * voltage + 2e-10 * np.expm1(voltage / 0.12) / (1 + voltage / 0.9) ** 9
    density_ma_cm2 = current * 1e3 / AREA_CM2
    shape = (density_ma_cm2 / 1.0) ** 1.5 / (1 + (density_ma_cm2 / 1.0) ** 1.5)
    eqe = PEAK_EQE * shape / (1 + (density_ma_cm2 / 150.0) ** 1.2)
    # REFERENCE section 3 solved for I_PD; 1 nm grid, so sums are integrals.
    s_r, s_lambda = np.sum(spectrum * r_on_grid), np.sum(spectrum * grid * 1e-9)
    hc_q = constants.h * constants.c / constants.e
    photocurrent = eqe * current * hc_q * fraction * s_r / s_lambda
    luminance = (683.0 * photocurrent / fraction * np.sum(spectrum * v_lambda) / s_r) / (
        math.pi * AREA_CM2 * 1e-4
    )
    return {
        "grid": grid,
        "spectrum": spectrum,
        "responsivity_nm": responsivity_nm,
        "responsivity": responsivity,
        "voltage": voltage,
        "current": current,
        "photocurrent": photocurrent,
        "eqe_pct": 100 * eqe,
        "luminance": luminance,
        "density": density_ma_cm2,
    }


def _write_foreign_file(path: Path, device: dict[str, Any], *, drop: str = "") -> None:
    """Write a run the way another program following docs/hdf5-layout.md would."""
    with h5py.File(path, "w") as handle:
        entry = handle.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["procedure"] = "jlv"
        entry.attrs["procedure_class"] = "otherlab.sweeper:LedSweep"
        entry.attrs["status"] = "finished"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        for name, units in (("voltage", "V"), ("current", "A"), ("photocurrent", "A")):
            if name != drop:
                data.create_dataset(name, data=device[name]).attrs["units"] = units
        metadata = entry.create_group("metadata")
        metadata.attrs["setup_device_area_cm2"] = AREA_CM2
        metadata.attrs["setup_photodiode_radius_mm"] = RADIUS_MM
        metadata.attrs["setup_photodiode_distance_mm"] = DISTANCE_MM
        entry.create_group("parameters")
        spectra = entry.create_group("spectra")
        spectra.attrs["NX_class"] = "NXdata"
        spectra.create_dataset("wavelength", data=device["grid"]).attrs["units"] = "nm"
        intensity = spectra.create_dataset("intensity", data=device["spectrum"][None, :])
        intensity.attrs["units"] = "W/nm"
        spectra.create_dataset("bias", data=[4.0]).attrs["units"] = "V"
        spectra.create_dataset("time", data=[10.0]).attrs["units"] = "s"
        responsivity = entry.create_group("responsivity")
        responsivity.create_dataset("wavelength", data=device["responsivity_nm"])
        responsivity.create_dataset("intensity", data=device["responsivity"][None, :])
        responsivity.create_dataset("time", data=[0.0])


def test_a_file_from_another_program_is_analysed_to_half_a_percent(tmp_path: Path) -> None:
    device = _designed_device()
    path = tmp_path / "foreign.h5"
    _write_foreign_file(path, device)
    figures = analyze_file(path, store=False)
    lit = device["luminance"] >= 1.0
    assert figures["peak_eqe_pct"] == pytest.approx(device["eqe_pct"][lit].max(), rel=0.005)
    assert figures["max_luminance_cd_m2"] == pytest.approx(device["luminance"].max(), rel=0.005)
    assert figures["turn_on_voltage_v"] == pytest.approx(device["voltage"][lit][0], abs=1e-9)
    at_100 = np.interp(math.log(100), np.log(device["density"][lit]), device["eqe_pct"][lit])
    assert figures["eqe_at_100_ma_cm2_pct"] == pytest.approx(at_100, rel=0.005)
    assert figures["el_peak_nm"] == pytest.approx(630.0, abs=0.5)
    assert figures["el_fwhm_nm"] == pytest.approx(28.0, rel=0.01)
    assert figures["el_spectrum_source"] == "measured"
    assert figures["analysed_sweep"] == "0 (forward)"


def test_a_foreign_file_without_photocurrent_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "foreign.h5"
    _write_foreign_file(path, _designed_device(), drop="photocurrent")
    with pytest.raises(AnalysisInputError, match="missing column 'photocurrent'"):
        analyze_file(path, store=False)
