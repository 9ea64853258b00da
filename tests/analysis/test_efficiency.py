"""Efficiency formulas checked from first principles, against colour-science and [P2]."""

from __future__ import annotations

import math

import colour
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import constants

from perovlab_daq.analysis import (
    K_M_LM_PER_W,
    _cie,
    cie_xy,
    collected_fraction,
    current_density_ma_cm2,
    current_efficiency_cd_a,
    eqe_from_luminance,
    eqe_from_photocurrent,
    eqe_from_radiance,
    jlv_figures,
    luminance_from_photocurrent,
    luminance_from_radiance,
    luminous_efficacy_lm_w,
    optical_power_from_photocurrent,
    radiance_from_photocurrent,
)

GRID_NM = np.arange(380.0, 781.0)  # 1 nm
AREA_CM2 = 0.09  # [P2] pixel area
RADIUS_MM = 5.0
DISTANCE_MM = 50.0


def gaussian(grid: np.ndarray, centre_nm: float, fwhm_nm: float) -> np.ndarray:
    sigma = fwhm_nm / (2 * math.sqrt(2 * math.log(2)))
    return np.exp(-0.5 * ((grid - centre_nm) / sigma) ** 2)


def line(grid: np.ndarray, wavelength_nm: float) -> np.ndarray:
    """A monochromatic line: one non-zero sample of unit integral on a 1 nm grid."""
    return np.where(grid == wavelength_nm, 1.0, 0.0)


def sloped_responsivity(grid: np.ndarray) -> np.ndarray:
    return 0.1 + 0.4 * (grid - grid[0]) / (grid[-1] - grid[0])  # A/W, like a Si diode


# --- first principles -------------------------------------------------------------------


def test_monochromatic_555_nm_line_gives_683_lm_per_w() -> None:
    # 1 W sr^-1 m^-2 of radiance at 555 nm is 683 cd/m^2 by definition of the candela.
    assert luminance_from_radiance(GRID_NM, line(GRID_NM, 555.0)) == pytest.approx(683.0, 1e-6)
    assert K_M_LM_PER_W == 683.0


def test_luminance_from_photocurrent_of_555_nm_line_by_hand() -> None:
    responsivity = np.full(GRID_NM.size, 0.25)
    photocurrent_a = 2e-6
    fraction = RADIUS_MM**2 / (RADIUS_MM**2 + DISTANCE_MM**2)
    power_w = photocurrent_a / 0.25 / fraction  # forward flux of the pixel
    expected = 683.0 * power_w / (math.pi * AREA_CM2 * 1e-4)  # Lambertian: M = pi L
    got = luminance_from_photocurrent(
        photocurrent_a,
        GRID_NM,
        line(GRID_NM, 555.0),
        responsivity,
        AREA_CM2,
        RADIUS_MM,
        DISTANCE_MM,
    )
    assert got == pytest.approx(expected, rel=1e-9)


def test_flat_spectrum_luminance_matches_colour_science_luminous_flux() -> None:
    # An equal-energy spectrum of 1 W sr^-1 m^-2 nm^-1 over 360-830 nm: colour-science's
    # own integration (an independent code path) must agree to 0.5 %.
    grid = np.arange(360.0, 831.0)
    radiance = np.ones(grid.size)
    expected = colour.luminous_flux(colour.SpectralDistribution(radiance, grid))
    assert luminance_from_radiance(grid, radiance) == pytest.approx(expected, rel=5e-3)


def test_luminous_efficacy_of_a_red_gaussian_matches_colour_science() -> None:
    grid = np.arange(400.0, 800.0, 0.5)  # a finer grid than the CIE tables
    spectrum = gaussian(grid, 653.0, 35.0)  # [P1] unwashed NC film PL
    independent = colour.luminous_efficacy(colour.SpectralDistribution(spectrum, grid))
    ours = luminance_from_radiance(grid, spectrum) / np.trapezoid(spectrum, grid)
    assert ours == pytest.approx(independent, rel=5e-3)


def test_eqe_of_monochromatic_650_nm_line_by_hand() -> None:
    responsivity = sloped_responsivity(GRID_NM)
    power_w = 1e-3
    current_a = 10e-3
    fraction = collected_fraction(RADIUS_MM, DISTANCE_MM)
    photocurrent_a = power_w * fraction * responsivity[GRID_NM == 650.0][0]
    photons_per_s = power_w / (constants.h * constants.c / 650e-9)
    expected_pct = 100 * photons_per_s * constants.e / current_a
    got = eqe_from_photocurrent(
        photocurrent_a,
        current_a,
        GRID_NM,
        line(GRID_NM, 650.0),
        responsivity,
        RADIUS_MM,
        DISTANCE_MM,
    )
    assert got == pytest.approx(expected_pct, rel=1e-9)
    assert optical_power_from_photocurrent(
        photocurrent_a, GRID_NM, line(GRID_NM, 650.0), responsivity, RADIUS_MM, DISTANCE_MM
    ) == pytest.approx(power_w, rel=1e-9)


def test_photocurrent_and_luminance_routes_to_eqe_agree() -> None:
    # Two different formulas of REFERENCE section 3 for the same device must agree.
    spectrum = 3.7e4 * gaussian(GRID_NM, 630.0, 30.0)  # arbitrary scale
    responsivity = sloped_responsivity(GRID_NM)
    photocurrent_a = np.array([1e-9, 1e-7, 3e-6])
    current_a = np.array([1e-5, 1e-3, 2e-2])
    luminance = luminance_from_photocurrent(
        photocurrent_a, GRID_NM, spectrum, responsivity, AREA_CM2, RADIUS_MM, DISTANCE_MM
    )
    j = current_density_ma_cm2(current_a, AREA_CM2)
    eqe_direct = eqe_from_photocurrent(
        photocurrent_a, current_a, GRID_NM, spectrum, responsivity, RADIUS_MM, DISTANCE_MM
    )
    np.testing.assert_allclose(eqe_from_luminance(luminance, j, GRID_NM, spectrum), eqe_direct)


def test_radiance_routes_agree_with_photocurrent_routes() -> None:
    # Build a calibrated spectral radiance, predict the photocurrent it causes, and
    # check luminance, radiance and EQE come back the same through both routes.
    shape = gaussian(GRID_NM, 520.0, 25.0)
    radiance_nm = 0.8 * shape / np.trapezoid(shape, GRID_NM)  # 0.8 W sr^-1 m^-2 in total
    responsivity = sloped_responsivity(GRID_NM)
    area_m2 = AREA_CM2 * 1e-4
    forward_power_w = math.pi * area_m2 * np.trapezoid(radiance_nm, GRID_NM)
    photocurrent_a = (
        forward_power_w
        * collected_fraction(RADIUS_MM, DISTANCE_MM)
        * np.trapezoid(shape * responsivity, GRID_NM)
        / np.trapezoid(shape, GRID_NM)
    )
    args = (GRID_NM, shape, responsivity, AREA_CM2, RADIUS_MM, DISTANCE_MM)
    assert luminance_from_photocurrent(photocurrent_a, *args) == pytest.approx(
        luminance_from_radiance(GRID_NM, radiance_nm), rel=1e-9
    )
    assert radiance_from_photocurrent(photocurrent_a, *args) == pytest.approx(0.8, rel=1e-9)
    luminance = luminance_from_radiance(GRID_NM, radiance_nm)
    assert eqe_from_radiance(GRID_NM, radiance_nm, 5.0) == pytest.approx(
        eqe_from_luminance(luminance, 5.0, GRID_NM, shape), rel=1e-9
    )


def test_simple_ratios() -> None:
    assert current_density_ma_cm2(1e-3, 0.09) == pytest.approx(11.111111, rel=1e-6)
    assert current_efficiency_cd_a(1000.0, 10.0) == pytest.approx(10.0)  # 1000/(100 A/m^2)
    assert luminous_efficacy_lm_w(1000.0, 10.0, 5.0) == pytest.approx(math.pi * 10 / 5)
    assert collected_fraction(3.0, 4.0) == pytest.approx(9 / 25)


def test_arrays_keep_their_shape_and_scalars_stay_float() -> None:
    currents = np.linspace(1e-4, 1e-2, 12).reshape(3, 4)
    assert current_density_ma_cm2(currents, AREA_CM2).shape == (3, 4)
    assert isinstance(current_density_ma_cm2(1e-3, AREA_CM2), float)


# --- colour ----------------------------------------------------------------------------


def test_650_nm_line_is_deep_red_on_the_spectral_locus() -> None:
    # CIE 1931 spectral locus at 650 nm: x = 0.7260, y = 0.2740 (published tables).
    x, y = cie_xy(GRID_NM, line(GRID_NM, 650.0))
    assert x == pytest.approx(0.7260, abs=5e-4)
    assert y == pytest.approx(0.2740, abs=5e-4)
    assert x + y == pytest.approx(1.0, abs=2e-3)  # z ~ 0 at the red end of the locus


def test_cie_xy_of_gaussian_matches_colour_science() -> None:
    grid = np.arange(360.0, 781.0)  # the range colour-science integrates by default
    spectrum = gaussian(grid, 638.0, 35.0)  # [P1] methyl-acetate film
    sd = colour.SpectralDistribution(spectrum, grid)
    expected = colour.XYZ_to_xy(colour.sd_to_XYZ(sd, method="Integration"))
    assert cie_xy(grid, spectrum) == pytest.approx(tuple(expected), abs=5e-4)


def test_cie_xy_accepts_rows() -> None:
    rows = np.stack([gaussian(GRID_NM, c, 30.0) for c in (520.0, 600.0, 650.0)])
    x_rows, y_rows = cie_xy(GRID_NM, rows)
    for i in range(3):
        assert (x_rows[i], y_rows[i]) == pytest.approx(cie_xy(GRID_NM, rows[i]))


def test_cie_tables_are_interpolated_once_per_grid() -> None:
    first = _cie.photopic_on_grid(GRID_NM)
    assert _cie.photopic_on_grid(GRID_NM.copy()) is first
    assert first[GRID_NM == 555.0][0] == pytest.approx(1.0)
    assert not first.flags.writeable


@settings(max_examples=40, deadline=None)
@given(
    centre=st.floats(420.0, 740.0),
    fwhm=st.floats(5.0, 80.0),
    scale=st.floats(1e-6, 1e6),
)
def test_colour_and_luminance_scale_correctly(centre: float, fwhm: float, scale: float) -> None:
    spectrum = gaussian(GRID_NM, centre, fwhm)
    x, y = cie_xy(GRID_NM, spectrum)
    assert 0 < x < 1 and 0 < y < 1 and x + y <= 1 + 1e-9
    assert cie_xy(GRID_NM, scale * spectrum) == pytest.approx((x, y), rel=1e-9)
    responsivity = sloped_responsivity(GRID_NM)
    args = (GRID_NM, spectrum, responsivity, AREA_CM2, RADIUS_MM, DISTANCE_MM)
    single = luminance_from_photocurrent(1e-6, *args)
    # Linear in photocurrent; independent of the spectrum's arbitrary scale.
    assert luminance_from_photocurrent(scale * 1e-6, *args) == pytest.approx(scale * single)
    scaled_args = (GRID_NM, scale * spectrum, *args[2:])
    assert luminance_from_photocurrent(1e-6, *scaled_args) == pytest.approx(single, rel=1e-9)


# --- J-L-V figures ---------------------------------------------------------------------


def p2_like_sweep() -> dict[str, np.ndarray]:
    """A sweep shaped like the [P2] device: EQE peaks at 18 %, 13 % at 100 mA/cm^2."""
    voltage = np.round(np.arange(0.0, 8.01, 0.1), 10)
    current_density = 1e-4 * np.exp(2.2 * voltage)  # mA/cm^2, up to ~4.4e3
    ln_j = np.log(current_density)
    # EQE linear in ln J on each side of the maximum at 10 mA/cm^2, so interpolation in
    # ln J at 100 mA/cm^2 is exact: 18 % at 10 mA/cm^2 falling 5 points per decade.
    eqe = np.where(
        ln_j < math.log(10.0),
        18.0 - 3.0 * (math.log(10.0) - ln_j) / math.log(10),
        18.0 - 5.0 * (ln_j - math.log(10.0)) / math.log(10),
    )
    eqe = np.clip(eqe, 0.01, None)
    luminance = 7.5 * eqe * current_density  # cd/m^2, ~monotonic with J
    return {"v": voltage, "j": current_density, "l": luminance, "eqe": eqe}


def test_jlv_figures_of_a_p2_like_sweep() -> None:
    sweep = p2_like_sweep()
    spectrum = gaussian(GRID_NM, 650.0, 30.0)
    figures = jlv_figures(sweep["v"], sweep["j"], sweep["l"], sweep["eqe"], GRID_NM, spectrum)
    lit = sweep["l"] >= 1.0
    assert figures["turn_on_voltage_v"] == pytest.approx(sweep["v"][lit][0])
    assert figures["turn_on_threshold_cd_m2"] == 1.0
    assert figures["max_luminance_cd_m2"] == pytest.approx(sweep["l"].max())
    assert figures["max_eqe_pct"] == pytest.approx(sweep["eqe"][lit].max())
    assert figures["current_density_at_max_eqe_ma_cm2"] == pytest.approx(
        sweep["j"][np.argmax(np.where(lit, sweep["eqe"], -1))]
    )
    assert figures["eqe_at_reference_pct"] == pytest.approx(13.0, abs=1e-9)  # [P2]: ~13 %
    expected_cd_a = (sweep["l"] / (10 * sweep["j"]))[lit].max()
    assert figures["max_current_efficiency_cd_a"] == pytest.approx(expected_cd_a)
    lit_v = sweep["v"][lit]
    expected_lm_w = (math.pi * sweep["l"][lit] / (10 * sweep["j"][lit]) / lit_v).max()
    assert figures["max_luminous_efficacy_lm_w"] == pytest.approx(expected_lm_w)
    assert figures["el_peak_nm"] == pytest.approx(650.0, abs=0.1)
    assert figures["el_fwhm_nm"] == pytest.approx(30.0, rel=0.01)
    assert figures["cie_x"] > 0.7


def test_jlv_turn_on_threshold_is_a_parameter() -> None:
    sweep = p2_like_sweep()
    figures = jlv_figures(
        sweep["v"], sweep["j"], sweep["l"], sweep["eqe"], turn_on_threshold_cd_m2=100.0
    )
    assert figures["turn_on_voltage_v"] == pytest.approx(sweep["v"][sweep["l"] >= 100][0])
    assert figures["turn_on_threshold_cd_m2"] == 100.0
    assert math.isnan(figures["el_peak_nm"])


def test_jlv_reference_eqe_is_nan_when_the_sweep_stops_short() -> None:
    sweep = p2_like_sweep()
    short = sweep["j"] < 50.0
    figures = jlv_figures(
        sweep["v"][short], sweep["j"][short], sweep["l"][short], sweep["eqe"][short]
    )
    assert math.isnan(figures["eqe_at_reference_pct"])


def test_jlv_never_lit_gives_nan_turn_on_and_maxima() -> None:
    voltage = np.linspace(0, 3, 31)
    figures = jlv_figures(voltage, voltage + 0.1, np.full(31, 0.01), np.full(31, 1.0))
    assert math.isnan(figures["turn_on_voltage_v"])
    assert math.isnan(figures["max_eqe_pct"])


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"photocurrent_a": [1e-6, np.nan]}, "photocurrent_a must be finite"),
        ({"wavelength_nm": GRID_NM[::-1]}, "wavelength_nm must be strictly increasing"),
        ({"spectrum": np.ones(5)}, "spectrum must have 401 samples"),
        ({"responsivity_a_per_w": -np.ones(GRID_NM.size)}, "responsivity_a_per_w must be >= 0"),
        ({"area_cm2": 0.0}, "area_cm2 must be > 0"),
        ({"pd_radius_mm": -1.0}, "pd_radius_mm must be > 0"),
        ({"pd_distance_mm": np.inf}, "pd_distance_mm must be finite"),
        ({"spectrum": line(GRID_NM, 400.0) * 0}, "spectrum, responsivity_a_per_w"),
    ],
)
def test_luminance_from_photocurrent_rejects_bad_input(kwargs: dict, match: str) -> None:
    arguments = {
        "photocurrent_a": 1e-6,
        "wavelength_nm": GRID_NM,
        "spectrum": gaussian(GRID_NM, 600.0, 30.0),
        "responsivity_a_per_w": sloped_responsivity(GRID_NM),
        "area_cm2": AREA_CM2,
        "pd_radius_mm": RADIUS_MM,
        "pd_distance_mm": DISTANCE_MM,
    } | kwargs
    with pytest.raises(ValueError, match=match):
        luminance_from_photocurrent(**arguments)


def test_eqe_rejects_reverse_current_naming_it() -> None:
    with pytest.raises(ValueError, match=r"current_a must be > 0 A; got 1 non-positive.*-1e-06"):
        eqe_from_photocurrent(
            [1e-9, 1e-9],
            [1e-3, -1e-6],
            GRID_NM,
            gaussian(GRID_NM, 600.0, 30.0),
            sloped_responsivity(GRID_NM),
            RADIUS_MM,
            DISTANCE_MM,
        )


def test_eqe_from_luminance_rejects_invisible_emission() -> None:
    grid = np.arange(850.0, 1000.0)
    with pytest.raises(ValueError, match="overlap with V"):
        eqe_from_luminance(1.0, 1.0, grid, gaussian(grid, 920.0, 30.0))


def test_jlv_rejects_mismatched_lengths_and_half_a_spectrum() -> None:
    with pytest.raises(ValueError, match="eqe_pct must have the shape of voltage_v"):
        jlv_figures([0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="wavelength_nm and spectrum"):
        jlv_figures([0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2], wavelength_nm=GRID_NM)


def test_bias_interpolation_is_linear_between_spectra_and_nearest_outside() -> None:
    from perovlab_daq.analysis.efficiency import interpolate_in_bias

    measured = np.array([3.0, 5.0, 5.0, 7.0])  # two spectra at 5 V (forward, reverse)
    values = np.array([1.0, 2.0, 4.0, 5.0])
    np.testing.assert_allclose(
        interpolate_in_bias([2.0, 3.0, 4.0, 5.0, 6.0, 8.0], measured, values),
        [1.0, 1.0, 2.0, 3.0, 4.0, 5.0],
    )
    with pytest.raises(ValueError, match="at least one"):
        interpolate_in_bias([1.0], [math.nan], [1.0])


def test_jlv_figures_skip_undefined_eqe() -> None:
    from perovlab_daq.analysis import jlv_figures

    voltage = np.array([0.0, 1.0, 2.0, 3.0])
    density = np.array([0.0, 1.0, 10.0, 100.0])
    luminance = np.array([-0.01, 0.02, 50.0, 900.0])  # negative noise kept
    eqe = np.array([np.nan, np.nan, 10.0, 8.0])
    figures = jlv_figures(voltage, density, luminance, eqe)
    assert figures["max_eqe_pct"] == 10.0
    assert figures["eqe_at_reference_pct"] == 8.0
    with pytest.raises(ValueError, match="infinite"):
        jlv_figures(voltage, density, luminance, np.array([np.inf, 1.0, 1.0, 1.0]))
