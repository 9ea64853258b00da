"""Simulated substrate: per-pixel spread, faulty pixels, the switch decides what is measured."""

from __future__ import annotations

import pytest

from perovlab_daq.sim.presets import get_preset
from perovlab_daq.sim.world import World

CHANNELS = {str(n): f"1!{n}" for n in range(1, 7)}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _world(**kwargs) -> World:
    return World("qd-in-matrix", seed=1, pixel_channels=CHANNELS, **kwargs)


def test_pixels_spread_around_the_preset_with_documented_sizes() -> None:
    world = _world()
    led = get_preset("qd-in-matrix").led
    truths = [world.pixel_truth(name) for name in world.pixel_names]
    assert truths[0].peak_eqe == led.efficiency.peak_eqe  # pixel 1 is the reference
    assert truths[0].turn_on_shift_v == 0.0
    eqes = {t.peak_eqe for t in truths}
    assert len(eqes) == 6
    for t in truths[1:]:
        assert abs(t.peak_eqe / led.efficiency.peak_eqe - 1) <= 0.10 + 1e-12
        assert abs(t.turn_on_shift_v) <= 0.10 + 1e-12
        assert abs(t.t50_factor - 1) <= 0.20 + 1e-12
        assert abs(t.el_peak_nm - led.el_band.peak_nm) <= 2.0 + 1e-12
    assert [t.channel for t in truths] == list(CHANNELS.values())
    again = _world()
    assert [again.pixel_truth(n) for n in again.pixel_names] == truths
    other = World("qd-in-matrix", seed=2, pixel_channels=CHANNELS)
    assert other.pixel_truth("2").peak_eqe != truths[1].peak_eqe


def test_the_switch_decides_what_source_meter_and_photodiode_see() -> None:
    world = _world()
    assert world.connected_pixel == "1"  # power-on setup of the switch
    assert world.closed_channels == ("1!1",)
    world.set_switch_closed(())
    world.set_drive("VOLT", 3.5, 0.1, True)
    assert world.connected_pixel is None
    assert abs(world.smu_reading().current_a) < 1e-9  # open switch: open circuit
    dark = world.photodiode_current_a()
    world.set_drive("VOLT", 3.5, 0.1, False)
    world.set_switch_closed(("1!2",))
    world.set_drive("VOLT", 3.5, 0.1, True)
    assert world.connected_pixel == "2"
    lit_2 = world.photodiode_current_a()
    assert world.smu_reading().current_a > 1e-4
    assert lit_2 > 100 * abs(dark)
    truth_2 = world.led_truth()
    assert truth_2.current_a == pytest.approx(world.led_truth(pixel="2").current_a, rel=1e-3)
    assert truth_2.el_peak_nm == pytest.approx(world.pixel_truth("2").el_peak_nm, abs=1.0)
    world.set_drive("VOLT", 3.5, 0.1, False)
    world.set_switch_closed(("1!5",))
    world.set_drive("VOLT", 3.5, 0.1, True)
    # Same bias, another device: a different current and light.
    assert world.led_truth().current_a != pytest.approx(truth_2.current_a, rel=1e-3)
    assert world.led_truth(pixel="2").current_a == 0.0  # left behind, undriven
    assert world.switch_history[-1] == (("1!5",), False)


def test_shorted_pixel_runs_to_compliance_without_light_and_open_pixel_passes_nothing() -> None:
    world = _world(faulty_pixels={"3": "short", "4": "open"})
    world.set_switch_closed(("1!3",))
    world.set_drive("VOLT", 2.0, 0.1, True)
    reading = world.smu_reading()
    assert reading.in_compliance
    assert reading.current_a == pytest.approx(0.1, rel=1e-3)
    assert world.led_truth().luminance_cd_m2 == 0.0
    world.set_drive("VOLT", 0.2, 0.1, True)
    assert world.smu_reading().current_a == pytest.approx(0.2 / 5.0, rel=1e-3)  # ohmic
    world.set_drive("VOLT", 0.0, 0.1, False)
    world.set_switch_closed(("1!4",))
    world.set_drive("VOLT", 5.0, 0.1, True)
    assert abs(world.smu_reading().current_a) < 1e-9
    assert world.pixel_truth("3").fault == "short"
    with pytest.raises(ValueError, match="fault"):
        _world(faulty_pixels={"3": "melted"})
    with pytest.raises(ValueError, match="not on the substrate"):
        _world(faulty_pixels={"9": "short"})


def test_only_the_driven_pixel_ages() -> None:
    clock = FakeClock()
    world = World(
        "qd-in-matrix", seed=1, pixel_channels=CHANNELS, clock=clock, ageing_acceleration=1e4
    )
    world.set_switch_closed(("1!2",))
    world.set_drive("CURR", 20e-3 * 0.09, 10.0, True)  # 20 mA/cm^2
    clock.now += 10.0
    aged_2 = world.led_truth(pixel="2").reduced_age
    assert aged_2 > 0.0
    assert world.led_truth(pixel="4").reduced_age == 0.0
    world.set_drive("CURR", 20e-3 * 0.09, 10.0, False)
    world.set_switch_closed(("1!4",))
    world.set_drive("CURR", 20e-3 * 0.09, 10.0, True)
    clock.now += 10.0
    assert world.led_truth(pixel="2").reduced_age == aged_2
    assert world.led_truth(pixel="4").reduced_age > 0.0
    state = world.state_dict()
    fresh = World("qd-in-matrix", seed=1, pixel_channels=CHANNELS, clock=clock)
    fresh.load_state_dict(state)
    assert fresh.led_truth(pixel="2").reduced_age == pytest.approx(aged_2)


def test_t50_and_luminance_per_pixel() -> None:
    world = _world()
    assert world.t50_device_s(20.0, pixel="1") == pytest.approx(World().t50_device_s(20.0))
    ratio = world.t50_device_s(20.0, pixel="3") / world.t50_device_s(20.0, pixel="1")
    assert ratio != pytest.approx(1.0, abs=1e-6)
    assert world.fresh_luminance_cd_m2(20.0, pixel="2") != world.fresh_luminance_cd_m2(20.0)
    with pytest.raises(KeyError, match="no pixel"):
        world.t50_device_s(20.0, pixel="7")


def test_without_a_switch_pixel_1_is_always_connected_as_before() -> None:
    plain = World("qd-in-matrix", seed=1)
    assert plain.connected_pixel == "1"
    switched = _world()
    switched.set_switch_closed(("1!1",))
    for world in (plain, switched):
        world.set_drive("VOLT", 3.0, 0.1, True)
    assert plain.led_truth().current_a == pytest.approx(switched.led_truth().current_a, rel=1e-3)
    assert plain.led_truth().eqe == pytest.approx(switched.led_truth().eqe, rel=1e-3)
