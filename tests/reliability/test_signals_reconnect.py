"""Issue 16 in process: signals become safe stops, reconnects restore, summaries read back.

* every catchable ending signal sets the stop flag instead of ending the process;
* ``Bench.reopen`` brings a role back as its driver opened it (the OBIS at 115200 baud,
  not 9600) and writes back the settings the procedure had set, output last;
* a run whose laser does not read back off is loud: summary, exit code 3 and the file.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import h5py
import pytest

from perovlab_daq.bench import Bench, sim_bench
from perovlab_daq.runner import EXIT_OUTPUT_NOT_OFF, RunOutcome, execute_run, plan_run
from perovlab_daq.stop_signals import STOP_SIGNALS, StopFlag, stop_on_signals


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGTERM])
def test_each_ending_signal_sets_the_stop_flag_and_handlers_are_restored(sig):
    before = signal.getsignal(sig)
    stop = StopFlag()
    forwarded: list[str] = []
    with stop_on_signals(stop, on_signal=forwarded.append, quiet=True):
        os.kill(os.getpid(), sig)  # handled: this process goes on
        assert stop.wait(1.0)
    assert stop.reason == sig.name and forwarded == [sig.name]
    assert signal.getsignal(sig) == before
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT} <= set(STOP_SIGNALS)


def test_reopen_restores_the_obis_baud_rate_so_emission_off_still_works():
    with Bench(sim_bench(), roles=["laser"]) as bench:
        laser = bench["laser"]
        assert laser.adapter.connection.baud_rate == 115200
        laser.power_setpoint_w = 0.01
        laser.emission_enabled = True
        bench.reopen("laser")
        connection = laser.adapter.connection
        assert connection.baud_rate == 115200  # was 9600 after a reopen: nothing answered
        assert connection.read_termination == "\r\n" and connection.timeout == 3000
        assert laser.emission_enabled  # the procedure's state is kept
        laser.shutdown()
        assert laser.emission_enabled is False
        assert bench.output_states() == {"laser emission": "off"}


def test_reopen_writes_back_settings_an_instrument_lost_output_last():
    with Bench(sim_bench(), roles=["source_meter", "laser"]) as bench:
        smu, laser = bench["source_meter"], bench["laser"]
        smu.apply_current_source(compliance_voltage_v=6.0, nplc=1.0)
        smu.source_current = 2e-3
        smu.output_enabled = True
        laser.power_setpoint_w = 0.02
        laser.emission_enabled = True
        bench.visa_library.reset()  # the instruments come back from a power cycle
        assert not smu.output_enabled and not laser.emission_enabled
        bench.reopen("source_meter")
        bench.reopen("laser")
        assert smu.source_mode == "current"
        assert smu.source_current == pytest.approx(2e-3)
        assert smu.compliance_voltage == pytest.approx(6.0)
        assert smu.output_enabled and laser.emission_enabled
        assert laser.power_setpoint_w == pytest.approx(0.02)


def test_outcome_that_reads_an_output_on_or_an_unreadable_file_is_not_ok(tmp_path):
    on = RunOutcome(tmp_path / "a.h5", "finished", outputs={"laser emission": "on"})
    assert on.exit_code == EXIT_OUTPUT_NOT_OFF == 3
    summary = on.summary()
    assert summary["outputs_off"] is False and summary["safe_state"] == {"laser emission": "on"}
    assert "DANGER" in on.safe_state_line()
    unreadable = RunOutcome(
        tmp_path / "a.h5", "finished", outputs={"laser emission": "unreadable: timeout"}
    )
    assert unreadable.exit_code == 3 and not unreadable.summary()["outputs_off"]
    broken = RunOutcome(
        tmp_path / "a.h5",
        "finished",
        outputs={"laser emission": "off"},
        file_readable=False,
        file_problem="OSError",
    )
    assert broken.exit_code == 1 and broken.summary()["file_readable"] is False
    fine = RunOutcome(tmp_path / "a.h5", "finished", outputs={"laser emission": "off"})
    assert fine.exit_code == 0 and fine.summary()["outputs_off"] is True


def test_a_laser_that_stays_on_makes_the_run_loud(tmp_path):
    plan = plan_run(
        "pl-spectrum",
        bench_config=sim_bench(),
        parameters={"repeats": 1, "integration_time": 0.02},
        output=tmp_path,
    )
    bench = Bench(plan.bench_config, roles=["laser", "spectrometer"]).open()
    connection = bench["laser"].adapter.connection
    write = connection.write

    def stuck_on(message: str, *args, **kwargs):
        # A laser that acknowledges "emission off" and stays on (bridged key switch,
        # firmware fault): the fault sits below the driver, at the VISA session.
        return write(message.replace("SOUR:AM:STAT OFF", "SOUR:AM:STAT ON"), *args, **kwargs)

    connection.write = stuck_on
    try:
        outcome = execute_run(plan, bench=bench, log_file=False)
    finally:
        connection.write = write
        bench.close()
    assert outcome.outputs == {"laser emission": "on"}
    assert outcome.exit_code == 3
    summary = json.loads(json.dumps(outcome.summary()))
    assert summary["outputs_off"] is False
    with h5py.File(Path(outcome.path), "r") as file:
        kinds = [k.decode() if isinstance(k, bytes) else k for k in file["entry/events/kind"][:]]
    assert "outputs_not_off" in kinds


def test_probing_session_attributes_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    """pyvisa-py logs an ERROR and a traceback for an attribute a session type lacks."""
    import logging

    from perovlab_daq.reconnect import connection_settings

    class SocketSession:
        timeout = 2000
        write_termination = "\r\n"

        @property
        def send_end(self) -> bool:
            logging.getLogger("pyvisa").error("Unknown attribute VI_ATTR_SEND_END_EN")
            raise AttributeError("send_end")

    before = logging.getLogger("pyvisa").level
    with caplog.at_level(logging.DEBUG):
        settings = connection_settings(SocketSession())
    assert settings["timeout"] == 2000 and "send_end" not in settings
    assert not [r for r in caplog.records if r.name == "pyvisa"]
    assert logging.getLogger("pyvisa").level == before  # restored
