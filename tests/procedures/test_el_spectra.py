"""el-spectra on the simulated bench: bias-dependent EL of [P2], level parsing, output safety."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from perovlab_daq.procedures.base import ParameterError
from perovlab_daq.procedures.el_spectra import ElSpectraProcedure, parse_levels

from perovlab_daq.figures import el_spectra as el_spectra_figures

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pl_helpers import run_procedure, sim_bench_open  # noqa: E402


def test_qd_in_matrix_el_is_stable_to_10_v_and_shifts_above_15_v() -> None:
    with sim_bench_open("qd-in-matrix", "el-spectra") as bench:
        run = run_procedure(
            ElSpectraProcedure,
            bench,
            {"levels": "3, 6, 10, 16", "compliance_current": 0.5, "settle_time": 0.0},
        )
        assert bench["source_meter"].output_enabled is False
    data = run.data
    centre = data["centre_wavelength"].to_numpy()
    assert abs(centre[2] - centre[0]) < 1.0  # [P2]: no EL shift at 10 V
    assert 3.0 < centre[3] - centre[0] < 7.0  # [P2]: about 5 nm above 15 V
    assert data["voltage"].to_numpy() == pytest.approx([3, 6, 10, 16], abs=0.01)
    figures = el_spectra_figures.key_figures(run)
    assert figures["brightest_centre_nm"] == pytest.approx(662.0, abs=2.0)
    assert figures["brightest_fwhm_nm"] == pytest.approx(32.0, abs=2.0)
    assert not data["saturated"].any()
    contexts = run.frames("spectra").context
    assert list(contexts["level_index"]) == [0, 1, 2, 3]


def test_current_density_drive_uses_pixel_area() -> None:
    with sim_bench_open("nc-hexane", "el-spectra") as bench:
        run = run_procedure(
            ElSpectraProcedure,
            bench,
            {"drive_mode": "current density", "levels": "10, 125", "settle_time": 0.0},
        )
    assert run.data["current_density"].to_numpy() == pytest.approx([10.0, 125.0], rel=0.02)


def test_exception_mid_level_leaves_output_off(monkeypatch: pytest.MonkeyPatch) -> None:
    with sim_bench_open("qd-in-matrix", "el-spectra") as bench:
        spectrometer = bench["spectrometer"]
        monkeypatch.setattr(
            spectrometer, "intensities", lambda *a, **k: (_ for _ in ()).throw(KeyError("x"))
        )
        with pytest.raises(KeyError):
            run_procedure(ElSpectraProcedure, bench, {"levels": "4", "settle_time": 0.0})
        assert bench["source_meter"].output_enabled is False


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [("3, 4,5.5", "voltage", (3.0, 4.0, 5.5)), ("1e-3 2e-3", "current", (1e-3, 2e-3))],
)
def test_parse_levels(text: str, mode: str, expected: tuple[float, ...]) -> None:
    assert parse_levels(text, mode) == expected


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"levels": ""}, "one or more"),
        ({"levels": "3, __import__('os')"}, "not one"),
        ({"levels": "300"}, "within"),
        ({"drive_mode": "current", "levels": "2"}, "within"),
    ],
)
def test_bad_levels_are_refused_before_any_instrument(values: dict, fragment: str) -> None:
    with pytest.raises(ParameterError, match=fragment):
        ElSpectraProcedure.checked_parameters(values)
