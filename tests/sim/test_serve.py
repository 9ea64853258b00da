"""Served simulated bench (`sim serve`): instruments on loopback sockets that outlive clients.

In-process tests use :func:`perovlab_daq.sim.serve.serve`; the issue-16 scenario (a client
SIGKILLed with the source and the laser on, a supervisor reopening them) and the clean stop
on SIGTERM run the server and the clients as separate processes, as in the lab.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import pyvisa

from perovlab_daq.bench import Bench, BenchError, load_bench, parse_bench, sim_bench
from perovlab_daq.sim.serve import (
    LOOPBACK_HOST,
    ServedBench,
    add_serve_arguments,
    main,
    run_serve,
    serve,
)

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
SMU_TERM = {"read_termination": "\n", "write_termination": "\n"}
OBIS_TERM = {"read_termination": "\r\n", "write_termination": "\r\n"}
FAST_JLV = ["--set", "stop_voltage=4", "--set", "fine_step=0.2", "--set", "coarse_step=0.5"]


def _open(resource: str, timeout_ms: int = 2000, **terminations: str):
    return pyvisa.ResourceManager("@py").open_resource(resource, timeout=timeout_ms, **terminations)


def _obis_query(laser, command: str) -> str:
    """Query the OBIS (handshake on): the value line, then the ``OK`` line."""
    value = laser.query(command)
    assert laser.read() == "OK"
    return value


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((LOOPBACK_HOST, port)) == 0


def _start_server(folder: Path, *options: str) -> tuple[subprocess.Popen, Path]:
    """Run ``perovlab-daq sim serve --write-bench`` and wait for its bench file."""
    bench_file = folder / "served_bench.yaml"
    with open(folder / "server.out", "wb") as out, open(folder / "server.err", "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "perovlab_daq.cli", "sim", "serve"]
            + ["--write-bench", str(bench_file), *options],
            cwd=folder,
            env=ENV,
            stdout=out,
            stderr=err,
        )
    deadline = time.monotonic() + 30
    while not bench_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"server did not start: {(folder / 'server.err').read_text()}")
        time.sleep(0.05)
    return process, bench_file


def _stop(process: subprocess.Popen, stop_signal: int) -> int:
    if process.poll() is None:
        process.send_signal(stop_signal)
    try:
        return process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(5)


# -- in process -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with serve(sim_bench()) as bench:
        bench.bench_file = bench.write_bench_file(tmp_path_factory.mktemp("served") / "b.yaml")
        yield bench


def test_written_bench_file_is_an_ordinary_pyvisa_py_bench(served):
    text = served.bench_file.read_text()
    assert text.startswith("# SIMULATED bench served by `perovlab-daq sim serve`")
    config = load_bench(served.bench_file)
    shipped = sim_bench()
    assert not config.simulated and config.sim is None and config.visa_library == "@py"
    assert "simulated bench served by sim serve" in config.name
    assert {r: rc.driver for r, rc in config.roles.items()} == {
        r: rc.driver for r, rc in shipped.roles.items()
    }
    assert {r: rc.resource for r, rc in config.roles.items()} == served.resources
    for resource in served.resources.values():
        host, port = resource.split("::")[1:3]
        assert resource == f"TCPIP::127.0.0.1::{port}::SOCKET" and host == LOOPBACK_HOST
    assert config.setup == shipped.setup  # same geometry and calibration files


def test_every_role_opens_through_its_driver_over_the_socket(served):
    # The OBIS and FW102C drivers pass asrl={"baud_rate": 115200}: pymeasure drops it for a
    # TCPIP resource, so the serial drivers need no change to be reached over a socket.
    with Bench(load_bench(served.bench_file)) as bench:
        identities = {role: bench[role].identity for role in bench.role_names}
        wheel = bench["filter_wheel"]
        wheel.position = 3
        position = wheel.position
    assert set(identities) == set(sim_bench().roles) and all(identities.values())
    assert "OBIS" in identities["laser"] and position == 3
    assert served.world.filter_position == 3


def test_listens_on_loopback_only(served):
    ports = {int(r.split("::")[2]) for r in served.resources.values()}
    listening = {
        c.laddr.port: c.laddr.ip
        for c in psutil.Process().net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port in ports
    }
    assert set(listening) == ports
    assert set(listening.values()) == {LOOPBACK_HOST}


def test_drivers_through_the_socket_see_shared_physics(served):
    config = load_bench(served.bench_file)
    with Bench(config, roles=["source_meter", "photodetector", "pixel_switch"]) as bench:
        smu, diode = bench["source_meter"], bench["photodetector"]
        bench["pixel_switch"].select("1!1")  # an earlier client's bench left it all open
        diode.configure(nplc=1)
        smu.apply_current_source(compliance_voltage_v=6, nplc=1)
        smu.source_current = 2e-3
        smu.output_enabled = True
        reading = smu.read_all()
        lit = diode.read_current().current_a
        smu.output_enabled = False
        dark = diode.read_current().current_a
    assert reading.current_a == pytest.approx(2e-3, rel=1e-3) and 2 < reading.voltage_v < 6
    # The photodiode facing the LED sees the light of the current the served SMU drives.
    assert lit > 1e-6 > 1e-9 > dark
    assert served.world.drive_setting[3] is False  # Bench.close left the output off


def test_a_write_to_one_instrument_acts_before_the_next_query_to_another(served):
    """The order one client sends in is kept across connections (jlv's LED-off dark frame)."""
    smu = _open(served.resources["source_meter"], **SMU_TERM)
    diode = _open(served.resources["photodetector"], **SMU_TERM)
    switch = _open(served.resources["pixel_switch"], **SMU_TERM)
    switch.write(":ROUT:CLOS (@1!1)")  # pixel 1 (an earlier client left the switch open)
    switch.close()
    try:
        for command in (":SOURCE:FUNCTION CURR", ":SOURCE:CURRENT 0.002", "CURR:NPLC 1"):
            (diode if command.startswith("CURR") else smu).write(command)
        diode.write("SYST:ZCH OFF")
        seen = []
        for _ in range(40):
            smu.write("OUTPUT 1")  # no read-back: the next message goes to another socket
            seen.append(float(diode.query("READ?").split(",")[0]) > 1e-6)
            smu.write("OUTPUT 0")
            seen.append(float(diode.query("READ?").split(",")[0]) > 1e-6)
    finally:
        smu.write("OUTPUT 0")
        smu.close()
        diode.close()
    assert seen == [True, False] * 40


def test_spectrum_of_1044_pixels_is_framed_whole(served):
    config = load_bench(served.bench_file)
    with Bench(config, roles=["spectrometer"]) as bench:
        spectrometer = bench["spectrometer"]
        wavelengths = spectrometer.wavelengths()
        spectrometer.integration_time_micros(100_000)
        counts = [spectrometer.intensities() for _ in range(3)]
    assert wavelengths.shape == (1044,)
    assert wavelengths == pytest.approx(served.world.spectrometer_wavelengths_nm(), abs=1e-3)
    for frame in counts:
        assert frame.shape == (1044,) and frame.min() > 1000  # dark offset on every pixel


def test_messages_are_framed_on_the_write_termination_not_on_packets(served):
    port = int(served.resources["laser"].split("::")[2])
    with socket.create_connection((LOOPBACK_HOST, port), timeout=2) as client:
        client.sendall(b"SYST:INF:WA")  # half a message: nothing happens yet
        time.sleep(0.1)
        client.sendall(b"V?\r\n\r\nSYST:LOCK?\r\n")  # its end, a blank line, one more
        reply = b""
        while reply.count(b"\r\n") < 4:
            chunk = client.recv(4096)
            assert chunk, "connection closed"
            reply += chunk
    assert reply == b"405\r\nOK\r\nON\r\nOK\r\n"


def test_two_clients_on_one_instrument_each_get_their_own_replies(served):
    resource = served.resources["source_meter"]
    first, second = _open(resource, **SMU_TERM), _open(resource, **SMU_TERM)
    wrong: list[str] = []

    def hammer(client, query: str, check) -> None:
        for _ in range(150):
            reply = client.query(query)
            if not check(reply):
                wrong.append(f"{query} -> {reply!r}")

    try:
        threads = [
            threading.Thread(target=hammer, args=(first, "*IDN?", lambda r: "MODEL 2400" in r)),
            threading.Thread(
                target=hammer, args=(second, ":READ?", lambda r: len(r.split(",")) == 5)
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert wrong == []
        # Both connections talk to one instrument: a setting made by one is read by the other.
        first.write(":SOURCE:VOLTAGE 1.25")
        assert float(second.query(":SOURCE:VOLTAGE?")) == 1.25
        first.write(":SOURCE:VOLTAGE 0")
    finally:
        first.close()
        second.close()


def test_state_is_kept_when_every_client_has_disconnected(served):
    config = load_bench(served.bench_file)
    bench = Bench(config, roles=["laser"]).open()
    laser = bench["laser"]
    laser.start_emission(0.01)  # CDRH delay and power rise waited out: light is on
    laser.adapter.close()  # gone without switching off (Bench.close would)
    deadline = time.monotonic() + 5
    while served.connection_count() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert served.connection_count() == 0
    again = _open(served.resources["laser"], **OBIS_TERM)
    try:
        assert _obis_query(again, "SOUR:AM:STAT?") == "ON"
        assert served.world.laser_output_w() == pytest.approx(0.01, rel=0.05)
        again.write("SOUR:AM:STAT OFF")
        assert again.read() == "OK"
        assert served.world.laser_output_w() == 0
    finally:
        again.close()


def test_faults_of_the_bench_file_apply_to_the_served_instrument(tmp_path):
    data = {
        "simulated": True,
        "sim": {"preset": "qd-in-matrix"},
        "roles": {
            "source_meter": {"driver": "keithley2400", "resource": "GPIB0::24::INSTR"},
            "photodetector": {
                "driver": "keithley6485",
                "resource": "GPIB0::14::INSTR",
                "faults": {"timeout_rate": 1.0},
            },
        },
    }
    with serve(parse_bench(data)) as bench:
        diode = _open(bench.resources["photodetector"], timeout_ms=300, **SMU_TERM)
        smu = _open(bench.resources["source_meter"], **SMU_TERM)
        try:
            with pytest.raises(pyvisa.errors.VisaIOError, match="TMO"):
                diode.query("*IDN?")
            assert "MODEL 2400" in smu.query("*IDN?")  # only the faulty role is affected
        finally:
            diode.close()
            smu.close()
    assert bench.library.fault_counts()["GPIB0::14::INSTR"]["timeout"] >= 1


@pytest.mark.parametrize(
    ("role", "driver"),
    [
        ("source_meter", "keithley2450"),
        ("photodetector", "keithley6487"),
        ("photodetector", "smu-photodetector"),
    ],
)
def test_other_simulated_drivers_are_served_too(tmp_path, role, driver):
    from perovlab_daq.sim.catalogue import SIM_INSTRUMENTS

    resource = SIM_INSTRUMENTS[driver].resource
    config = parse_bench(
        {"simulated": True, "roles": {role: {"driver": driver, "resource": resource}}}
    )
    with serve(config) as bench:
        with Bench(load_bench(bench.write_bench_file(tmp_path / "b.yaml"))) as client:
            identity = client[role].identity
            settings = client[role].snapshot()
    assert "KEITHLEY" in identity.upper() and settings


def test_refuses_other_hosts_and_unserved_resources(capsys):
    with pytest.raises(ValueError, match="127.0.0.1 only"):
        ServedBench(sim_bench(), host="0.0.0.0")
    with pytest.raises(SystemExit) as stop:
        main(["--host", "0.0.0.0"])
    assert stop.value.code == 2 and "binds 127.0.0.1 only" in capsys.readouterr().err
    misspelt = {
        "simulated": True,
        "roles": {"source_meter": {"driver": "keithley2400", "resource": "GPIB0::23::INSTR"}},
    }
    with pytest.raises(BenchError, match="serves no 'GPIB0::23::INSTR'"):
        ServedBench(parse_bench(misspelt))
    with pytest.raises(BenchError, match="only a simulated bench"):
        ServedBench(parse_bench({"roles": misspelt["roles"]}))


def test_stop_closes_ports_and_connections():
    bench = serve(sim_bench(), port_base=None)
    port = int(bench.resources["source_meter"].split("::")[2])
    client = socket.create_connection((LOOPBACK_HOST, port), timeout=2)
    client.sendall(b"*IDN?\n")
    assert b"MODEL 2400" in client.recv(4096)
    bench.stop()
    assert client.recv(4096) == b""  # the server hung up
    client.close()
    assert not _port_open(port)
    assert bench.connection_count() == 0


# -- separate processes (issue 16) ------------------------------------------------------
CLIENT = """
import sys, time
from perovlab_daq.bench import Bench, load_bench
bench = Bench(load_bench(sys.argv[1]), roles=["source_meter", "laser"]).open()
smu, laser = bench["source_meter"], bench["laser"]
smu.apply_current_source(compliance_voltage_v=6, nplc=1)
smu.source_current = 2e-3
smu.output_enabled = True
laser.power_setpoint_w = 0.02
laser.emission_enabled = True
assert smu.output_enabled and laser.emission_enabled  # read back: acted on, not just sent
print("outputs on", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def server_process(tmp_path_factory):
    """One server process for the module; its stop by SIGTERM is checked at teardown."""
    folder = tmp_path_factory.mktemp("server")
    process, bench_file = _start_server(folder, "--sim", "qd-in-matrix")
    listening = {
        c.laddr.ip
        for c in psutil.Process(process.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening == {LOOPBACK_HOST}  # the CLI's server binds the loopback address only
    yield bench_file
    ports = [int(rc.resource.split("::")[2]) for rc in load_bench(bench_file).roles.values()]
    client = socket.create_connection((LOOPBACK_HOST, ports[0]), timeout=2)  # held open
    try:
        assert _stop(process, signal.SIGTERM) == 0, (folder / "server.err").read_text()
    finally:
        client.close()
    assert (folder / "server.err").read_text().endswith("stopped\n")
    assert not any(_port_open(port) for port in ports)


def test_outputs_stay_on_after_the_client_is_killed(server_process):
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(server_process)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout.readline().strip() == "outputs on", client.stderr.read()
    finally:
        client.kill()  # SIGKILL: no shutdown(), no close()
        client.wait(10)
    assert client.returncode == -signal.SIGKILL
    resources = {r: rc.resource for r, rc in load_bench(server_process).roles.items()}
    smu = _open(resources["source_meter"], **SMU_TERM)
    laser = _open(resources["laser"], **OBIS_TERM)
    try:
        assert smu.query("OUTPUT?") == "1"  # the source a dead client left on is still on
        assert float(smu.query(":SOURCE:CURRENT?")) == pytest.approx(2e-3)
        assert _obis_query(laser, "SOUR:AM:STAT?") == "ON"
        # A supervisor reopens the bench from the same file and switches everything off.
        supervisor = Bench(load_bench(server_process), roles=["source_meter", "laser"]).open()
        assert supervisor.output_states() == {
            "source_meter output": "on",
            "laser emission": "on",
        }
        supervisor.close()
        assert smu.query("OUTPUT?") == "0"
        assert _obis_query(laser, "SOUR:AM:STAT?") == "OFF"
    finally:
        smu.close()
        laser.close()


def test_jlv_runs_end_to_end_through_the_served_bench(server_process, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "perovlab_daq.cli", "run", "jlv"]
        + ["--bench", str(server_process), "-o", str(tmp_path), "--json", *FAST_JLV],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished" and Path(summary["file"]).is_file()
    assert summary["figures"]["max_luminance_cd_m2"] > 100  # light from the served physics


def test_ctrl_c_stops_run_serve_with_exit_0(tmp_path, capsys):
    """``run_serve`` in this process's main thread, stopped by a real SIGINT."""
    bench_file = tmp_path / "b.yaml"
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(["--sim", "--write-bench", str(bench_file)])
    ports: list[int] = []

    def interrupt_when_serving() -> None:
        deadline = time.monotonic() + 20
        while not bench_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        ports.extend(int(r.resource.split("::")[2]) for r in load_bench(bench_file).roles.values())
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    threading.Thread(target=interrupt_when_serving, daemon=True).start()
    assert run_serve(args) == 0
    assert signal.getsignal(signal.SIGINT) is previous  # handlers restored
    assert "TCPIP::127.0.0.1::" in capsys.readouterr().out
    assert len(ports) == 8 and not any(_port_open(port) for port in ports)
