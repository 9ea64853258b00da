"""Catalogue of the simulated instruments: which YAML, device, resource and personality per driver.

`SIM_INSTRUMENTS` maps each driver name of the bench file (``instruments.DRIVERS``) to a
`SimInstrument` recipe; `load_sim_yaml` reads a pyvisa-sim YAML from a path or from the
``sim_configs`` package (with :mod:`importlib.resources`, so it works from a wheel).
"""

from __future__ import annotations

import importlib.resources
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pyvisa_sim import parser

from perovlab_daq.sim.personalities import (
    FilterWheelPersonality,
    ObisPersonality,
    Personality,
    PicoammeterPersonality,
    PowerMeterPersonality,
    SampleStagePersonality,
    Smu2450LedPersonality,
    SmuLedPersonality,
    SmuPhotodetectorPersonality,
    SpectrometerPersonality,
    SwitchPersonality,
)
from perovlab_daq.sim.thermometer import ThermometerPersonality
from perovlab_daq.sim.tsp import TspSmuBPersonality, TspSmuPersonality

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimInstrument:
    """How the bench simulates one driver: YAML file, device in it, default resource, behaviour.

    Attributes
    ----------
    yaml : str
        File name in the ``sim_configs`` package.
    device : str
        Device name inside that YAML.
    resource : str
        Default VISA resource (``docs/architecture.md`` §2).
    personality : type
        :class:`Personality` subclass adding the world-driven behaviour.
    """

    yaml: str
    device: str
    resource: str
    personality: type[Personality]


#: Driver name (bench file, ``instruments.DRIVERS``) -> simulation recipe.
SIM_INSTRUMENTS: dict[str, SimInstrument] = {
    "keithley2400": SimInstrument(
        "keithley2400.yaml", "keithley2400", "GPIB0::24::INSTR", SmuLedPersonality
    ),
    "keithley2450": SimInstrument(
        "keithley2450.yaml",
        "keithley2450",
        "USB0::0x05E6::0x2450::04096331::INSTR",
        Smu2450LedPersonality,
    ),
    "smu-photodetector": SimInstrument(
        "keithley2400.yaml", "keithley2400", "GPIB0::25::INSTR", SmuPhotodetectorPersonality
    ),
    "keithley6485": SimInstrument(
        "keithley6485.yaml", "keithley6485", "GPIB0::14::INSTR", PicoammeterPersonality
    ),
    "keithley6487": SimInstrument(
        "keithley6487.yaml", "keithley6487", "GPIB0::22::INSTR", PicoammeterPersonality
    ),
    "obis": SimInstrument("obis.yaml", "obis", "ASRL1::INSTR", ObisPersonality),
    "pm100d": SimInstrument(
        "pm100d.yaml", "pm100d", "USB0::0x1313::0x8078::P0012345::INSTR", PowerMeterPersonality
    ),
    "visa-spectrometer": SimInstrument(
        "visa_spectrometer.yaml",
        "visa_spectrometer",
        "TCPIP0::127.0.0.1::5025::SOCKET",
        SpectrometerPersonality,
    ),
    "fw102c": SimInstrument("fw102c.yaml", "fw102c", "ASRL2::INSTR", FilterWheelPersonality),
    "sim-sample-stage": SimInstrument(
        "sample_stage.yaml", "sample_stage", "ASRL3::INSTR", SampleStagePersonality
    ),
    "keithley7001": SimInstrument(
        "keithley7001.yaml", "keithley7001", "GPIB0::7::INSTR", SwitchPersonality
    ),
    "keithley2000": SimInstrument(
        "keithley2000.yaml", "keithley2000", "GPIB0::16::INSTR", ThermometerPersonality
    ),
    "keithley2600a": SimInstrument(
        "keithley2600.yaml", "keithley2600", "GPIB0::26::INSTR", TspSmuPersonality
    ),
    # A default address of its own, so a library serving every driver at its default
    # resource has both; in a bench file smua and smub share one instrument's address.
    "keithley2600b": SimInstrument(
        "keithley2600.yaml", "keithley2600", "GPIB0::27::INSTR", TspSmuBPersonality
    ),
}


def load_sim_yaml(ref: str | Path) -> dict[str, Any]:
    """Load one pyvisa-sim YAML from a path or from the ``sim_configs`` package.

    Parameters
    ----------
    ref : str or Path
        A path to an existing file, or a file name (with or without ``.yaml``) in the
        ``sim_configs`` package (resolved with :mod:`importlib.resources`).

    Returns
    -------
    dict
        The YAML, loaded as pyvisa-sim does (every scalar a string).

    Raises
    ------
    ValueError
        If the file has no ``spec`` or a spec newer than the installed pyvisa-sim reads.
    FileNotFoundError
        If neither a file nor a package resource of that name exists.
    """
    path = Path(ref)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        name = str(ref) if str(ref).endswith((".yaml", ".yml")) else f"{ref}.yaml"
        resource = importlib.resources.files("perovlab_daq.sim_configs").joinpath(name)
        if not resource.is_file():
            raise FileNotFoundError(f"no simulator YAML {ref!r} (file or sim_configs/{name})")
        text = resource.read_text(encoding="utf-8")
    data = yaml.load(text, Loader=yaml.BaseLoader)
    spec = tuple(int(p) for p in str((data or {}).get("spec", "0")).split("."))
    if spec[0] != parser.SPEC_VERSION_TUPLE[0] or spec > parser.SPEC_VERSION_TUPLE:
        raise ValueError(f"{ref}: spec {spec} not readable by pyvisa-sim {parser.SPEC_VERSION}")
    return data
