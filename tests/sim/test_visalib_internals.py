"""Fail loudly if the pyvisa-sim / PyVISA internals SimBenchLibrary relies on change."""

import inspect
from importlib.metadata import version

import pyvisa_sim.devices as devices
import pyvisa_sim.highlevel as highlevel
import pyvisa_sim.parser as parser
import pyvisa_sim.sessions.session as session
from pyvisa.highlevel import VisaLibraryBase

from perovlab_daq.sim.visalib import SimBenchLibrary


def params(func):
    return list(inspect.signature(func).parameters)


def test_pinned_versions():
    assert version("pyvisa-sim") == "0.7.1"
    assert version("pyvisa") == "1.16.2"


def test_device_internals():
    device = parser.get_device("d", {"dialogues": [{"q": "A?", "r": "1"}]}, None, {})
    assert params(device._match) == ["query"]
    for name in ("_output_buffers", "_properties", "_error_queues", "_response_eom"):
        assert hasattr(device, name), name
    assert device._match(b"A?") == b"1"
    assert params(devices.Device.write) == ["self", "data"]
    assert params(devices.Devices.add_device) == ["self", "resource_name", "device"]


def test_error_queue_and_property_internals():
    queue = devices.ErrorQueue({"q": "SYST:ERR?", "default": "0"})
    assert isinstance(queue._queue, list)
    assert hasattr(parser, "get_device") and params(parser.get_device) == [
        "name",
        "device_dict",
        "loader",
        "resource_dict",
    ]
    assert parser.SPEC_VERSION == "1.1"


def test_library_and_session_internals():
    assert issubclass(SimBenchLibrary, highlevel.SimVisaLibrary)
    assert params(highlevel.SimVisaLibrary.open)[:3] == ["self", "session", "resource_name"]
    assert params(highlevel.SimVisaLibrary.read) == ["self", "session", "count"]
    assert params(highlevel.SimVisaLibrary.write) == ["self", "session", "data"]
    assert "_init" in vars(highlevel.SimVisaLibrary)
    assert params(VisaLibraryBase.__new__) == ["cls", "library_path"]
    assert hasattr(session.Session, "get_attribute")
    assert "device" in session.Session.__annotations__
