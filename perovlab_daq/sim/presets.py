"""Sample presets of the simulated bench: each is a film (PL) and an LED made from it.

A preset is a frozen dataclass holding every material and device parameter the world
model needs, a one-line description, the published figures it is built to reproduce (with
their source, shown by ``perovlab-daq bench presets``) and the assumptions made where the
papers give no number. Sources (REFERENCE.md):

- [P1] Ye et al., J. Am. Chem. Soc. 144, 12102 (2022): CsPbBr_xI_(3-x) NCs, antisolvents.
- [P2] Liu, Dong et al., J. Am. Chem. Soc. (2021), doi 10.1021/jacs.1c02148: QDs in matrix.

The numbers measured on the simulated bench against each target are in docs/simulator.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

HOUR_S: float = 3600.0
MINUTE_S: float = 60.0


@dataclass(frozen=True)
class PublishedFigure:
    """One published number a preset reproduces.

    Attributes
    ----------
    quantity
        What is measured, with the condition (e.g. "EQE at 100 mA/cm^2").
    value
        The published value.
    unit
        Unit of `value` ("%" for efficiencies and yields).
    source
        Citation key and location, e.g. "[P1] Table 1".
    """

    quantity: str
    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class EmissionBand:
    """Gaussian emission band in spectral power against wavelength.

    Attributes
    ----------
    peak_nm
        Peak wavelength (nm).
    fwhm_nm
        Full width at half maximum (nm).
    """

    peak_nm: float
    fwhm_nm: float


@dataclass(frozen=True)
class DiodeParameters:
    """Single-diode equivalent circuit, per unit area.

    Attributes
    ----------
    ideality_factor
        Diode ideality n (the exponential rises one decade per n 59.5 mV).
    junction_voltage_at_reference_v
        Junction voltage (V) at `reference_current_density_ma_cm2`; fixes the saturation
        current.
    reference_current_density_ma_cm2
        Reference junction current density (mA/cm^2).
    series_resistance_ohm_cm2
        Series resistance times area (ohm cm^2).
    shunt_resistance_ohm_cm2
        Shunt resistance times area (ohm cm^2).
    """

    ideality_factor: float
    junction_voltage_at_reference_v: float
    reference_current_density_ma_cm2: float
    series_resistance_ohm_cm2: float
    shunt_resistance_ohm_cm2: float


@dataclass(frozen=True)
class EfficiencyParameters:
    """EQE against junction current density J: peak * s(J) / max(s).

    s(J) = x^p / (1 + x^p) / (1 + (J / J_roll)^b) / (1 + (J / J_quench)^c) with
    x = J / J_rise: trap filling makes the EQE rise (exponent p); Auger recombination and
    field-induced quenching make it roll off (exponent b); Joule heating quenches it at the
    highest current densities (exponent c). A total roll-off steeper than 1/J makes the
    luminance itself fall past a maximum, as on real PeLEDs.

    Attributes
    ----------
    peak_eqe
        Maximum EQE (fraction).
    rise_current_density_ma_cm2, rise_exponent
        J_rise and p.
    rolloff_current_density_ma_cm2, rolloff_exponent
        J_roll and b.
    quench_current_density_ma_cm2, quench_exponent
        J_quench and c (thermal quenching); J_quench = inf for none.
    """

    peak_eqe: float
    rise_current_density_ma_cm2: float
    rise_exponent: float
    rolloff_current_density_ma_cm2: float
    rolloff_exponent: float
    quench_current_density_ma_cm2: float = float("inf")
    quench_exponent: float = 4.0


@dataclass(frozen=True)
class AgeingParameters:
    """Operational ageing under current: stretched exponential with L0^n * T50 = C.

    With reduced time u = integral of dt / tau(J) (tau set by the fresh luminance L0 at the
    drive current density J), relative luminance is
    ``(1 + a (1 - exp(-u / u_b))) * exp(-u ** beta)``; tau is scaled so the relative
    luminance crosses 0.5 exactly at T50(L0) = C / L0^n under constant current.

    Attributes
    ----------
    acceleration_exponent
        n in L0^n * T50 = C.
    t50_reference_s
        T50 (s) at the reference condition below.
    reference_luminance_cd_m2
        Initial luminance of the reference condition; None when it is given as a current
        density instead.
    reference_current_density_ma_cm2
        Reference condition as a constant current density (its fresh luminance is used);
        None when a luminance is given.
    stretch_exponent
        beta of the stretched exponential.
    brightening_fraction
        a: relative initial brightening (positive ageing), 0 for none.
    brightening_reduced_time
        u_b: reduced time over which the brightening develops.
    voltage_rise_at_t50_v
        Rise of the junction voltage (V) at T50, proportional to the lost fraction.
    """

    acceleration_exponent: float
    t50_reference_s: float
    reference_luminance_cd_m2: float | None = None
    reference_current_density_ma_cm2: float | None = None
    stretch_exponent: float = 0.7
    brightening_fraction: float = 0.0
    brightening_reduced_time: float = 0.05
    voltage_rise_at_t50_v: float = 0.3


@dataclass(frozen=True)
class ElSpectralDrift:
    """How the EL spectrum moves with bias and with time under bias.

    Attributes
    ----------
    high_field_shift_nm
        Red-shift (nm) reached at and above `high_field_full_v` (0 for none).
    high_field_onset_v, high_field_full_v
        The shift is zero up to the onset and rises smoothly to full between the two.
    migration_target_nm
        Peak (nm) the EL settles at after long operation (iodide migration in mixed-halide
        NCs); None for no drift.
    migration_time_s
        Device-time constant of the drift at `migration_reference_ma_cm2`; the rate scales
        linearly with the current density.
    migration_reference_ma_cm2
        Current density of `migration_time_s`.
    """

    high_field_shift_nm: float = 0.0
    high_field_onset_v: float = 10.0
    high_field_full_v: float = 15.0
    migration_target_nm: float | None = None
    migration_time_s: float = 600.0
    migration_reference_ma_cm2: float = 125.0


@dataclass(frozen=True)
class SegregationParameters:
    """Halide segregation of a mixed-halide film: iodide-rich domains grow under light/bias.

    The segregated fraction s relaxes towards `max_fraction` at a rate proportional to the
    excitation density (or current density) and back to 0 in the dark. Emission is
    ``(1 - s)`` of the parent band (red-shifted by ``parent_shift_nm * s / max_fraction``)
    plus ``s`` shared among the `segregated_bands` by `segregated_weights`.

    Attributes
    ----------
    segregated_bands
        Emission bands of the iodide-rich domains.
    segregated_weights
        Share of the segregated emission per band (sums to 1).
    max_fraction
        Saturated segregated fraction of the emission.
    time_constant_s
        Device-time constant at `reference_density_w_cm2` of excitation.
    reference_density_w_cm2
        Excitation density of `time_constant_s`.
    led_reference_ma_cm2
        Current density that segregates as fast as the reference excitation (LED use).
    parent_shift_nm
        Red-shift of the parent band at full segregation.
    dark_recovery_time_s
        Device-time constant of remixing in the dark.
    """

    segregated_bands: tuple[EmissionBand, ...]
    segregated_weights: tuple[float, ...]
    max_fraction: float
    time_constant_s: float
    reference_density_w_cm2: float
    led_reference_ma_cm2: float
    parent_shift_nm: float
    dark_recovery_time_s: float


@dataclass(frozen=True)
class FilmParameters:
    """Photoluminescence of the film.

    PLQY(I) = min(plqy_reference * (I / I_ref)^(k - 1), plqy_ceiling) * bleach, so the
    integrated PL goes as P^k until the ceiling (never reached on the default bench).

    Attributes
    ----------
    pl_band
        PL emission band.
    plqy_reference
        PLQY (fraction) at `plqy_reference_density_w_cm2`.
    plqy_reference_density_w_cm2
        Excitation density of the reference PLQY.
    power_law_exponent
        k in integrated PL = C P^k.
    absorptance_at_laser
        Fraction of the laser the film absorbs (same at 405 and 445 nm in this model).
    bleach_time_s
        Device-time constant of photobleaching at `bleach_reference_density_w_cm2`
        (rate proportional to excitation density); None for a photostable film.
    bleach_reference_density_w_cm2
        Excitation density of `bleach_time_s`.
    segregation
        Halide segregation under light, or None.
    """

    pl_band: EmissionBand
    plqy_reference: float
    plqy_reference_density_w_cm2: float
    power_law_exponent: float
    absorptance_at_laser: float = 0.6
    bleach_time_s: float | None = None
    bleach_reference_density_w_cm2: float = 600.0
    segregation: SegregationParameters | None = None
    plqy_ceiling: float = 0.99


@dataclass(frozen=True)
class LedParameters:
    """LED made from the film.

    Attributes
    ----------
    el_band
        Fresh EL band.
    diode
        Equivalent circuit.
    efficiency
        EQE curve.
    ageing
        Operational ageing.
    drift
        EL spectral drift with bias and time.
    segregates_under_bias
        True when the film's halide segregation also runs under current (matrix-only).
    """

    el_band: EmissionBand
    diode: DiodeParameters
    efficiency: EfficiencyParameters
    ageing: AgeingParameters
    drift: ElSpectralDrift = field(default_factory=ElSpectralDrift)
    segregates_under_bias: bool = False


@dataclass(frozen=True)
class Preset:
    """A sample: film and LED, with what it reproduces and what is assumed.

    Attributes
    ----------
    name
        Preset name (the key in `PRESETS`).
    description
        One line for ``perovlab-daq bench presets``.
    film
        PL model.
    led
        LED model.
    published
        Published figures this preset is built to reproduce, with source.
    assumptions
        Model choices not taken from a paper.
    """

    name: str
    description: str
    film: FilmParameters
    led: LedParameters
    published: tuple[PublishedFigure, ...] = ()
    assumptions: tuple[str, ...] = ()


# --- shared pieces --------------------------------------------------------------------

#: Iodide-rich emission of a segregated CsPbBr_xI_(3-x) matrix: [P2] reports new peaks at
#: 650 nm and 700 nm; widths and the split between them are model choices.
_MATRIX_SEGREGATION = SegregationParameters(
    segregated_bands=(EmissionBand(650.0, 30.0), EmissionBand(700.0, 34.0)),
    segregated_weights=(0.5, 0.5),
    max_fraction=0.85,
    time_constant_s=120.0,
    reference_density_w_cm2=600.0,
    led_reference_ma_cm2=100.0,
    parent_shift_nm=8.0,
    dark_recovery_time_s=1800.0,
)

#: The NC LEDs share one equivalent circuit (same stack, same NC size): an assumption.
_NC_DIODE = DiodeParameters(
    ideality_factor=2.3,
    junction_voltage_at_reference_v=2.6,
    reference_current_density_ma_cm2=10.0,
    series_resistance_ohm_cm2=12.0,
    shunt_resistance_ohm_cm2=1.0e6,
)

_NC_ASSUMPTIONS = (
    "PL band Gaussian in spectral power with the Table 1 peak and FWHM.",
    "Absorptance 0.5 at the laser line; no photobleaching or segregation of the film "
    "(P1 reports none).",
    "LED: EL starts at the film's PL peak and drifts to 664 nm under current "
    "(iodide migration); EQE, roll-off, T50 at 125 mA/cm^2 and n = 1.5 are model choices "
    "ordered as P1 describes (methyl acetate brightest and slowest to shift, decay faster "
    "for more polar antisolvents).",
)


def _nc_table1_figures(
    peak_nm: float, fwhm_nm: float, plqy_percent: float
) -> tuple[PublishedFigure, ...]:
    return (
        PublishedFigure("PL peak", peak_nm, "nm", "[P1] Table 1"),
        PublishedFigure("PL FWHM", fwhm_nm, "nm", "[P1] Table 1"),
        PublishedFigure("PLQY (405 nm CW, 125 uW/cm^2)", plqy_percent, "%", "[P1] Table 1"),
        PublishedFigure("EL peak after operation", 664.0, "nm", "[P1] text"),
    )


def _nc_preset(
    name: str,
    solvent: str,
    polarity: float,
    pl_band: EmissionBand,
    plqy: float,
    power_law_exponent: float,
    peak_eqe: float,
    t50_at_125_ma_cm2_s: float,
    migration_time_s: float,
    brightening_fraction: float,
) -> Preset:
    return Preset(
        name=name,
        description=(
            f"CsPbBr_xI_(3-x) NC film washed with {solvent} (relative polarity {polarity}) "
            f"and an LED from it [P1]"
        ),
        film=FilmParameters(
            pl_band=pl_band,
            plqy_reference=plqy,
            plqy_reference_density_w_cm2=125e-6,
            power_law_exponent=power_law_exponent,
            absorptance_at_laser=0.5,
        ),
        led=LedParameters(
            el_band=pl_band,
            diode=_NC_DIODE,
            efficiency=EfficiencyParameters(
                peak_eqe=peak_eqe,
                rise_current_density_ma_cm2=0.5,
                rise_exponent=1.5,
                rolloff_current_density_ma_cm2=300.0,
                rolloff_exponent=1.2,
            ),
            ageing=AgeingParameters(
                acceleration_exponent=1.5,
                t50_reference_s=t50_at_125_ma_cm2_s,
                reference_current_density_ma_cm2=125.0,
                stretch_exponent=0.8,
                brightening_fraction=brightening_fraction,
                # Early and fast, so the rise shows before the stretched decay takes over.
                brightening_reduced_time=0.005,
                voltage_rise_at_t50_v=0.4,
            ),
            drift=ElSpectralDrift(
                migration_target_nm=664.0,
                migration_time_s=migration_time_s,
                migration_reference_ma_cm2=125.0,
            ),
        ),
        published=_nc_table1_figures(pl_band.peak_nm, pl_band.fwhm_nm, round(plqy * 100.0, 1)),
        assumptions=_NC_ASSUMPTIONS
        + (
            f"PL power-law exponent k = {power_law_exponent} (k > 1 for the trap-rich, "
            "more polar washes, consistent with the trap filling P1 infers from PL "
            "lifetimes).",
        ),
    )


PRESETS: dict[str, Preset] = {}


def _register(preset: Preset) -> None:
    PRESETS[preset.name] = preset


_register(
    Preset(
        name="qd-in-matrix",
        description="CsPbI3-rich quantum dots in a perovskite matrix: bright, stable red "
        "PeLED and photostable film [P2]",
        film=FilmParameters(
            pl_band=EmissionBand(660.0, 32.0),
            plqy_reference=0.55,
            plqy_reference_density_w_cm2=600.0,
            power_law_exponent=1.0,
            absorptance_at_laser=0.5,
            # 600 W/cm^2 for 10 min keeps 98 % of the PL: "no change" within error.
            bleach_time_s=30000.0,
            bleach_reference_density_w_cm2=600.0,
        ),
        led=LedParameters(
            el_band=EmissionBand(662.0, 32.0),
            diode=DiodeParameters(
                ideality_factor=2.2,
                junction_voltage_at_reference_v=2.55,
                reference_current_density_ma_cm2=10.0,
                series_resistance_ohm_cm2=15.0,
                shunt_resistance_ohm_cm2=2.0e6,
            ),
            # Fitted so that peak EQE = 18 %, EQE(100 mA/cm^2) = 13 %,
            # L(20 mA/cm^2) = 914 cd/m^2 and max L = 4700 cd/m^2 with the EL band above.
            efficiency=EfficiencyParameters(
                peak_eqe=0.18,
                rise_current_density_ma_cm2=0.3,
                rise_exponent=1.5,
                rolloff_current_density_ma_cm2=451.0,
                rolloff_exponent=0.298,
                quench_current_density_ma_cm2=246.3,
                quench_exponent=3.0,
            ),
            ageing=AgeingParameters(
                acceleration_exponent=1.95,
                t50_reference_s=2100.0 * HOUR_S,
                reference_luminance_cd_m2=100.0,
                stretch_exponent=0.7,
                voltage_rise_at_t50_v=0.3,
            ),
            drift=ElSpectralDrift(
                high_field_shift_nm=5.0, high_field_onset_v=10.0, high_field_full_v=15.0
            ),
        ),
        published=(
            PublishedFigure("device area", 0.09, "cm^2", "[P2]"),
            PublishedFigure("peak EQE", 18.0, "%", "[P2]"),
            PublishedFigure("EQE at 100 mA/cm^2", 13.0, "%", "[P2]"),
            PublishedFigure("maximum luminance", 4700.0, "cd/m^2", "[P2]"),
            PublishedFigure("EL shift at 10 V", 0.0, "nm", "[P2]"),
            PublishedFigure("EL shift above 15 V", 5.0, "nm", "[P2]"),
            PublishedFigure("initial luminance in the ageing figure", 914.0, "cd/m^2", "[P2]"),
            PublishedFigure("acceleration exponent n", 1.95, "", "[P2]"),
            PublishedFigure("T50 at 100 cd/m^2", 2100.0, "h", "[P2]"),
            PublishedFigure("film PLQY after 10 min at ~600 W/cm^2, above", 40.0, "%", "[P2]"),
        ),
        assumptions=(
            "EL peak 662 nm, FWHM 32 nm (chosen so 914 cd/m^2 at 20 mA/cm^2 matches "
            "EQE ~16 % there); PL 660 nm, FWHM 32 nm.",
            "914 cd/m^2 is taken at 20 mA/cm^2 (the [P2] lifetime current density).",
            "Film PLQY 55 % at 600 W/cm^2, power-law exponent k = 1.0 (excitonic QDs), "
            "absorptance 0.5, photobleaching time constant 30000 s at 600 W/cm^2.",
            "Stretched-exponential beta 0.7, no initial brightening, 0.3 V rise at T50.",
            "Diode: ideality 2.2, 2.55 V at 10 mA/cm^2, 15 ohm cm^2 series, 2 Mohm cm^2 "
            "shunt: luminance peaks near 5.5 V (182 mA/cm^2), inside a 0-8 V sweep at "
            "100 mA compliance.",
        ),
    )
)

_register(
    Preset(
        name="qd-only",
        description="Control: the same quantum dots without the matrix: strong roll-off, "
        "short lifetime, film photodegrades [P2]",
        film=FilmParameters(
            pl_band=EmissionBand(655.0, 34.0),
            plqy_reference=0.35,
            plqy_reference_density_w_cm2=600.0,
            power_law_exponent=1.0,
            absorptance_at_laser=0.5,
            # exp(-600 / 100) = 0.25 %: PLQY 35 % -> 0.09 % after 10 min at 600 W/cm^2.
            bleach_time_s=100.0,
            bleach_reference_density_w_cm2=600.0,
        ),
        led=LedParameters(
            el_band=EmissionBand(655.0, 34.0),
            diode=DiodeParameters(
                ideality_factor=2.4,
                junction_voltage_at_reference_v=2.7,
                reference_current_density_ma_cm2=10.0,
                series_resistance_ohm_cm2=40.0,
                shunt_resistance_ohm_cm2=5.0e5,
            ),
            # Luminance maximum 410 cd/m^2 at 5.0 V (55 mA/cm^2), falling beyond.
            efficiency=EfficiencyParameters(
                peak_eqe=0.02652,
                rise_current_density_ma_cm2=0.5,
                rise_exponent=1.5,
                rolloff_current_density_ma_cm2=69.11,
                rolloff_exponent=3.0,
            ),
            ageing=AgeingParameters(
                acceleration_exponent=1.8,
                t50_reference_s=25.0 * MINUTE_S,
                reference_luminance_cd_m2=184.0,
                stretch_exponent=0.6,
                voltage_rise_at_t50_v=0.5,
            ),
        ),
        published=(
            PublishedFigure("luminance maximum", 410.0, "cd/m^2", "[P2]"),
            PublishedFigure("voltage of the luminance maximum", 5.0, "V", "[P2]"),
            PublishedFigure("T50 at 184 cd/m^2", 25.0, "min", "[P2]"),
            PublishedFigure("film PLQY after 10 min at ~600 W/cm^2, below", 0.5, "%", "[P2]"),
        ),
        assumptions=(
            "EL and PL 655 nm, FWHM 34 nm; peak EQE 2.65 %; roll-off exponent 3.",
            "n = 1.8 (not published for the control), beta 0.6.",
            "Film PLQY 35 % fresh, k = 1.0, photobleaching time constant 100 s at "
            "600 W/cm^2 (rate proportional to excitation density).",
        ),
    )
)

_register(
    Preset(
        name="matrix-only",
        description="Control: the mixed-halide CsPbBr_xI_(3-x) matrix alone: halide "
        "segregation under light and bias [P2]",
        film=FilmParameters(
            pl_band=EmissionBand(625.0, 38.0),
            plqy_reference=0.05,
            plqy_reference_density_w_cm2=1.0,
            power_law_exponent=1.3,
            absorptance_at_laser=0.6,
            segregation=_MATRIX_SEGREGATION,
        ),
        led=LedParameters(
            el_band=EmissionBand(627.0, 38.0),
            diode=DiodeParameters(
                ideality_factor=2.3,
                junction_voltage_at_reference_v=2.7,
                reference_current_density_ma_cm2=10.0,
                series_resistance_ohm_cm2=20.0,
                shunt_resistance_ohm_cm2=5.0e5,
            ),
            efficiency=EfficiencyParameters(
                peak_eqe=0.015,
                rise_current_density_ma_cm2=2.0,
                rise_exponent=1.5,
                rolloff_current_density_ma_cm2=150.0,
                rolloff_exponent=1.5,
            ),
            ageing=AgeingParameters(
                acceleration_exponent=1.7,
                t50_reference_s=2.0 * HOUR_S,
                reference_current_density_ma_cm2=20.0,
                stretch_exponent=0.7,
                voltage_rise_at_t50_v=0.5,
            ),
            segregates_under_bias=True,
        ),
        published=(
            PublishedFigure("new PL peak after illumination", 650.0, "nm", "[P2]"),
            PublishedFigure("new PL peak after illumination", 700.0, "nm", "[P2]"),
        ),
        assumptions=(
            "Fresh PL 625 nm, FWHM 38 nm; PLQY 5 % at 1 W/cm^2 with k = 1.3 "
            "(free-carrier, trap-limited 3D film).",
            "Segregation up to 85 % of the emission (half at 650 nm, FWHM 30 nm; half at "
            "700 nm, FWHM 34 nm) with a 120 s time constant at 600 W/cm^2 (rate "
            "proportional to excitation density) or at 100 mA/cm^2 in the LED; the parent "
            "band red-shifts up to 8 nm; remixes in the dark with a 1800 s time constant.",
            "LED: peak EQE 1.5 %, T50 2 h at 20 mA/cm^2, n = 1.7.",
        ),
    )
)

_register(
    _nc_preset(
        "nc-hexane",
        "none (hexane)",
        0.009,
        EmissionBand(653.0, 35.0),
        0.819,
        1.0,
        peak_eqe=0.035,
        t50_at_125_ma_cm2_s=2.0 * HOUR_S,
        migration_time_s=600.0,
        brightening_fraction=0.05,
    )
)
_register(
    _nc_preset(
        "nc-methyl-acetate",
        "methyl acetate",
        0.253,
        EmissionBand(638.0, 35.0),
        0.629,
        1.0,
        peak_eqe=0.05,
        t50_at_125_ma_cm2_s=1.5 * HOUR_S,
        migration_time_s=1800.0,
        brightening_fraction=0.15,
    )
)
_register(
    _nc_preset(
        "nc-acetone",
        "acetone",
        0.355,
        EmissionBand(599.0, 32.0),
        0.321,
        1.05,
        peak_eqe=0.012,
        t50_at_125_ma_cm2_s=30.0 * MINUTE_S,
        migration_time_s=400.0,
        brightening_fraction=0.0,
    )
)
_register(
    _nc_preset(
        "nc-butanol",
        "1-butanol",
        0.552,
        EmissionBand(533.0, 34.0),
        0.101,
        1.10,
        peak_eqe=0.004,
        t50_at_125_ma_cm2_s=10.0 * MINUTE_S,
        migration_time_s=300.0,
        brightening_fraction=0.0,
    )
)


def get_preset(name: str) -> Preset:
    """Return the preset of that name.

    Parameters
    ----------
    name
        One of the keys of `PRESETS`.

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.
    """
    try:
        return PRESETS[name]
    except KeyError:
        valid = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown preset {name!r}; valid presets: {valid}") from None
