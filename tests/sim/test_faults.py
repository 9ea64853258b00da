"""FaultSpec validation and FaultInjector decisions, without PyVISA."""

import pytest

from perovlab_daq.sim.faults import FaultInjector, FaultSpec


def test_defaults_inject_nothing():
    spec = FaultSpec()
    assert not spec.active
    injector = FaultInjector(spec)
    assert not injector.disconnected()
    assert not any(injector.lose_reply() for _ in range(100))
    assert injector.garble(b"abc\n", b"\n") == b"abc\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout_rate": 1.5},
        {"garble_rate": -0.1},
        {"disconnect_after_s": -1},
        {"disconnect_for_s": 5},
        {"error_after_write": {"": "x"}},
    ],
)
def test_invalid_specs_are_rejected(kwargs):
    with pytest.raises(ValueError):
        FaultSpec(**kwargs)


def test_from_mapping_rejects_unknown_keys():
    assert FaultSpec.from_mapping({"timeout_rate": 0.1}).timeout_rate == 0.1
    assert FaultSpec.from_mapping(None) == FaultSpec()
    with pytest.raises(ValueError, match="garble"):
        FaultSpec.from_mapping({"garble": 0.1})


def test_same_seed_same_sequence_and_restart_replays_it():
    spec = FaultSpec(timeout_rate=0.5, seed=7)
    first = FaultInjector(spec)
    a = [first.lose_reply() for _ in range(50)]
    second = FaultInjector(spec)
    assert a == [second.lose_reply() for _ in range(50)]
    first.restart()
    assert a == [first.lose_reply() for _ in range(50)]
    assert 5 < sum(a) < 45


def test_garble_keeps_length_and_termination():
    injector = FaultInjector(FaultSpec(garble_rate=1.0, seed=1))
    message = b"+1.000000E-06,+2.0E+00,+0.0E+00\n"
    garbled = injector.garble(message, b"\n")
    assert garbled != message and len(garbled) == len(message) and garbled.endswith(b"\n")


def test_disconnect_window():
    now = [100.0]
    injector = FaultInjector(
        FaultSpec(disconnect_after_s=10, disconnect_for_s=5), clock=lambda: now[0]
    )
    states = []
    for t in (105.0, 110.0, 114.9, 115.0, 200.0):
        now[0] = t
        states.append(injector.disconnected())
    assert states == [False, True, True, False, False]


def test_disconnect_forever():
    now = [0.0]
    injector = FaultInjector(FaultSpec(disconnect_after_s=1), clock=lambda: now[0])
    now[0] = 1e9
    assert injector.disconnected()


def test_errors_after_write_match_prefixes():
    spec = FaultSpec(error_after_write={":SOUR": '-222,"Data out of range"', "OUTP": "-1,x"})
    injector = FaultInjector(spec)
    assert injector.errors_after_write(":SOURCE:VOLTAGE 5\n") == ['-222,"Data out of range"']
    assert injector.errors_after_write("OUTPUT 1") == ["-1,x"]
    assert injector.errors_after_write("*IDN?") == []
