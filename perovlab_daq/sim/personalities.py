"""Personalities of the simulated instruments: the layer between a pyvisa-sim device and the World.

A :class:`Personality` wraps one YAML-built ``pyvisa_sim`` device: it answers the dynamic
queries (``:READ?``, ``READ?``, ``MEAS:POW?``, ``SPEC:DATA?``, ...) from the physics world
and pushes setter changes into it, while the YAML keeps the static replies, the
validation and the error queues. One subclass per instrument family: source meters on the
LED and on the photodiode, picoammeters, the OBIS laser, the power meter, the
spectrometer, the filter wheel, the sample stage and the pixel switch.
:mod:`perovlab_daq.sim.catalogue` binds each driver to its YAML and personality;
:mod:`perovlab_daq.sim.visalib` installs them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Protocol

from pyvisa_sim.component import NoResponse
from pyvisa_sim.devices import Device

from perovlab_daq.sim.personalities_scpi import ScpiSpelling

log = logging.getLogger(__name__)


class BenchHost(Protocol):
    """What a personality needs from its library: the world and the instrument clock."""

    world: Any

    def elapsed_s(self) -> float:
        """Return the seconds since the library started (instrument timestamps)."""
        ...


class Personality:
    """Dynamic behaviour of one simulated instrument on top of its YAML device.

    Parameters
    ----------
    library : BenchHost
        Owning library (clock, world): a :class:`~perovlab_daq.sim.visalib.SimBenchLibrary`.
    device : pyvisa_sim.devices.Device
        The YAML-built device this personality wraps.
    """

    #: Short forms of the nodes the instrument's manual brackets as optional (e.g. ``STAT``
    #: of ``:OUTPut[:STATe]``); None for an instrument that is not SCPI: its messages must
    #: then be spelled exactly as in the YAML (see :mod:`.personalities_scpi`).
    SCPI_DEFAULT_NODES: tuple[str, ...] | None = None
    #: Fixed queries answered from the world that the YAML may not list.
    DYNAMIC_QUERIES: tuple[str, ...] = ()

    def __init__(self, library: BenchHost, device: Device):
        self.library = library
        self.device = device
        self.spelling = (
            None
            if self.SCPI_DEFAULT_NODES is None
            else ScpiSpelling(device, self.SCPI_DEFAULT_NODES, self.DYNAMIC_QUERIES)
        )

    @property
    def world(self) -> Any:
        """Get the physics world (or None: YAML-only behaviour)."""
        return self.library.world

    def prop(self, name: str) -> Any:
        """Return the current value of a YAML property.

        Parameters
        ----------
        name : str
            Property name in the YAML.

        Returns
        -------
        object
            Its value (typed per the YAML specs).
        """
        return self.device._properties[name].get_value()

    def set_prop(self, name: str, value: str) -> None:
        """Set a YAML property as the instrument itself would (validated by its specs).

        Parameters
        ----------
        name : str
            Property name in the YAML.
        value : str
            New value as text.
        """
        self.device._properties[name].set_value(value)

    def match(self, original: Callable[[bytes], Any], query: bytes) -> Any:
        """Answer one message: world first for dynamic queries, YAML otherwise.

        Parameters
        ----------
        original : callable
            The device's own ``_match``.
        query : bytes
            One message without termination.

        Returns
        -------
        bytes, NoResponse or None
            As ``Device._match`` (None means "no match", i.e. a command error).
        """
        text = query.decode("ascii", errors="replace").strip()
        if self.spelling is not None:  # any legal SCPI spelling -> the YAML's
            spelled = self.spelling.rewrite(text)
            if spelled != text:
                text, query = spelled, spelled.encode("ascii")
        if self.world is not None:
            dynamic = self.dynamic_reply(text)
            if dynamic is not None:
                return dynamic if dynamic is NoResponse else dynamic.encode("ascii")
        response = original(query)
        if self.world is not None and response is not None and not text.endswith("?"):
            self.sync_world()
        return self.post_process(text, response)

    def dynamic_reply(self, text: str) -> Any:
        """Return the world-computed reply to ``text``, or None to defer to the YAML."""
        return None

    def sync_world(self) -> None:
        """Push the device settings into the world after a setter."""

    def post_process(self, text: str, response: Any) -> Any:
        """Adjust a YAML reply before it is queued (default: unchanged)."""
        return response


def _e(value: float) -> str:
    return f"{value:+.6E}"


class Smu2400Personality(Personality):
    """Keithley 2400 reply format shared by its two roles (on the LED, on the photodiode)."""

    READ_QUERIES = (":READ?", ":MEASURE:CURRENT?", ":MEASURE:VOLTAGE?")
    DYNAMIC_QUERIES = READ_QUERIES
    #: 2400 manual, SCPI tables: ``:OUTPut[1][:STATe]``, ``[:SENSe[1]]:CURRent[:DC]:...``,
    #: ``:SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]``.
    SCPI_DEFAULT_NODES = ("STAT", "SENS", "DC", "LEV", "IMM", "AMPL")

    def read_reply(self, voltage_v: float, current_a: float, in_compliance: bool) -> str:
        """Return a 2400 ``:READ?`` reply: voltage, current, resistance, time, status.

        Parameters
        ----------
        voltage_v, current_a
            The measured pair.
        in_compliance
            Whether the compliance limit holds the source (status bit 8).
        """
        status = 8 if in_compliance else 0
        return ",".join(
            [_e(voltage_v), _e(current_a), _e(9.91e37), _e(self.library.elapsed_s()), _e(status)]
        )


class SmuLedPersonality(Smu2400Personality):
    """Keithley 2400 on the LED: setters -> ``world.set_drive``; ``:READ?`` -> ``smu_reading``."""

    def sync_world(self) -> None:  # noqa: D102 - documented on the base class
        mode = str(self.prop("source_function"))
        if mode == "VOLT":
            level, compliance = self.prop("source_voltage"), self.prop("compliance_current")
        else:
            level, compliance = self.prop("source_current"), self.prop("compliance_voltage")
        self.world.set_drive(mode, float(level), abs(float(compliance)), bool(self.prop("output")))

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        if text not in self.READ_QUERIES:
            return None
        reading = self.world.smu_reading()
        return self.read_reply(reading.voltage_v, reading.current_a, reading.in_compliance)


class Smu2450LedPersonality(SmuLedPersonality):
    """Keithley 2450 on the LED: buffer ``:READ?`` and limit-trip queries from the world."""

    READ_QUERY = ':READ? "defbuffer1", SOUR, READ, REL'
    TRIP_QUERIES = (":SOUR:VOLT:ILIM:TRIP?", ":SOUR:CURR:VLIM:TRIP?")
    DYNAMIC_QUERIES = (READ_QUERY, *TRIP_QUERIES)
    #: 2450 reference manual: ``:OUTPut[1][:STATe]``, ``[:SENSe[1]]:CURRent[:DC]:RANGe[:UPPer]``,
    #: ``:SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]``, ``...:ILIMit[:LEVel]``.
    SCPI_DEFAULT_NODES = ("STAT", "SENS", "DC", "UPP", "LEV", "IMM", "AMPL")

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        if text in self.TRIP_QUERIES:
            return "1" if self.world.smu_reading().in_compliance else "0"
        if text != self.READ_QUERY:
            return None
        reading = self.world.smu_reading()
        if str(self.prop("source_function")) == "VOLT":
            source, measured = reading.voltage_v, reading.current_a
        else:
            source, measured = reading.current_a, reading.voltage_v
        return ",".join([_e(source), _e(measured), _e(self.library.elapsed_s())])


class SmuPhotodetectorPersonality(Smu2400Personality):
    """Keithley 2400 at 0 V on the photodiode: ``:READ?`` -> ``world.photodiode_current_a``."""

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        if text not in self.READ_QUERIES:
            return None
        compliance = abs(float(self.prop("compliance_current")))
        current = self.world.photodiode_current_a() if int(self.prop("output")) else 0.0
        in_compliance = abs(current) > compliance
        if in_compliance:
            current = compliance if current > 0 else -compliance
        return self.read_reply(float(self.prop("source_voltage")), current, in_compliance)


class PicoammeterPersonality(Personality):
    """Keithley 6485/6487: ``READ?`` -> ``world.photodiode_current_a``, overflow 9.9e37."""

    DYNAMIC_QUERIES = ("READ?",)
    #: 6485/6487 manuals: ``[:SENSe[1]]:CURRent[:DC]:RANGe[:UPPer]``,
    #: ``:SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]``; ``:SOURce:VOLTage:STATe`` (the
    #: 6487's source output) is not optional there, so STAT is not a default node.
    SCPI_DEFAULT_NODES = ("SENS", "DC", "UPP", "LEV", "IMM", "AMPL")

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        if text != "READ?":
            return None
        if str(self.prop("zero_check")) == "ON":
            current = 0.0
        else:
            current = float(self.world.photodiode_current_a())
            auto = str(self.prop("current_range_auto")) == "ON"
            full_scale = 0.021 if auto else 1.05 * float(self.prop("current_range"))
            if abs(current) > full_scale:
                current = 9.9e37
        return ",".join([_e(current), _e(self.library.elapsed_s()), _e(0.0)])

    def post_process(self, text: str, response: Any) -> Any:  # noqa: D102
        # A fixed range switches auto-range off, as on the instrument.
        if response is not None and text.startswith("CURR:RANG "):
            self.set_prop("current_range_auto", "OFF")
        return response


class ObisPersonality(Personality):
    """Coherent OBIS: setpoint/emission -> ``world.set_laser``; power, limits, interlock from it.

    ``SYST:CDRH`` and the simulator settings ``cdrh_delay_s`` and ``power_rise_time_s``
    of the YAML go to ``world.set_laser_start_up``: light starts after the CDRH delay and
    the power rises to the setpoint (:class:`perovlab_daq.sim.beam.LaserPath`).

    SCPI spelling (``SOURce:AM:STATe?`` = ``SOUR:AM:STAT?``) without default nodes: the
    OBIS tells ``SOUR:POW:LEV?`` (output power) from ``SOUR:POW:LEV:IMM:AMPL?`` (setpoint).
    """

    SCPI_DEFAULT_NODES: tuple[str, ...] = ()

    def dynamic_reply(self, text: str) -> Any:  # noqa: D102
        world = self.world
        if text == "SOUR:POW:LEV?":
            return self._ok(f"{world.laser_output_w():.5f}")
        if text == "SYST:INF:WAV?":
            return self._ok(f"{world.laser_wavelength_nm:.0f}")
        if text == "SOUR:POW:LIM:HIGH?":
            return self._ok(f"{world.laser_max_power_w:.5f}")
        if text == "SOUR:POW:LIM:LOW?":
            return self._ok(f"{world.laser_min_power_w:.5f}")
        if text == "SYST:LOCK?":
            return self._ok("ON" if world.interlock_closed else "OFF")
        if text.startswith("SOUR:POW:LEV:IMM:AMPL "):
            try:
                requested = float(text.split()[-1])
            except ValueError:
                return "ERR-102"
            if requested > world.laser_max_power_w:
                return "ERR-102"
        return None

    def _ok(self, reply: str) -> str:
        return reply + "\r\nOK" if self._handshake else reply

    @property
    def _handshake(self) -> bool:
        return str(self.prop("handshake")) == "ON"

    def sync_world(self) -> None:  # noqa: D102
        # Start-up behaviour first, so that switching emission on starts the CDRH delay.
        # A world that does not model the start-up (a test double) gets light at once.
        start_up = getattr(self.world, "set_laser_start_up", None)
        if start_up is not None:
            start_up(
                str(self.prop("cdrh")) == "ON",
                float(self.prop("cdrh_delay_s")),
                float(self.prop("power_rise_time_s")),
            )
        self.world.set_laser(float(self.prop("power_setpoint")), str(self.prop("emission")) == "ON")

    def post_process(self, text: str, response: Any) -> Any:  # noqa: D102
        if self._handshake or not isinstance(response, bytes):
            return response
        if response == b"OK":
            return NoResponse
        return response.removesuffix(b"\r\nOK")


class PowerMeterPersonality(Personality):
    """Thorlabs PM100: ``MEAS:POW?`` -> ``world.power_meter_w(correction wavelength)``."""

    DYNAMIC_QUERIES = ("MEAS:POW?",)
    SCPI_DEFAULT_NODES: tuple[str, ...] = ()

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        if text != "MEAS:POW?":
            return None
        return f"{self.world.power_meter_w(float(self.prop('wavelength'))):.6E}"


class SpectrometerPersonality(Personality):
    """``SPEC:*``: wavelengths, counts and saturation level from the world."""

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        world = self.world
        if text == "SPEC:WAV?":
            return ",".join(f"{w:.4f}" for w in world.spectrometer_wavelengths_nm())
        if text == "SPEC:PIX?":
            return str(len(world.spectrometer_wavelengths_nm()))
        if text == "SPEC:SAT?":
            return f"{float(world.spectrometer_saturation_counts):.0f}"
        # The detector's own calibration, as a real unit stores it in its EEPROM: the
        # coefficients must describe the simulated detector, not a fixed table.
        if text == "SPEC:NLIN?":
            return ",".join(f"{c:.6e}" for c in world.spectrometer_nonlinearity_coefficients)
        if text == "SPEC:EDARK?":
            return ",".join(str(p) for p in world.spectrometer_electric_dark_pixels)
        if text == "SPEC:DATA?":
            integration_s = int(self.prop("integration_time_us")) * 1e-6
            return ",".join(f"{c:.0f}" for c in world.spectrometer_counts(integration_s))
        return None


class FilterWheelPersonality(Personality):
    """Thorlabs FW102C: echoes every command (as the wheel does); ``pos=n`` -> world."""

    def match(self, original: Callable[[bytes], Any], query: bytes) -> Any:  # noqa: D102
        response = super().match(original, query)
        if response is None:
            response = b"Command error CMD_NOT_DEFINED\r>"
        if response is NoResponse:
            response = b">"
        return query + b"\r" + response

    def sync_world(self) -> None:  # noqa: D102
        self.world.set_filter_position(int(self.prop("position")))


class SampleStagePersonality(Personality):
    """Simulated PLQY stage: ``POS A|B|C|STAGE`` -> ``world.set_sample_position``."""

    def sync_world(self) -> None:  # noqa: D102
        pos = str(self.prop("position"))
        self.world.set_sample_position("stage" if pos == "STAGE" else pos)


class SwitchPersonality(Personality):
    """Keithley 7001 pixel switch: keeps the closed channels; tells the world which are closed.

    ``:ROUT:CLOS (@1!1,1!2)`` closes, ``:ROUT:OPEN (@...)`` / ``:ROUT:OPEN ALL`` open and
    ``:ROUT:CLOS?`` answers the closed list (``(@)`` when none). A malformed channel list
    is a command error (SCPI error queue), as on the instrument.
    """

    _CHANNEL_LIST = re.compile(r"^\(@\s*(\d+!\d+(?:!\d+)?(?:\s*,\s*\d+!\d+(?:!\d+)?)*)\s*\)$")

    def __init__(self, library: BenchHost, device: Device):
        super().__init__(library, device)
        # Power-on setup: what the world says is wired (its first pixel), else all open.
        self.closed: list[str] = list(self.world.closed_channels) if self.world else []

    def match(self, original: Callable[[bytes], Any], query: bytes) -> Any:  # noqa: D102
        text = query.decode("ascii", errors="replace").strip().upper()
        if not text.startswith(":ROUT:"):
            return original(query)
        if text == ":ROUT:CLOS?":
            return ("(@" + ",".join(self.closed) + ")").encode("ascii")
        if text == ":ROUT:OPEN ALL":
            self._set([])
            return NoResponse
        verb, _, argument = text.partition(" ")
        found = self._CHANNEL_LIST.match(argument.strip())
        if verb not in (":ROUT:CLOS", ":ROUT:OPEN") or found is None:
            return None
        channels = [c.strip() for c in found.group(1).split(",")]
        if verb == ":ROUT:CLOS":
            self._set(self.closed + [c for c in channels if c not in self.closed])
        else:
            self._set([c for c in self.closed if c not in channels])
        return NoResponse

    def _set(self, closed: list[str]) -> None:
        self.closed = closed
        if self.world is not None:
            self.world.set_switch_closed(tuple(closed))
