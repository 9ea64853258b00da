"""Tests of the simulated-bench presets (perovlab_daq.sim.presets)."""

from __future__ import annotations

import dataclasses

import pytest

from perovlab_daq.sim.presets import PRESETS, Preset, get_preset, presets_from_yaml

EXPECTED_NAMES = {
    "qd-in-matrix",
    "qd-only",
    "matrix-only",
    "nc-hexane",
    "nc-methyl-acetate",
    "nc-acetone",
    "nc-butanol",
}


def test_preset_names_are_fixed() -> None:
    assert set(PRESETS) == EXPECTED_NAMES
    for name, preset in PRESETS.items():
        assert preset.name == name
        assert get_preset(name) is preset


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(ValueError) as error:
        get_preset("qd-in-matrx")
    for name in EXPECTED_NAMES:
        assert name in str(error.value)


@pytest.mark.parametrize("preset", PRESETS.values(), ids=list(PRESETS))
def test_each_preset_documents_itself(preset: Preset) -> None:
    assert preset.description
    assert preset.published, "every preset reproduces something published"
    for figure in preset.published:
        assert figure.source.startswith(("[P1]", "[P2]"))
        assert figure.quantity
    assert preset.assumptions


def test_presets_are_frozen() -> None:
    preset = get_preset("qd-in-matrix")
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.film.plqy_reference = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "peak_nm", "fwhm_nm", "plqy"),
    [
        ("nc-hexane", 653.0, 35.0, 0.819),
        ("nc-methyl-acetate", 638.0, 35.0, 0.629),
        ("nc-acetone", 599.0, 32.0, 0.321),
        ("nc-butanol", 533.0, 34.0, 0.101),
    ],
)
def test_nc_films_carry_table1(name: str, peak_nm: float, fwhm_nm: float, plqy: float) -> None:
    film = get_preset(name).film
    assert film.pl_band.peak_nm == peak_nm
    assert film.pl_band.fwhm_nm == fwhm_nm
    assert film.plqy_reference == pytest.approx(plqy)
    assert film.plqy_reference_density_w_cm2 == pytest.approx(125e-6)
    published = {f.quantity: f.value for f in get_preset(name).published}
    assert published["PL peak"] == peak_nm
    assert published["PLQY (405 nm CW, 125 uW/cm^2)"] == pytest.approx(plqy * 100.0)


def test_qd_in_matrix_carries_p2_lifetime_law() -> None:
    ageing = get_preset("qd-in-matrix").led.ageing
    assert ageing.acceleration_exponent == 1.95
    assert ageing.reference_luminance_cd_m2 == 100.0
    assert ageing.t50_reference_s == pytest.approx(2100.0 * 3600.0)


_TEMPLATED = """
templates:
  base:
    film: {pl_band: [600.0, 30.0], plqy_reference: 0.5, plqy_reference_density_w_cm2: 1.0,
           power_law_exponent: 1.0}
    assumptions: [shared]
presets:
  child:
    template: base
    description: d
    film: {plqy_reference: 0.25}
    led:
      el_band: [610.0, 31.0]
      diode: [2.0, 2.5, 10.0, 10.0, 1.0e+6]
      efficiency: [0.1, 1.0, 1.5, 100.0, 1.0]
      ageing: {acceleration_exponent: 1.5, t50_reference_s: 1.5 h,
               reference_luminance_cd_m2: 100.0}
    published: [[PL peak, 600.0, nm, "[P1] Table 1"]]
    assumptions: [own]
"""


def test_preset_file_merges_template_and_reads_durations() -> None:
    preset = presets_from_yaml(_TEMPLATED)["child"]
    assert preset.name == "child"
    assert preset.film.plqy_reference == 0.25  # the preset's own value wins
    assert preset.film.pl_band.peak_nm == 600.0  # the template's is kept
    assert preset.assumptions == ("shared", "own")  # template entries first
    assert preset.led.ageing.t50_reference_s == 5400.0
    assert preset.led.diode.shunt_resistance_ohm_cm2 == 1.0e6
    assert preset.published[0].source == "[P1] Table 1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("plqy_reference: 0.25", "plqy_referense: 0.25"), "unknown field"),
        (("template: base", "template: other"), "no template 'other'"),
        (("1.5 h", "1.5 days"), "unknown unit 'days'"),
        (("plqy_reference: 0.25", "plqy_reference: high"), "expected a number"),
    ],
)
def test_preset_file_errors_name_the_place(change: tuple[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        presets_from_yaml(_TEMPLATED.replace(*change))
