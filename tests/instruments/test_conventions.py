"""Walk every registered driver and enforce the conventions (adapter, docstrings, sim YAML)."""

import importlib.resources
import inspect
import re

import pytest
import yaml
from perovlab_daq.instruments import DRIVERS, VISA_DRIVERS, load_driver

from perovlab_daq.sim.visalib import SIM_INSTRUMENTS

VERBS = ("Control", "Get", "Set", "Measure", "Return")
FACADE_SMU = [
    "apply_voltage_source",
    "apply_current_source",
    "read_all",
    "shutdown",
    "snapshot",
    "identity",
    "source_voltage",
    "source_current",
    "output_enabled",
]
FACADE = {
    "keithley2400": [
        "apply_voltage_source",
        "apply_current_source",
        "read_all",
        "shutdown",
        "snapshot",
        "identity",
        "source_voltage",
        "source_current",
        "output_enabled",
    ],
    "keithley2450": [
        "apply_voltage_source",
        "apply_current_source",
        "read_all",
        "shutdown",
        "snapshot",
        "identity",
        "source_voltage",
        "source_current",
        "output_enabled",
    ],
    "keithley6485": ["configure", "read_current", "shutdown", "snapshot", "identity"],
    "keithley6487": ["configure", "read_current", "shutdown", "snapshot", "identity"],
    "smu-photodetector": ["configure", "read_current", "shutdown", "snapshot", "identity"],
    "obis": [
        "wavelength_nm",
        "power_limits_w",
        "power_setpoint_w",
        "power_w",
        "emission_enabled",
        "interlock_closed",
        "fault_code",
        "shutdown",
        "snapshot",
        "identity",
    ],
    "pm100d": [
        "wavelength_nm",
        "averaging_count",
        "power_w",
        "sensor_id",
        "snapshot",
        "identity",
        "shutdown",
    ],
    "visa-spectrometer": [
        "model",
        "serial_number",
        "pixels",
        "wavelengths",
        "intensities",
        "integration_time_micros",
        "integration_time_micros_limits",
        "max_intensity",
        "nonlinearity_coefficients",
        "close",
        "snapshot",
        "identity",
        "shutdown",
    ],
    "seabreeze": [
        "model",
        "serial_number",
        "pixels",
        "wavelengths",
        "intensities",
        "integration_time_micros",
        "integration_time_micros_limits",
        "max_intensity",
        "nonlinearity_coefficients",
        "close",
        "snapshot",
        "identity",
        "shutdown",
    ],
    "fw102c": ["position", "snapshot", "identity", "shutdown"],
    "sim-sample-stage": ["position", "snapshot", "identity", "shutdown"],
    "keithley7001": ["select", "closed_channels", "open_all", "snapshot", "identity", "shutdown"],
    "keithley2000": ["configure_rtd", "read_temperature_c", "snapshot", "identity", "shutdown"],
    "keithley2600a": FACADE_SMU,
    "keithley2600b": FACADE_SMU,
}


def own_properties(cls):
    """Properties defined in this project's modules (pymeasure's own are tested upstream)."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("perovlab_daq.instruments"):
            continue
        for name, attr in vars(klass).items():
            if isinstance(attr, property) and not name.startswith("_"):
                yield klass, name, attr


def test_registry_covers_the_architecture_table():
    assert set(FACADE) == set(DRIVERS)
    for name, target in DRIVERS.items():
        assert re.fullmatch(r"perovlab_daq\.instruments\.\w+:\w+", target), name


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_constructor_accepts_adapter_and_name(name):
    params = inspect.signature(load_driver(name).__init__).parameters
    assert list(params)[1] == "adapter"
    assert "name" in params


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_property_docstrings_start_with_a_verb(name):
    cls = load_driver(name)
    checked = 0
    for klass, prop_name, prop in own_properties(cls):
        doc = inspect.cleandoc(prop.__doc__ or "")
        assert doc.split(" ", 1)[0] in VERBS, f"{klass.__name__}.{prop_name}: {doc[:40]!r}"
        checked += 1
    assert checked, f"{cls.__name__} has no documented properties"


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_facade_members_exist(name):
    cls = load_driver(name)
    missing = [m for m in FACADE[name] if not hasattr(cls, m)]
    assert not missing


@pytest.mark.parametrize("name", sorted(VISA_DRIVERS))
def test_visa_driver_has_a_simulator_yaml(name):
    recipe = SIM_INSTRUMENTS[name]
    resource = importlib.resources.files("perovlab_daq.sim_configs").joinpath(recipe.yaml)
    data = yaml.load(resource.read_text(), Loader=yaml.BaseLoader)
    assert data["spec"] == "1.1"
    assert recipe.device in data["devices"]
    assert recipe.resource in data["resources"] or recipe.yaml == "keithley2400.yaml"


def test_every_sim_yaml_belongs_to_a_driver():
    files = {
        p.name
        for p in importlib.resources.files("perovlab_daq.sim_configs").iterdir()
        if p.name.endswith(".yaml") and p.name not in {"bench_sim.yaml", "demo_recipe.yaml"}
    }
    assert files == {r.yaml for r in SIM_INSTRUMENTS.values()}


@pytest.mark.parametrize("name", sorted(VISA_DRIVERS))
def test_yaml_never_uses_plain_error_strings_for_scpi(name):
    """`error: ERROR` shifts replies; SCPI instruments must use an error_queue."""
    recipe = SIM_INSTRUMENTS[name]
    text = importlib.resources.files("perovlab_daq.sim_configs").joinpath(recipe.yaml).read_text()
    device = yaml.load(text, Loader=yaml.BaseLoader)["devices"][recipe.device]
    error = device.get("error", {})
    assert isinstance(error, dict)
    if name not in ("obis", "fw102c"):  # these two really answer errors in-band
        assert error.get("error_queue")
