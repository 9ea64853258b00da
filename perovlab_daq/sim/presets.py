"""Sample presets of the simulated bench: each is a film (PL) and an LED made from it.

A preset is a frozen dataclass holding every material and device parameter the world
model needs, a one-line description, the published figures it is built to reproduce (with
their source, shown by ``perovlab-daq bench presets``) and the assumptions made where the
papers give no number. The presets themselves are data: one YAML file per paper in
``sim_configs/presets/`` (`PRESET_FILES`), turned into these dataclasses when this module
is imported; a new preset is a block in such a file. Sources (REFERENCE.md):

- [P1] Ye et al., J. Am. Chem. Soc. 144, 12102 (2022): CsPbBr_xI_(3-x) NCs, antisolvents.
- [P2] Liu, Dong et al., J. Am. Chem. Soc. (2021), doi 10.1021/jacs.1c02148: QDs in matrix.

The numbers measured on the simulated bench against each target are in docs/simulator.md.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import logging
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

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


# --- the preset table --------------------------------------------------------------

#: Preset files in the ``sim_configs`` package, read in this order (it is the order of
#: `PRESETS` and of ``perovlab-daq bench presets``).
PRESET_FILES: tuple[str, ...] = ("presets/p2_qd_in_matrix.yaml", "presets/p1_nc_antisolvents.yaml")

#: Units a duration (a field whose name ends in ``_s``) may be written in: "2100 h".
_DURATION_UNITS: dict[str, float] = {"s": 1.0, "min": MINUTE_S, "h": HOUR_S}
#: Lists a preset adds to its template's instead of replacing them.
_APPENDED_LISTS: tuple[str, ...] = ("published", "assumptions")


def _to_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, str):
        number, _, unit = value.strip().partition(" ")
        if unit and where.endswith("_s"):
            if unit not in _DURATION_UNITS:
                raise ValueError(
                    f"{where}: unknown unit {unit!r}; known: {sorted(_DURATION_UNITS)}"
                )
            return float(number) * _DURATION_UNITS[unit]
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {value!r}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    """Turn loaded YAML into the type a dataclass field is annotated with."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [arg for arg in args if arg is not type(None)]
        args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if hint is float:
        return _to_float(value, where)
    if not isinstance(value, hint):
        raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: Any, where: str) -> Any:
    """Build a preset dataclass from a mapping of its fields or a list of them in order."""
    names = [f.name for f in dataclasses.fields(cls)]
    if isinstance(data, list):
        if len(data) > len(names):
            raise ValueError(f"{where}: {cls.__name__} takes at most {len(names)} values")
        data = dict(zip(names, data, strict=False))
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping or a list, got {data!r}")
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)} of {cls.__name__}")
    hints = _field_types(cls)
    return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()})


def _merge(template: dict[str, Any], own: dict[str, Any], top: bool = True) -> dict[str, Any]:
    """Merge a preset's own data over its template (mappings key by key)."""
    merged = dict(template)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value, top=False)
        elif top and key in _APPENDED_LISTS and key in merged:
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def presets_from_yaml(text: str, source: str = "<string>") -> dict[str, Preset]:
    """Build the presets one preset file describes.

    Parameters
    ----------
    text
        The YAML: ``presets:`` (name -> fields of `Preset`, optionally ``template:``
        naming an entry of ``templates:``). Bands are ``[peak_nm, fwhm_nm]``, published
        figures ``[quantity, value, unit, source]``, durations (fields ending in ``_s``)
        a number of s or a text such as ``"2100 h"`` or ``"25 min"``.
    source
        Where the text comes from, for error messages.

    Returns
    -------
    dict
        Preset name -> `Preset`, in file order.

    Raises
    ------
    ValueError
        On an unknown field, template or unit, or a value of the wrong type.
    """
    # The safe loader, in C when libyaml is there (the pure-Python one takes ~0.1 s here).
    if hasattr(yaml, "CSafeLoader"):
        data = yaml.load(text, Loader=yaml.CSafeLoader) or {}
    else:
        data = yaml.load(text, Loader=yaml.SafeLoader) or {}
    templates = data.get("templates", {})
    presets: dict[str, Preset] = {}
    for name, own in data.get("presets", {}).items():
        own = dict(own)
        template_name = own.pop("template", None)
        if template_name is not None:
            if template_name not in templates:
                raise ValueError(f"{source}: preset {name!r}: no template {template_name!r}")
            own = _merge(templates[template_name], own)
        presets[name] = _build(Preset, {"name": name, **own}, f"{source}: {name}")
    return presets


def _load_presets() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}
    for file_name in PRESET_FILES:
        resource = importlib.resources.files("perovlab_daq.sim_configs").joinpath(file_name)
        found = presets_from_yaml(resource.read_text(encoding="utf-8"), f"sim_configs/{file_name}")
        clash = set(found) & set(presets)
        if clash:
            raise ValueError(f"sim_configs/{file_name}: preset(s) {sorted(clash)} defined twice")
        presets.update(found)
    return presets


#: Every preset by name (from `PRESET_FILES`).
PRESETS: dict[str, Preset] = _load_presets()


#: LED ageing parameters a bench file's ``sim.sample`` may override (same meaning as in
#: :class:`AgeingParameters`), with the range each is validated against.
AGEING_OVERRIDES: dict[str, tuple[float, float]] = {
    "acceleration_exponent": (0.5, 5.0),
    "t50_reference_s": (1.0, 1e12),
    "reference_luminance_cd_m2": (1e-3, 1e6),
    "reference_current_density_ma_cm2": (1e-3, 5000.0),
    "stretch_exponent": (0.1, 1.0),
    "brightening_fraction": (0.0, 1.0),
    "brightening_reduced_time": (1e-4, 10.0),
    "voltage_rise_at_t50_v": (0.0, 10.0),
}


def ageing_override(key: str, value: Any) -> float:
    """Check one ``sim.sample`` override; return it as a number (durations may say "2100 h").

    Raises
    ------
    ValueError
        For an unknown key, a value that is not a number or one outside its range; the
        message names the key, the value and the allowed range.
    """
    if key not in AGEING_OVERRIDES:
        raise ValueError(f"unknown entry (allowed: {', '.join(AGEING_OVERRIDES)})")
    low, high = AGEING_OVERRIDES[key]
    number = _to_float(value, key)
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"value {value!r} is outside the allowed range {low:g} to {high:g}")
    return number


def with_ageing(preset: Preset, overrides: Mapping[str, Any]) -> Preset:
    """Return ``preset`` with its LED ageing parameters replaced by ``overrides``.

    A reference luminance replaces the preset's reference current density and vice
    versa (the reference condition is one or the other).

    Parameters
    ----------
    preset
        The sample to start from.
    overrides
        Keys of :data:`AGEING_OVERRIDES` -> values (checked by :func:`ageing_override`).
    """
    if not overrides:
        return preset
    changes: dict[str, Any] = {k: ageing_override(k, v) for k, v in overrides.items()}
    if "reference_luminance_cd_m2" in changes:
        changes.setdefault("reference_current_density_ma_cm2", None)
    elif "reference_current_density_ma_cm2" in changes:
        changes["reference_luminance_cd_m2"] = None
    ageing = replace(preset.led.ageing, **changes)
    return replace(preset, led=replace(preset.led, ageing=ageing))


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
