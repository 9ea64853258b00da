"""PL procedures on the simulated bench: Table 1 of [P1], power law, photostability of [P2]."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from perovlab_daq.procedures.pl_fluence import PlFluenceProcedure
from perovlab_daq.procedures.pl_spectrum import PlSpectrumProcedure
from perovlab_daq.procedures.pl_stability import PlStabilityProcedure
from perovlab_daq.procedures.plqy import PlqyProcedure

from perovlab_daq.figures import pl_fluence as pl_fluence_figures
from perovlab_daq.figures import pl_spectrum as pl_spectrum_figures
from perovlab_daq.figures import pl_stability as pl_stability_figures
from perovlab_daq.figures import plqy as plqy_figures
from perovlab_daq.sim.presets import PRESETS

# pytest runs with --import-mode=importlib: make the helper module beside this file importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pl_helpers import laser_emitting, run_procedure, sim_bench_open  # noqa: E402

TABLE1 = {
    # preset: (PL peak nm, FWHM nm, PLQY %) of [P1] Table 1
    "nc-hexane": (653.0, 35.0, 81.9),
    "nc-methyl-acetate": (638.0, 35.0, 62.9),
    "nc-acetone": (599.0, 32.0, 32.1),
    "nc-butanol": (533.0, 34.0, 10.1),
}


@pytest.mark.parametrize("preset", sorted(TABLE1))
def test_pl_spectrum_reports_table1_peak_and_fwhm(preset: str) -> None:
    peak_nm, fwhm_nm, _plqy = TABLE1[preset]
    with sim_bench_open(preset, "pl-spectrum") as bench:
        run = run_procedure(
            PlSpectrumProcedure,
            bench,
            {"power_mode": "power density", "power_density": 60.0, "averages": 2},
        )
        assert not laser_emitting(bench)
    figures = pl_spectrum_figures.key_figures(run)
    assert figures["peak_wavelength_nm"] == pytest.approx(peak_nm, abs=2.0)
    assert figures["fwhm_nm"] == pytest.approx(fwhm_nm, abs=2.0)
    assert figures["power_density_w_cm2"] == pytest.approx(60.0, rel=0.03)
    assert figures["saturated_spectra"] == 0
    # Raw counts, the dark frame and the processed spectrum are all kept.
    assert {"spectra", "spectra_raw", "spectra_dark"} <= set(run.frame_records)
    assert run.frames("spectra").units["intensity"] == "W/nm"


@pytest.mark.parametrize("preset", sorted(TABLE1))
def test_plqy_gives_table1_within_3_points(preset: str) -> None:
    _peak, _fwhm, plqy_pct = TABLE1[preset]
    with sim_bench_open(preset, "plqy") as bench:
        run = run_procedure(PlqyProcedure, bench, {"max_integration_time": 1.0})
        assert not laser_emitting(bench)
        assert bench["sample_stage"].position == "STAGE"
    figures = plqy_figures.key_figures(run)
    assert figures["plqy_pct"] == pytest.approx(plqy_pct, abs=3.0)
    assert figures["power_density_w_cm2"] == pytest.approx(125e-6, rel=0.03)
    cycles = PlqyProcedure.repeats.default
    assert list(run.data["configuration"]) == [0, 1, 2] * cycles
    assert list(run.data["repeat"]) == [r for r in range(cycles) for _ in range(3)]
    assert figures["plqy_ci95_low_pct"] < figures["plqy_pct"] < figures["plqy_ci95_high_pct"]


@pytest.mark.parametrize(
    ("preset", "sweep_down"), [("nc-butanol", True), ("matrix-only", False), ("nc-hexane", False)]
)
def test_pl_fluence_recovers_power_law_exponent(preset: str, sweep_down: bool) -> None:
    with sim_bench_open(preset, "pl-fluence") as bench:
        run = run_procedure(
            PlFluenceProcedure,
            bench,
            {
                "power_min": 1e-5,
                "power_max": 0.1,
                "steps": 7,
                "sweep_down": sweep_down,
                "max_integration_time": 1.0,
            },
        )
        assert not laser_emitting(bench)
    figures = pl_fluence_figures.key_figures(run)
    expected = PRESETS[preset].film.power_law_exponent
    assert figures["power_law_exponent"] == pytest.approx(expected, abs=0.05)
    data = run.data
    # Below the laser's 1 mW the series went through the ND filters, metered at every step.
    assert set(data["filter_position"]) > {1}
    assert data["excitation_power"].notna().all()
    assert len(data) == (13 if sweep_down else 7)
    if sweep_down:
        assert abs(figures["hysteresis_mean_pct"]) < 5


def test_pl_fluence_pulsed_reports_fluence_per_pulse() -> None:
    with sim_bench_open("nc-hexane", "pl-fluence") as bench:
        run = run_procedure(
            PlFluenceProcedure,
            bench,
            {
                "power_min": 2e-3,
                "power_max": 0.02,
                "steps": 3,
                "excitation": "pulsed",
                "repetition_rate": 2.5e6,
                "max_integration_time": 0.5,
            },
        )
    data = run.data
    area = bench.config.setup["laser_spot_area_cm2"]
    expected = data["excitation_power"] / 2.5e6 / area
    assert data["fluence"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-9)
    figures = pl_fluence_figures.key_figures(run)
    assert figures["excitation_axis"] == "fluence"


def _stability_at_defaults(preset: str) -> Any:
    """pl-stability at its DEFAULT parameters (600 s at 600 W/cm^2, a spectrum every 10 s).

    The schedule is device time; the shipped simulated bench runs the film's clock 60x
    faster than the wall clock, so the run takes ~10 s of wall time.
    """
    with sim_bench_open(preset, "pl-stability") as bench:
        run = run_procedure(PlStabilityProcedure, bench, {})
        assert not laser_emitting(bench)
    return run


def test_pl_stability_flags_segregation_peaks_of_matrix_film() -> None:
    run = _stability_at_defaults("matrix-only")
    figures = pl_stability_figures.key_figures(run)
    peaks = [float(p) for p in str(figures["new_peaks_nm"]).split(",")]
    assert any(abs(p - 650) < 10 for p in peaks)
    assert any(abs(p - 700) < 10 for p in peaks)
    assert any(e["kind"] == "new-peaks" for e in run.events)
    assert run.data["new_peak_count"].iloc[-1] >= 2
    assert figures["centre_shift_nm"] > 5  # red-shift of the segregating matrix
    assert figures["new_peak_min_snr"] == 5.0


@pytest.fixture(scope="module")
def qd_in_matrix_stability() -> Any:
    return _stability_at_defaults("qd-in-matrix")


def test_pl_stability_qd_in_matrix_shows_no_shift(qd_in_matrix_stability: Any) -> None:
    run = qd_in_matrix_stability
    figures = pl_stability_figures.key_figures(run)
    assert figures["new_peak_count"] == 0
    assert abs(figures["max_centre_shift_nm"]) < 0.5
    assert abs(figures["fwhm_change_nm"]) < 0.5
    assert figures["final_relative_intensity"] > 0.95
    assert not any(e["kind"] == "new-peaks" for e in run.events)


def test_pl_stability_schedule_and_duration_are_device_time(qd_in_matrix_stability: Any) -> None:
    run = qd_in_matrix_stability
    figures = pl_stability_figures.key_figures(run)
    duration = PlStabilityProcedure.duration.default
    interval = PlStabilityProcedure.interval.default
    assert figures["time_clock"] == "device"
    assert figures["duration_s"] == pytest.approx(duration, abs=interval)
    data = run.data
    acceleration = 60.0  # sim_configs/bench_sim.yaml, pl-stability
    assert data["device_time"].to_numpy() == pytest.approx(
        data["time"].to_numpy() * acceleration, abs=1.0
    )
    assert data["device_time"].iloc[-1] >= duration
    # Due every 10 s of device time (0, 10, ..., 600): late spectra are taken at once.
    assert 0.8 * (duration / interval + 1) <= len(data) <= duration / interval + 1
    assert float(data["time"].iloc[-1]) < duration / acceleration + 5.0


def test_pl_stability_reports_no_new_peak_on_the_noise_of_a_bleached_film() -> None:
    """qd-only bleaches to ~0.3 % in 10 min at 600 W/cm^2: what is left is mostly noise."""
    run = _stability_at_defaults("qd-only")
    figures = pl_stability_figures.key_figures(run)
    assert figures["final_relative_intensity"] < 0.02
    assert figures["new_peak_count"] == 0
    assert figures["new_peaks_nm"] == "none"
    assert (run.data["new_peak_count"] == 0).all()
    assert not any(e["kind"] == "new-peaks" for e in run.events)


def _plqy_interval(preset: str, seed: int, repeats: int) -> tuple[dict[str, Any], float]:
    """Run plqy (defaults, ``repeats`` cycles); return its figures and the film's true PLQY."""
    with sim_bench_open(preset, "plqy", seed=seed) as bench:
        run = run_procedure(PlqyProcedure, bench, {"repeats": repeats})
        # Truth at the run's excitation (beam on the sample), read from the simulator.
        density = PlqyProcedure.power_density.default
        bench.world.set_sample_position("C")
        bench.world.set_laser_start_up(False, 0.0, 0.0)  # light at once, no CDRH delay
        bench.world.set_laser(density * PlqyProcedure.spot_area.default, True)
        truth = bench.world.film_truth()
        bench.world.set_laser(0.0, False)
    assert truth.excitation_density_w_cm2 == pytest.approx(density, rel=1e-6)
    return plqy_figures.key_figures(run), 100.0 * truth.plqy


def test_plqy_95_percent_interval_covers_the_truth_and_narrows_with_repeats() -> None:
    default = PlqyProcedure.repeats.default
    seeds = range(1, 11)
    runs = [_plqy_interval("nc-methyl-acetate", seed, default) for seed in seeds]
    covered = [f["plqy_ci95_low_pct"] <= truth <= f["plqy_ci95_high_pct"] for f, truth in runs]
    assert sum(covered) >= 0.9 * len(runs), [(f["plqy_pct"], f["plqy_u_pct"]) for f, _ in runs]
    assert all(f["plqy_dof"] == default - 1 for f, _ in runs)
    assert all(f["plqy_u_pct"] > 0 for f, _ in runs)
    width = [f["plqy_ci95_high_pct"] - f["plqy_ci95_low_pct"] for f, _ in runs[:4]]
    more = [_plqy_interval("nc-methyl-acetate", seed, 3 * default)[0] for seed in seeds[:4]]
    narrower = [f["plqy_ci95_high_pct"] - f["plqy_ci95_low_pct"] for f in more]
    assert np.mean(narrower) < 0.6 * np.mean(width)
