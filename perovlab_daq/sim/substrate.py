"""The simulated multi-pixel substrate: N LED pixels with a seeded spread, some of them faulty.

A real substrate carries several pixels made in one run: they share the stack but differ
a little (film thickness, contact area, defects). `build_substrate` draws, for every pixel
but the first, a spread of the preset's published figures around the preset itself:

==========================  ===============================================
figure                      spread (standard deviation, clipped at 2 sigma)
==========================  ===============================================
peak EQE                    5 % relative (`PixelSpread.eqe_relative`)
turn-on voltage             0.05 V (shift of the junction voltage)
T50 (ageing constant)       10 % relative
EL peak                     1 nm
==========================  ===============================================

The first pixel is the preset's device as published (the reference pixel), so a bench
without a switch, or a run on pixel ``1``, measures what the preset documents. A pixel
can be faulty: ``short`` (a low ohmic resistance, `SHORT_RESISTANCE_OHM`: the current
runs to compliance, no light) or ``open`` (no current). The draws use their own
generator (seeded from the world seed), so the noise sequence of the world is unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from perovlab_daq.sim.optics import BenchSetup
from perovlab_daq.sim.pixel import SHORT_RESISTANCE_OHM, LedPixel
from perovlab_daq.sim.presets import Preset

log = logging.getLogger(__name__)

__all__ = [
    "PIXEL_FAULTS",
    "SHORT_RESISTANCE_OHM",
    "PixelFault",
    "PixelSpread",
    "PixelTruth",
    "CHANNEL_SPREAD",
    "build_substrate",
    "channel_device_preset",
    "pixel_preset",
]

PixelFault = Literal["short", "open"]
PIXEL_FAULTS: tuple[str, ...] = ("short", "open")
#: Salt mixed into the world seed for the substrate draws (independent of the noise).
_SPREAD_SALT: int = 19


@dataclass(frozen=True)
class PixelSpread:
    """Standard deviations of the pixel-to-pixel spread (draws are clipped at 2 sigma)."""

    eqe_relative: float = 0.05
    turn_on_v: float = 0.05
    t50_relative: float = 0.10
    peak_nm: float = 1.0


@dataclass(frozen=True)
class PixelTruth:
    """What one simulated pixel was made as (tests and docs only; never for procedures).

    Attributes
    ----------
    name
        Pixel name (as in the bench's pixel map).
    channel
        Switch channel it is wired to ("" without a switch).
    fault
        "short", "open" or "" (working).
    peak_eqe
        Maximum EQE of the pixel's efficiency curve (fraction).
    turn_on_shift_v
        Shift of its J-V curve against the preset (V).
    t50_factor
        Its T50 relative to the preset's at the same luminance.
    el_peak_nm
        Its fresh EL peak (nm).
    """

    name: str
    channel: str
    fault: str
    peak_eqe: float
    turn_on_shift_v: float
    t50_factor: float
    el_peak_nm: float


def _draw(rng: np.random.Generator, sigma: float) -> float:
    return float(np.clip(rng.standard_normal(), -2.0, 2.0) * sigma)


def pixel_preset(preset: Preset, eqe: float, shift_v: float, t50: float, peak: float) -> Preset:
    """Return ``preset`` with its LED's peak EQE, junction voltage, T50 and EL peak moved.

    Parameters
    ----------
    preset
        The nominal sample.
    eqe, t50
        Relative changes of the peak EQE and of the T50 reference (0 = unchanged).
    shift_v
        Shift of the junction voltage at the reference current density (V).
    peak
        Shift of the EL peak (nm).
    """
    led = preset.led
    changed = dataclasses.replace(
        led,
        el_band=dataclasses.replace(led.el_band, peak_nm=led.el_band.peak_nm + peak),
        diode=dataclasses.replace(
            led.diode,
            junction_voltage_at_reference_v=led.diode.junction_voltage_at_reference_v + shift_v,
        ),
        efficiency=dataclasses.replace(
            led.efficiency, peak_eqe=min(0.99, led.efficiency.peak_eqe * (1.0 + eqe))
        ),
        ageing=dataclasses.replace(
            led.ageing, t50_reference_s=led.ageing.t50_reference_s * (1.0 + t50)
        ),
    )
    return dataclasses.replace(preset, led=changed)


#: Device-to-device spread of a rack's channels (each channel its own device). The T50
#: spread is smaller than a substrate's: the rack's acceptance fits n over six devices.
CHANNEL_SPREAD = PixelSpread(eqe_relative=0.05, turn_on_v=0.05, t50_relative=0.01, peak_nm=0.0)
#: Salt of the channel draws (independent of the substrate draws and of the noise).
_CHANNEL_SALT: int = 23


def channel_device_preset(
    preset: Preset, seed: int, channel: int, spread: PixelSpread = CHANNEL_SPREAD
) -> tuple[Preset, PixelTruth]:
    """Return the device of a rack channel: ``preset`` with a spread drawn for this channel.

    Every channel of a simulated rack is its own device: the draws come from a generator
    seeded by the bench seed and the channel number, so the same seed gives the same rack
    and each channel's device does not depend on which other channels run.

    Parameters
    ----------
    preset
        The nominal sample (with the bench's ``sim.sample`` applied).
    seed
        The bench's ``sim.seed``.
    channel
        Channel number (1, 2, ...).
    spread
        Standard deviations of the draws (clipped at 2 sigma).
    """
    rng = np.random.default_rng([int(seed), _CHANNEL_SALT, int(channel)])
    eqe, shift_v, t50, peak = (
        _draw(rng, spread.eqe_relative),
        _draw(rng, spread.turn_on_v),
        _draw(rng, spread.t50_relative),
        _draw(rng, spread.peak_nm),
    )
    own = pixel_preset(preset, eqe, shift_v, t50, peak)
    truth = PixelTruth(
        name=str(channel),
        channel=str(channel),
        fault="",
        peak_eqe=own.led.efficiency.peak_eqe,
        turn_on_shift_v=shift_v,
        t50_factor=1.0 + t50,
        el_peak_nm=own.led.el_band.peak_nm,
    )
    return own, truth


def build_substrate(
    preset: Preset,
    setup: BenchSetup,
    names: Sequence[str],
    *,
    seed: int,
    channels: Mapping[str, str] | None = None,
    faults: Mapping[str, str] | None = None,
    spread: PixelSpread | None = None,
) -> tuple[dict[str, LedPixel], dict[str, PixelTruth]]:
    """Return the pixels of a substrate (name -> `LedPixel`) and their truth.

    Parameters
    ----------
    preset, setup
        The sample and the bench.
    names
        Pixel names in substrate order; the first is the reference (nominal) pixel.
    seed
        World seed; the spread is drawn from it (same seed, same substrate).
    channels
        Pixel name -> switch channel (recorded in the truth only).
    faults
        Pixel name -> "short" or "open".

    Raises
    ------
    ValueError
        For an unknown fault kind, a fault on a pixel not in ``names``, or no names.
    """
    if not names:
        raise ValueError("a substrate needs at least one pixel")
    spread = spread or PixelSpread()
    faults = dict(faults or {})
    for name, kind in faults.items():
        if name not in names:
            raise ValueError(f"faulty pixel {name!r} is not on the substrate ({list(names)})")
        if kind not in PIXEL_FAULTS:
            raise ValueError(f"pixel {name!r}: fault must be one of {PIXEL_FAULTS}, not {kind!r}")
    rng = np.random.default_rng([int(seed), _SPREAD_SALT])
    pixels: dict[str, LedPixel] = {}
    truths: dict[str, PixelTruth] = {}
    for index, name in enumerate(names):
        draws = [
            _draw(rng, spread.eqe_relative),
            _draw(rng, spread.turn_on_v),
            _draw(rng, spread.t50_relative),
            _draw(rng, spread.peak_nm),
        ]
        if index == 0:
            draws = [0.0, 0.0, 0.0, 0.0]
        eqe, shift_v, t50, peak = draws
        own = pixel_preset(preset, eqe, shift_v, t50, peak)
        fault = faults.get(name, "")
        pixels[name] = LedPixel(own, setup, fault=fault or None)
        truths[name] = PixelTruth(
            name=name,
            channel=(channels or {}).get(name, ""),
            fault=fault,
            peak_eqe=own.led.efficiency.peak_eqe,
            turn_on_shift_v=shift_v,
            t50_factor=1.0 + t50,
            el_peak_nm=own.led.el_band.peak_nm,
        )
    log.debug("substrate of %d pixels (faulty: %s)", len(names), faults or "none")
    return pixels, truths
