"""Simulated OBIS start-up: CDRH delay after SOUR:AM:STAT ON, then a power rise (fake clock)."""

import math
from pathlib import Path

import pytest
from perovlab_daq.instruments.obis import CoherentObis

from perovlab_daq.sim.beam import LaserPath
from perovlab_daq.sim.catalogue import load_sim_yaml
from perovlab_daq.sim.optics import BenchSetup
from perovlab_daq.sim.visalib import SimBenchLibrary
from perovlab_daq.sim.world import World

LASER = "ASRL1::INSTR"


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_beam_is_dark_during_the_cdrh_delay_then_rises_with_its_time_constant():
    clock = FakeClock()
    beam = LaserPath(BenchSetup(), clock=clock)
    beam.cdrh_enabled, beam.cdrh_delay_s, beam.rise_time_s = True, 5.0, 0.2
    beam.setpoint_w = 0.05
    beam.emission_on = True
    clock.now += 4.99
    assert beam.output_w() == 0.0
    clock.now += 0.01 + 0.2  # one time constant after light starts
    assert beam.output_w() == pytest.approx(0.05 * (1 - math.exp(-1)))
    clock.now += 2.0
    assert beam.output_w() == pytest.approx(0.05, rel=1e-4)
    beam.setpoint_w = 0.01  # a change while emitting ramps from the present output
    assert beam.output_w() == pytest.approx(0.05, rel=1e-4)
    clock.now += 0.2
    assert beam.output_w() == pytest.approx(0.01 + 0.04 * math.exp(-1), rel=1e-4)
    beam.emission_on = False
    assert beam.output_w() == 0.0


def test_beam_without_cdrh_starts_at_once():
    clock = FakeClock()
    beam = LaserPath(BenchSetup(), clock=clock)
    beam.setpoint_w = 0.02
    beam.emission_on = True
    assert beam.output_w() == 0.02


def _five_second_yaml(tmp_path: Path) -> Path:
    """The shipped OBIS simulator with the real unit's 5 s CDRH delay."""
    text = (Path(__file__).parents[2] / "sim_configs" / "obis.yaml").read_text()
    marker = "      cdrh_delay_s:"
    head, tail = text.split(marker)
    tail = tail.replace("default: 0.1", "default: 5.0", 1)
    path = tmp_path / "obis_5s.yaml"
    path.write_text(head + marker + tail)
    assert load_sim_yaml(path)["devices"]["obis"]["properties"]["cdrh_delay_s"]["default"] == "5.0"
    return path


def test_driver_start_up_waits_out_the_real_5_s_cdrh_delay(tmp_path):
    clock = FakeClock()
    world = World("nc-hexane", clock=clock)
    lib = SimBenchLibrary(
        world, ["obis"], yaml_paths={LASER: _five_second_yaml(tmp_path)}, clock=clock
    )
    laser = CoherentObis(LASER, visa_library=lib)
    try:
        assert laser.cdrh_enabled is True and laser.faults == []
        start = clock.now
        power = laser.start_emission(0.05, poll_s=0.05, clock=clock, sleep=clock.sleep)
        waited = clock.now - start
        assert power == pytest.approx(0.05, rel=0.02)
        # Light only after 5 s, then ~4 time constants (0.1 s) to be within 2 %.
        assert 5.0 < waited < 6.0
        assert world.laser_output_w() == pytest.approx(0.05, rel=0.02)
        laser.stop_emission()
        assert world.laser_output_w() == 0.0
    finally:
        laser.adapter.close()


def test_shipped_simulator_has_cdrh_on_and_a_short_delay():
    clock = FakeClock()
    world = World("nc-hexane", clock=clock)
    lib = SimBenchLibrary(world, ["obis"], clock=clock)
    laser = CoherentObis(LASER, visa_library=lib)
    try:
        assert laser.cdrh_enabled is True
        laser.power_setpoint_w = 0.05
        laser.emission_enabled = True
        assert laser.power_w == 0.0  # CDRH delay: emission on, no light yet
        clock.now += 0.1 + 1.0
        assert laser.power_w == pytest.approx(0.05, rel=0.01)
    finally:
        laser.adapter.close()
