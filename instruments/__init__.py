"""Instrument drivers, one per bench role (source meter, photodetector, laser, spectrometer...).

Each driver is a pymeasure ``Instrument`` (or, for non-VISA devices, a narrow typed facade)
and runs unchanged on real hardware and on the simulated bench. :data:`DRIVERS` maps the
driver name used in bench files to ``"module:Class"`` (``docs/architecture.md`` §2);
:func:`load_driver` imports one on demand so optional back ends cost nothing until used.
"""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

#: Bench-file driver name -> "module:Class".
DRIVERS: dict[str, str] = {
    "keithley2400": "perovlab_daq.instruments.keithley2400:Keithley2400",
    "keithley2450": "perovlab_daq.instruments.keithley2450:Keithley2450",
    "keithley6485": "perovlab_daq.instruments.keithley6485:Keithley6485",
    "keithley6487": "perovlab_daq.instruments.keithley6485:Keithley6487",
    "smu-photodetector": "perovlab_daq.instruments.photodetector:SourceMeterPhotodetector",
    "obis": "perovlab_daq.instruments.obis:CoherentObis",
    "pm100d": "perovlab_daq.instruments.pm100:ThorlabsPM100",
    "visa-spectrometer": "perovlab_daq.instruments.spectrometer:VisaSpectrometer",
    "seabreeze": "perovlab_daq.instruments.spectrometer:OceanSpectrometer",
    "fw102c": "perovlab_daq.instruments.fw102c:FW102C",
    "sim-sample-stage": "perovlab_daq.instruments.sample_stage:SampleStage",
    "keithley7001": "perovlab_daq.instruments.keithley7001:Keithley7001",
    "keithley2000": "perovlab_daq.instruments.keithley2000:Keithley2000",
    "keithley2600a": "perovlab_daq.instruments.keithley2600:Keithley2600Smu",
    "keithley2600b": "perovlab_daq.instruments.keithley2600:Keithley2600SmuB",
}

#: Drivers that talk through VISA (and therefore have a simulator YAML in ``sim_configs``).
VISA_DRIVERS: frozenset[str] = frozenset(DRIVERS) - {"seabreeze"}


def load_driver(name: str) -> type:
    """Import and return the driver class registered under ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`DRIVERS`.

    Returns
    -------
    type
        The driver class.

    Raises
    ------
    KeyError
        If ``name`` is not registered (the message lists the known names).
    """
    try:
        target = DRIVERS[name]
    except KeyError:
        raise KeyError(f"unknown driver {name!r}; known: {sorted(DRIVERS)}") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
