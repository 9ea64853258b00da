"""Tests of the J-L-V procedure run headless against the simulated bench (issue 5).

The procedure is driven directly (startup/execute/shutdown with a fake ``emit``) and its
records are analysed through an in-memory run, so these tests need neither the runner
nor the HDF5 storage; ``test_jlv_files.py`` covers the file round trip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from perovlab_daq.procedures.base import ParameterError
from perovlab_daq.procedures.jlv import (
    JlvProcedure,
    PhotometricFactors,
    parse_bias_list,
    parse_el_bias,
    sweep_voltages,
)

from perovlab_daq.bench import Bench, sim_bench
from perovlab_daq.calibration import load_calibration_csv
from perovlab_daq.figures import AnalysisInputError
from perovlab_daq.figures.jlv import draw as draw_jlv_report
from perovlab_daq.figures.jlv import key_figures as jlv_key_figures
from perovlab_daq.figures.jlv import recompute_jlv

FAST = {"dwell": 0.0, "dark_readings": 3}


# --------------------------------------------------------------------------- helpers
@dataclass
class FrameSet:
    """Stand-in for perovlab_daq.storage.results.FrameSet built from emitted frames."""

    wavelength: np.ndarray
    intensity: np.ndarray
    context: pd.DataFrame
    units: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.intensity)


@dataclass
class MemoryRun:
    """What perovlab_daq.figures.jlv reads, assembled from the records a procedure emitted."""

    data: pd.DataFrame
    parameters: dict[str, Any]
    metadata: dict[str, Any]
    streams: dict[str, FrameSet]

    def frames(self, stream: str = "spectra") -> FrameSet:
        if stream not in self.streams:
            raise KeyError(stream)
        return self.streams[stream]


@dataclass
class Recorded:
    """Records a headless run emitted, and the procedure itself."""

    procedure: JlvProcedure
    records: list[tuple[str, Any]]
    bench: Bench

    def of(self, topic: str) -> list[Any]:
        return [record for kind, record in self.records if kind == topic]

    @property
    def rows(self) -> pd.DataFrame:
        return pd.DataFrame(self.of("results"))

    def events(self, kind: str) -> list[dict[str, str]]:
        return [e for e in self.of("event") if e["kind"] == kind]

    def as_run(self) -> MemoryRun:
        streams: dict[str, FrameSet] = {}
        for frame in self.of("frame"):
            stream = frame["stream"]
            streams.setdefault(stream, [])  # type: ignore[arg-type]
            streams[stream].append(frame)  # type: ignore[attr-defined]
        framesets = {
            name: FrameSet(
                np.asarray(items[0]["wavelength"]),  # type: ignore[index]
                np.vstack([item["intensity"] for item in items]),  # type: ignore[union-attr]
                pd.DataFrame([item["context"] for item in items]),  # type: ignore[union-attr]
            )
            for name, items in streams.items()
        }
        procedure = self.procedure
        parameters = {
            name: getattr(procedure, name) for name in JlvProcedure.parameter_objects_of_class()
        }
        metadata = dict(self.bench.metadata())
        if not all(item.evaluated for item in procedure.metadata_objects().values()):
            procedure.evaluate_metadata()  # as the worker does after startup
        metadata.update({key: item.value for key, item in procedure.metadata_objects().items()})
        return MemoryRun(self.rows, parameters, metadata, framesets)


def run_headless(
    preset: str = "qd-in-matrix",
    *,
    roles: tuple[str, ...] = ("source_meter", "photodetector", "spectrometer"),
    stop_after_rows: int | None = None,
    config: Any = None,
    keep_open: bool = False,
    **parameters: Any,
) -> Recorded:
    """Run jlv start to end on a fresh simulated bench; return what it emitted."""
    values = {**FAST, **parameters}
    JlvProcedure.checked_parameters(values)
    bench = Bench(config or sim_bench(preset), procedure="jlv", roles=list(roles)).open()
    procedure = JlvProcedure(**values)
    procedure.bench = bench
    records: list[tuple[str, Any]] = []
    procedure.emit = lambda topic, record: records.append((topic, record))

    def should_stop() -> bool:
        rows = sum(1 for kind, _ in records if kind == "results")
        return stop_after_rows is not None and rows >= stop_after_rows

    procedure.should_stop = should_stop
    try:
        procedure.startup()
        procedure.execute()
    finally:
        procedure.shutdown()
        if not keep_open:
            bench.close()
    return Recorded(procedure, records, bench)


@pytest.fixture(scope="module")
def matrix_run() -> Recorded:
    return run_headless("qd-in-matrix", direction="both", el_biases="3, 4V; 7")


@pytest.fixture(scope="module")
def matrix_figures(matrix_run: Recorded) -> dict[str, Any]:
    return jlv_key_figures(matrix_run.as_run())


# --------------------------------------------------------------------------- parameters
def test_sweep_points_use_fine_then_coarse_steps_and_end_at_stop() -> None:
    points = sweep_voltages(0.0, 8.0, 3.0, 0.05, 0.1)
    assert points[0] == 0.0 and points[-1] == 8.0
    steps = np.diff(points)
    assert np.allclose(steps[points[:-1] < 3.0], 0.05)
    assert np.allclose(steps[points[:-1] >= 3.0], 0.1)
    assert 3.0 in points
    # a stop off the coarse grid is still the last point; a changeover at stop: one step
    assert sweep_voltages(0.0, 1.05, 0.5, 0.1, 0.2)[-1] == 1.05
    assert np.allclose(np.diff(sweep_voltages(-1.0, 2.0, 2.0, 0.25, 0.5)), 0.25)


def test_bias_list_is_parsed_strictly_never_evaluated() -> None:
    assert parse_bias_list("3, 4.5V; 6 V  -1e-1") == (3.0, 4.5, 6.0, -0.1)
    assert parse_bias_list("") == ()
    assert parse_el_bias(" AUTO ") is None
    assert parse_el_bias("5.5 V") == 5.5
    for bad in ("__import__('os')", "3, four", "1e400", "nan", "2*3", "0x10"):
        with pytest.raises(ParameterError) as info:
            parse_bias_list(bad)
        assert info.value.name == "el_biases"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"start_voltage": 5.0, "stop_voltage": 2.0}, "stop_voltage"),
        ({"changeover_voltage": 9.0}, "changeover_voltage"),
        ({"changeover_voltage": -1.0}, "changeover_voltage"),
        ({"fine_step": 3.0}, "fine_step"),
        ({"coarse_step": 6.0}, "coarse_step"),
        (
            {
                "fine_step": 0.001,
                "start_voltage": -20,
                "changeover_voltage": 99,
                "stop_voltage": 100,
            },
            "fine_step",
        ),
        ({"prebias_voltage": 2.0, "prebias_time": 0.0}, "prebias_time"),
        ({"el_bias": "bright"}, "el_bias"),
        ({"el_bias": "150"}, "el_bias"),
        ({"el_biases": "3; rm -rf"}, "el_biases"),
    ],
)
def test_inconsistent_parameters_are_refused_naming_the_parameter(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(ParameterError) as info:
        JlvProcedure.checked_parameters(values)
    assert info.value.name == named


def test_runner_refuses_bad_biases_before_touching_an_instrument(tmp_path: Any) -> None:
    from perovlab_daq.runner import RunInputError, plan_run

    with pytest.raises(RunInputError, match="el_biases"):
        plan_run(
            "jlv",
            bench_config=sim_bench("qd-in-matrix"),
            parameters={"el_biases": "4, exec(1)"},
            output=tmp_path,
        )
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- the sweep
def test_rows_hold_every_column_with_dark_subtracted_photocurrent(matrix_run: Recorded) -> None:
    rows = matrix_run.rows
    assert list(rows.columns) == list(JlvProcedure.COLUMNS)
    dark = matrix_run.procedure._dark_photocurrent_a
    assert 1e-12 < dark < 5e-12  # the simulated photodiode's dark current
    assert matrix_run.events("dark")
    # below turn-on the dark-subtracted photocurrent is noise around zero
    unlit = rows[rows["voltage"] < 1.0]["photocurrent"].to_numpy()
    assert abs(unlit.mean()) < 0.2e-12
    assert np.allclose(rows["current_density"], rows["current"] * 1e3 / 0.09)


def test_forward_then_reverse_sweeps_are_stored_and_distinguishable(matrix_run: Recorded) -> None:
    rows = matrix_run.rows
    forward = rows[rows["direction"] == 1]
    reverse = rows[rows["direction"] == -1]
    assert set(forward["sweep_index"]) == {0} and set(reverse["sweep_index"]) == {1}
    assert np.all(np.diff(forward["voltage_setpoint"]) > 0)
    assert np.all(np.diff(reverse["voltage_setpoint"]) < 0)
    assert forward["voltage_setpoint"].max() == 8.0
    assert reverse["voltage_setpoint"].iloc[0] < 8.0  # not the top point twice
    assert reverse["voltage_setpoint"].iloc[-1] == 0.0
    assert np.all(np.diff(rows["time"]) > 0)
    sweeps = [e["message"] for e in matrix_run.events("sweep")]
    assert len(sweeps) == 2 and "forward" in sweeps[0] and "reverse" in sweeps[1]
    assert all("dwell" in m and "pre-bias" in m for m in sweeps)
    assert len(matrix_run.events("sweep_done")) == 2


def test_el_spectra_at_brightest_point_and_at_each_listed_bias(matrix_run: Recorded) -> None:
    spectra = [f for f in matrix_run.of("frame") if f["stream"] == "spectra"]
    # The spectra taken after the sweep; those of the lit points carry their row index.
    contexts = [f["context"] for f in spectra if math.isnan(f["context"]["row_index"])]
    assert [c["eqe_spectrum"] for c in contexts] == [1.0, 0.0, 0.0, 0.0]
    assert [c["bias"] for c in contexts[1:]] == [3.0, 4.0, 7.0]
    rows = matrix_run.rows
    brightest = rows.loc[rows["photocurrent"].idxmax(), "voltage_setpoint"]
    assert contexts[0]["bias"] == brightest
    assert all(c["calibrated"] == 1.0 and c["saturated"] == 0.0 for c in contexts)
    assert [f for f in matrix_run.of("frame") if f["stream"] == "responsivity"]


def test_qd_in_matrix_reproduces_the_published_figures(matrix_figures: dict[str, Any]) -> None:
    # [P2]: peak EQE ~18 %, ~13 % at 100 mA/cm^2, maximum luminance ~4700 cd/m^2
    assert matrix_figures["peak_eqe_pct"] == pytest.approx(18.0, rel=0.10)
    assert matrix_figures["eqe_at_100_ma_cm2_pct"] == pytest.approx(13.0, rel=0.15)
    assert matrix_figures["max_luminance_cd_m2"] == pytest.approx(4700.0, rel=0.15)
    assert matrix_figures["el_spectrum_source"] == "measured"
    assert matrix_figures["el_peak_nm"] == pytest.approx(662.0, abs=2.0)
    assert matrix_figures["el_fwhm_nm"] == pytest.approx(32.0, abs=2.0)
    assert 0.65 < matrix_figures["cie_x"] < 0.75 and 0.25 < matrix_figures["cie_y"] < 0.32
    assert 2.0 < matrix_figures["turn_on_voltage_v"] < 2.6
    assert matrix_figures["max_current_efficiency_cd_a"] > 0
    assert matrix_figures["max_luminous_efficacy_lm_w"] > 0


def test_hysteresis_figures_summarise_the_reverse_sweep(matrix_figures: dict[str, Any]) -> None:
    assert matrix_figures["sweep_count"] == 2
    assert matrix_figures["analysed_sweep"] == "0 (forward)"
    assert matrix_figures["reverse_max_luminance_cd_m2"] == pytest.approx(4700.0, rel=0.15)
    assert matrix_figures["reverse_turn_on_voltage_v"] == pytest.approx(
        matrix_figures["turn_on_voltage_v"], abs=0.2
    )
    assert matrix_figures["reverse_sweep_rate_v_s"] > 0
    assert matrix_figures["forward_sweep_rate_v_s"] > 0


def test_analysis_matches_the_simulated_truth() -> None:
    """Luminance and EQE recomputed from the file agree with the world's noise-free state."""
    world = run_headless("qd-in-matrix", stop_voltage=4.0, changeover_voltage=3.0, keep_open=True)
    try:
        figures = jlv_key_figures(world.as_run())
        smu = world.bench["source_meter"]
        smu.output_enabled = True
        smu.source_voltage = 4.0
        truth = world.bench.world.led_truth()
    finally:
        world.bench.close()
    assert figures["max_luminance_cd_m2"] == pytest.approx(truth.luminance_cd_m2, rel=0.03)


def test_qd_only_luminance_peaks_near_5_v_and_drops_beyond() -> None:
    recorded = run_headless("qd-only")
    figures = jlv_key_figures(recorded.as_run())
    assert figures["voltage_at_max_luminance_v"] == pytest.approx(5.0, abs=0.3)
    assert figures["max_luminance_cd_m2"] == pytest.approx(410.0, rel=0.15)

    rows = recompute_jlv(recorded.as_run()).rows
    at_8_v = rows[rows["voltage"] > 7.9]["luminance"].iloc[0]
    assert at_8_v < 0.7 * figures["max_luminance_cd_m2"]


# --------------------------------------------------------------------------- early stops
def test_compliance_stops_the_upward_sweep_and_the_reverse_starts_below() -> None:
    recorded = run_headless(direction="both", compliance_current=2e-3)
    rows = recorded.rows
    forward = rows[rows["direction"] == 1]
    assert forward["in_compliance"].iloc[-1] == 1.0
    assert forward["in_compliance"].iloc[:-1].eq(0).all()
    assert forward["voltage_setpoint"].iloc[-1] < 8.0
    reverse = rows[rows["direction"] == -1]
    assert reverse["voltage_setpoint"].iloc[0] < forward["voltage_setpoint"].iloc[-1]
    assert "compliance" in recorded.events("sweep_stopped")[0]["message"]


def test_luminance_limit_stops_the_upward_sweep() -> None:
    recorded = run_headless(luminance_limit=500.0, el_bias="3")
    rows = recorded.rows
    assert rows["luminance"].iloc[-1] >= 500.0
    assert rows["luminance"].iloc[:-1].lt(500.0).all()
    assert "luminance" in recorded.events("sweep_stopped")[0]["message"]


def test_photodiode_overflow_stops_the_sweep() -> None:
    recorded = run_headless(pd_range=2e-6)  # a range the bright LED overflows
    rows = recorded.rows
    assert rows["photodiode_overflow"].iloc[-1] == 1.0
    assert math.isnan(rows["photocurrent"].iloc[-1])
    assert "overflow" in recorded.events("sweep_stopped")[0]["message"]
    figures = jlv_key_figures(recorded.as_run())  # the overflowed point is left out
    assert math.isfinite(figures["max_luminance_cd_m2"])


def test_pre_bias_is_applied_and_recorded() -> None:
    recorded = run_headless(
        prebias_voltage=-2.0, prebias_time=0.2, stop_voltage=1.0, changeover_voltage=0.5
    )
    message = recorded.events("prebias")[0]["message"]
    assert "-2 V" in message and "0.2 s" in message


# --------------------------------------------------------------------------- safety
def _output_enabled(bench: Bench) -> bool:
    return bool(bench["source_meter"].output_enabled)


def test_output_is_off_after_an_abort() -> None:
    recorded = run_headless(stop_after_rows=40, keep_open=True)
    try:
        assert len(recorded.rows) == 40
        assert _output_enabled(recorded.bench) is False
    finally:
        recorded.bench.close()


def test_output_is_off_after_an_instrument_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = Bench(sim_bench("qd-in-matrix"), procedure="jlv").open()
    try:
        procedure = JlvProcedure(**FAST)
        procedure.bench = bench
        procedure.emit = lambda topic, record: None
        procedure.should_stop = lambda: False
        procedure.startup()
        reads = iter(range(1000))
        original = bench["photodetector"].read_current

        def failing_read() -> Any:
            if next(reads) > 50:
                raise RuntimeError("picoammeter on fire")
            return original()

        monkeypatch.setattr(bench["photodetector"], "read_current", failing_read)
        with pytest.raises(RuntimeError, match="on fire"):
            procedure.execute()
        assert _output_enabled(bench) is True  # the LED was lit when it failed
        procedure.shutdown()
        assert _output_enabled(bench) is False
    finally:
        bench.close()


def test_transient_faults_are_retried_and_logged() -> None:
    config = sim_bench("qd-in-matrix")
    role = config.roles["photodetector"]
    faulty = replace(role, faults={"garble_rate": 0.05, "seed": 3})
    config = replace(config, roles={**config.roles, "photodetector": faulty})
    recorded = run_headless(config=config, stop_voltage=4.0)
    assert recorded.events("retry")
    figures = jlv_key_figures(recorded.as_run())
    assert figures["peak_eqe_pct"] == pytest.approx(18.0, rel=0.10)


# --------------------------------------------------------------------------- no spectrometer
def test_without_a_spectrometer_the_nominal_band_is_used_and_said() -> None:
    recorded = run_headless(roles=("source_meter", "photodetector"), el_peak=662, el_fwhm=32)
    assert recorded.events("nominal_spectrum")
    assert not [f for f in recorded.of("frame") if f["stream"] == "spectra"]
    run = recorded.as_run()
    assert run.metadata["el_spectrum_plan"] == "nominal"
    figures = jlv_key_figures(run)
    assert figures["el_spectrum_source"] == "nominal"
    assert figures["el_peak_nm"] == pytest.approx(662.0, abs=1.0)
    assert figures["peak_eqe_pct"] == pytest.approx(18.0, rel=0.10)


def test_a_failed_el_spectrum_keeps_the_sweep_and_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from perovlab_daq.procedures import _spectrum

    def saturated(*args: Any, **kwargs: Any) -> Any:
        raise _spectrum.SpectrumAcquisitionError("saturates even at its shortest time")

    monkeypatch.setattr(_spectrum.SpectrumAcquirer, "acquire", saturated)
    recorded = run_headless(el_biases="4")
    after_sweep = [e for e in recorded.events("el_spectrum") if e["level"] != "warning"]
    assert len(after_sweep) == 3  # brightest point + 2 failures
    assert "saturates" in after_sweep[-1]["message"]
    lit_points = [e for e in recorded.events("el_spectrum") if e["level"] == "warning"]
    assert lit_points and all("saturates" in e["message"] for e in lit_points)
    figures = jlv_key_figures(recorded.as_run())
    assert figures["el_spectrum_source"] == "nominal"
    assert figures["peak_eqe_pct"] == pytest.approx(18.0, rel=0.10)


# --------------------------------------------------------------------------- analysis input
def _gaussian(grid: np.ndarray, peak: float, fwhm: float) -> np.ndarray:
    return np.exp(-4.0 * math.log(2.0) * ((grid - peak) / fwhm) ** 2)


def test_photometric_factors_agree_with_an_independent_calculation() -> None:
    """Luminance and EQE per ampere against a hand-written REFERENCE section 3 integral."""
    import colour
    from scipy import constants

    grid = np.arange(380.0, 781.0, 1.0)
    responsivity_nm = np.arange(300.0, 1101.0, 5.0)
    responsivity = 0.2 + 0.3 * (responsivity_nm - 300.0) / 800.0
    area_cm2, radius_mm, distance_mm = 0.09, 5.0, 20.0
    photopic = colour.SDS_LEFS["CIE 1924 Photopic Standard Observer"]
    v_lambda = np.interp(grid, photopic.wavelengths, photopic.values)
    for peak, fwhm in ((520.0, 30.0), (662.0, 32.0), (600.0, 80.0)):
        spectrum = 3.7 * _gaussian(grid, peak, fwhm)
        factors = PhotometricFactors.compute(
            grid, spectrum, (responsivity_nm, responsivity), area_cm2, radius_mm, distance_mm
        )
        r_on_grid = 0.2 + 0.3 * (grid - 300.0) / 800.0
        fraction = radius_mm**2 / (radius_mm**2 + distance_mm**2)
        s_r = np.sum(spectrum * r_on_grid)  # 1 nm grid: sums are integrals
        luminance = 683.0 * (1.0 / fraction) * np.sum(spectrum * v_lambda) / s_r
        luminance /= math.pi * area_cm2 * 1e-4
        photons = (1.0 / fraction) * np.sum(spectrum * grid * 1e-9) / s_r
        eqe_pct = 100.0 * photons / (constants.h * constants.c) * constants.e
        assert factors.luminance_per_a == pytest.approx(luminance, rel=0.005)
        assert factors.eqe_pct_per_ratio == pytest.approx(eqe_pct, rel=0.005)


def test_calibration_csv_is_read_with_comments_and_header(tmp_path: Any) -> None:
    path = tmp_path / "r.csv"
    path.write_text("# comment\nwavelength_nm,responsivity_a_per_w\n400,0.1\n500,0.2 # note\n")
    grid, values = load_calibration_csv(path)
    assert grid.tolist() == [400.0, 500.0] and values.tolist() == [0.1, 0.2]
    path.write_text("wavelength_nm,a\n500,0.1\n400,0.2\n")
    grid, values = load_calibration_csv(path)
    assert grid.tolist() == [400.0, 500.0] and values.tolist() == [0.2, 0.1]
    path.write_text("wavelength_nm,a\n500,0.1\n500,0.2\n")
    with pytest.raises(ValueError, match="repeat"):
        load_calibration_csv(path)


def _minimal_run(**drop: Any) -> MemoryRun:
    voltage = np.linspace(0, 6, 61)
    current = 1e-3 * np.exp(voltage - 4.0)
    data = pd.DataFrame(
        {"voltage": voltage, "current": current, "photocurrent": 0.01 * current * (voltage > 2)}
    )
    for column in drop.get("columns", ()):
        del data[column]
    parameters = {"el_peak": 650.0, "el_fwhm": 30.0}
    metadata = {
        "setup_device_area_cm2": 0.09,
        "setup_photodiode_radius_mm": 5.0,
        "setup_photodiode_distance_mm": 20.0,
    }
    for key in drop.get("keys", ()):
        parameters.pop(key, None)
        metadata.pop(key, None)
    wavelength = np.arange(300.0, 1101.0, 10.0)
    streams = {
        "responsivity": FrameSet(
            wavelength, np.full((1, wavelength.size), 0.4), pd.DataFrame({"time": [0.0]})
        )
    }
    for stream in drop.get("streams", ()):
        del streams[stream]
    return MemoryRun(data, parameters, metadata, streams)


def test_minimal_input_is_enough() -> None:
    figures = jlv_key_figures(_minimal_run())
    assert figures["el_spectrum_source"] == "nominal"
    assert figures["analysed_sweep"] == "0 (forward)"
    assert math.isfinite(figures["peak_eqe_pct"])


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ({"columns": ["photocurrent"]}, "missing column 'photocurrent'"),
        ({"columns": ["current"]}, "missing column 'current'"),
        ({"keys": ["setup_device_area_cm2"]}, "device area"),
        ({"keys": ["setup_photodiode_distance_mm"]}, "photodiode distance"),
        ({"streams": ["responsivity"]}, "responsivity"),
        ({"keys": ["el_peak"]}, "missing EL spectrum"),
    ],
)
def test_missing_input_is_named(drop: dict[str, Any], message: str) -> None:
    with pytest.raises(AnalysisInputError, match=message):
        jlv_key_figures(_minimal_run(**drop))


def test_report_draws_four_panels(matrix_run: Recorded, tmp_path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 8.5))
    draw_jlv_report(matrix_run.as_run(), figure)
    assert len(figure.axes) == 4
    assert len(figure.axes[3].child_axes) == 1  # the CIE diagram inset
    figure.savefig(tmp_path / "report.png")
    figure.savefig("/tmp/jlv_report.png")
    assert (tmp_path / "report.png").stat().st_size > 10_000


# --------------------------------------------------------------------------- spectrum per bias
def test_each_lit_point_uses_the_el_spectrum_at_its_own_bias() -> None:
    """qd-in-matrix red-shifts 5 nm between 10 and 15 V: one spectrum would bias L there."""
    recorded = run_headless("qd-in-matrix", stop_voltage=16.0, keep_open=True)
    try:
        analysis = recompute_jlv(recorded.as_run())
        top = analysis.rows.iloc[-1]
        smu = recorded.bench["source_meter"]
        smu.output_enabled = True
        smu.source_voltage = 16.0
        truth = recorded.bench.world.led_truth()
    finally:
        recorded.bench.close()
    assert top["voltage"] == pytest.approx(16.0, abs=0.01)
    assert truth.el_peak_nm == pytest.approx(667.0, abs=0.5)
    assert top["el_spectrum"] == "own"
    assert top["luminance"] == pytest.approx(truth.luminance_cd_m2, rel=0.02)
    # The one-spectrum computation (the brightest point's spectrum for every row) misses.
    responsivity = load_calibration_csv(recorded.procedure._responsivity_path)
    single = PhotometricFactors.compute(
        analysis.wavelength_nm,
        analysis.spectrum,
        responsivity,
        analysis.area_cm2,
        analysis.pd_radius_mm,
        analysis.pd_distance_mm,
    )
    single_luminance = single.luminance_per_a * top["photocurrent"]
    assert abs(single_luminance / truth.luminance_cd_m2 - 1.0) > 0.05
    assert (analysis.rows["el_spectrum"] == "own").sum() > 50
    # The spectrum used at 16 V is the red-shifted one (667 nm), not the brightest's (662).
    from perovlab_daq.analysis import peak_metrics

    bias, grid, spectrum, kind = analysis.extra_spectra[-2]  # last point, then el_bias
    assert kind == "point" and bias == pytest.approx(16.0)
    assert float(peak_metrics(grid, spectrum).peak_nm[0]) == pytest.approx(667.0, abs=1.0)


def test_dark_level_luminance_is_noise_around_zero_not_clipped() -> None:
    """Below turn-on the dark-subtracted luminance scatters around 0: negative values kept."""
    readings = JlvProcedure.dark_readings.default
    recorded = run_headless(
        "qd-in-matrix",
        start_voltage=-2.0,
        stop_voltage=1.0,
        changeover_voltage=1.0,
        dark_readings=readings,
    )
    rows = recompute_jlv(recorded.as_run()).rows
    dark = rows[rows["voltage"] < 1.0]["luminance"].to_numpy()
    assert dark.size > 40
    assert (dark < 0).any()
    # The points' own noise and the shared error of the dark level both enter the mean.
    sigma_of_mean = dark.std(ddof=1) * math.sqrt(1.0 / dark.size + 1.0 / readings)
    assert abs(dark.mean()) < 3 * sigma_of_mean
    assert np.isnan(rows["eqe"]).all()  # undefined below turn-on: NaN, not 0 or negative
