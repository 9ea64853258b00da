"""Rack benches: channels in the bench file, each its own simulated device; the thermometer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from perovlab_daq.instruments.keithley2000 import Keithley2000
from pymeasure.test import expected_protocol
from rack_helpers import write_rack_bench, write_recipe

from perovlab_daq.bench import BenchError, load_bench, sim_bench
from perovlab_daq.cli import main
from perovlab_daq.rack import ChannelBench, ChannelRun, run_parallel
from perovlab_daq.runner import RunInputError, plan_run
from perovlab_daq.sequence import load_recipe, plan_recipe
from perovlab_daq.sim.thermal import ThermalModel


def test_shipped_sim_bench_has_eight_channels_with_their_own_instruments() -> None:
    config = sim_bench()
    assert list(config.channels) == [str(k) for k in range(1, 9)]
    resources = [rc.resource for roles in config.channels.values() for rc in roles.values()]
    assert len(resources) == len(set(resources)) == 24
    channel = config.channel_config(3)
    assert channel.channel == "3" and set(channel.roles) == {
        "source_meter",
        "photodetector",
        "thermometer",
    }
    assert channel.roles["source_meter"].resource == "GPIB1::3::INSTR"
    with pytest.raises(BenchError, match="no channel '9'"):
        config.channel_config(9)


def edit_bench(tmp_path: Path, change) -> Path:
    path = write_rack_bench(tmp_path, acceleration=1000.0)
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d["channels"].update({0: d["channels"][1]}), "channels.0"),
        (lambda d: d["channels"].update({"x": {}}), "channels.x"),
        (
            lambda d: d["channels"][2]["source_meter"].update(resource="GPIB1::1::INSTR"),
            "channels.2.source_meter.resource",
        ),
        (
            lambda d: d["channels"][2]["source_meter"].update(resource="GPIB0::24::INSTR"),
            "already roles.source_meter",
        ),
        (lambda d: d["channels"][1].update(laser={"driver": "obis"}), "channels.1.laser"),
        (lambda d: d["channels"][1].pop("photodetector"), "missing role"),
        (lambda d: d["channels"][1]["thermometer"].update(driver="dmm9"), "thermometer.driver"),
        (
            lambda d: (
                (d.update(simulated=False), d.pop("sim"))
                and d["channels"][1]["source_meter"].update(faults={"timeout_rate": 0.1})
            ),
            "faults",
        ),
    ],
)
def test_bad_channel_entries_are_refused_naming_the_entry(tmp_path: Path, change, words) -> None:
    with pytest.raises(BenchError, match=words):
        load_bench(edit_bench(tmp_path, change))


def test_each_channel_is_its_own_simulated_device() -> None:
    config = sim_bench()
    benches = [ChannelBench(config.channel_config(k), procedure="lifetime") for k in (1, 2)]
    try:
        for bench in benches:
            bench.open()
        one, two = benches
        assert one.world is not two.world
        # Another device: its own efficiency (spread) and its own noise.
        assert one.world.preset.led.efficiency.peak_eqe != two.world.preset.led.efficiency.peak_eqe
        assert one.world.t50_device_s(20.0) != two.world.t50_device_s(20.0)
        # Its own VISA resources: channel 1's library does not serve channel 2's meter.
        assert "GPIB1::2::INSTR" not in one.visa_library.served_resources()
        assert one.metadata()["channel"] == "1"
        assert one["thermometer"].identity.startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2000")
        smu = one["source_meter"]
        smu.apply_current_source(compliance_voltage_v=12, nplc=1)
        smu.source_current = 0.009  # 100 mA/cm^2 on 0.09 cm^2
        smu.output_enabled = True
        # Channel 2's device is not driven by channel 1's source meter.
        assert two.world.drive_setting.output_on is False
        one["thermometer"].configure_rtd(nplc=1)
        assert 24.9 < one["thermometer"].read_temperature_c() < 31.1
    finally:
        for bench in benches:
            bench.close()


def test_thermal_model_relaxes_to_ambient_plus_k_j() -> None:
    model = ThermalModel(ambient_c=25.0, k_c_per_ma_cm2=0.06, tau_s=5.0)
    assert model.advance(0.0) == 25.0
    model.set_drive(0.0, 100.0)
    assert model.advance(5.0) == pytest.approx(25.0 + 6.0 * (1 - np.exp(-1)))
    assert model.advance(100.0) == pytest.approx(31.0)
    model.set_drive(100.0, 0.0)
    assert model.advance(105.0) == pytest.approx(25.0 + 6.0 * np.exp(-1))


def test_keithley2000_protocol() -> None:
    with expected_protocol(
        Keithley2000,
        [
            (":SENS:FUNC 'TEMP'", None),
            (":SENS:TEMP:TRAN FRTD", None),
            (":SENS:TEMP:FRTD:TYPE PT100", None),
            (":UNIT:TEMP C", None),
            (":SENS:TEMP:NPLC 2", None),
            (":READ?", "+2.634000E+01"),
            (":READ?", "+9.900000E+37"),
        ],
    ) as dmm:
        dmm.configure_rtd(nplc=2)
        assert dmm.read_temperature_c() == pytest.approx(26.34)
        assert np.isnan(dmm.read_temperature_c())


@pytest.mark.parametrize(
    ("runs", "words"),
    [
        ("      - {procedure: lifetime, channel: 9}\n", r"parallel\[0\]\.channel.*no channel '9'"),
        (
            "      - {procedure: lifetime, channel: 1}\n" * 2,
            "runs twice",
        ),
        ("      - {procedure: lifetime, channel: 1, pixels: [1, 2]}\n", "unknown entry 'pixels'"),
        ("      - {procedure: lifetime}\n", "channel"),
        (
            "      - {procedure: lifetime, channel: 1, parameters: {current_density: 1e9}}\n",
            "current_density",
        ),
        ("      - {procedure: pl-spectrum, channel: 1}\n", "laser"),
    ],
)
def test_bad_parallel_entries_are_refused_before_anything_runs(
    tmp_path: Path, runs: str, words: str
) -> None:
    recipe = load_recipe(write_recipe(tmp_path, "runs:\n  - parallel:\n" + runs))
    with pytest.raises(RunInputError, match=words):
        plan_recipe(recipe, bench_config=sim_bench(), output=tmp_path)


def test_sequence_command_runs_a_parallel_group(tmp_path: Path, capsys) -> None:
    bench = write_rack_bench(tmp_path, acceleration=20_000.0)
    recipe = write_recipe(
        tmp_path,
        "runs:\n  - parallel:\n"
        "      - {procedure: lifetime, channel: 4, pixel: A, parameters: {current_density: 50}}\n"
        "      - {procedure: lifetime, channel: 7, pixel: B, parameters: {current_density: 70}}\n",
    )
    code = main(["sequence", str(recipe), "--bench", str(bench), "-o", str(tmp_path), "--json"])
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, rows
    assert [r["status"] for r in rows] == ["finished", "finished"]
    for row, channel in zip(rows, ("4", "7"), strict=True):
        with h5py.File(row["file"], "r", locking=False) as file:
            assert str(file["entry/metadata"].attrs["channel"]) == channel
            assert np.isfinite(file["entry/data/temperature"][()]).all()


def test_keithley2600_smu_protocol() -> None:
    from perovlab_daq.instruments.keithley2600 import Keithley2600SmuB

    with expected_protocol(
        Keithley2600SmuB,
        [
            ("smub.source.func=0", None),
            ("smub.source.limitv=12", None),
            ("smub.measure.nplc=1", None),
            ("smub.source.leveli=1e-06", None),
            ("smub.source.output=1", None),
            ("print(smub.measure.iv())", "1.00000e-06\t2.51000e+00"),
            ("print(smub.source.compliance)", "false"),
            ("print(smub.measure.iv())", "1.00000e-06\t1.20000e+01"),
            ("print(smub.source.compliance)", "true"),
            ("smub.source.output=0", None),
        ],
    ) as smu:
        smu.apply_current_source(compliance_voltage_v=12, nplc=1)
        smu.source_current = 1e-6  # %g: a microampere is not rounded away
        smu.output_enabled = True
        reading = smu.read_all()
        assert (reading.current_a, reading.voltage_v, reading.in_compliance) == (1e-6, 2.51, False)
        assert smu.read_all().in_compliance
        smu.shutdown()


def test_two_channels_on_the_two_smus_of_one_2602b(tmp_path: Path) -> None:
    def share(data):
        for channel, smu in ((1, "keithley2600a"), (2, "keithley2600b")):
            data["channels"][channel]["source_meter"] = {
                "driver": smu,
                "resource": "GPIB1::26::INSTR",
            }

    bench = load_bench(edit_bench(tmp_path, share))
    assert bench.channels["2"]["source_meter"].driver == "keithley2600b"
    with pytest.raises(BenchError, match="own SMU"):  # the same SMU twice is refused
        load_bench(
            edit_bench(
                tmp_path,
                lambda d: (
                    share(d),
                    d["channels"][2]["source_meter"].update(driver="keithley2600a"),
                ),
            )
        )
    bench = load_bench(edit_bench(tmp_path, share))
    bench = dataclasses.replace(
        bench,
        sim=dataclasses.replace(bench.sim, ageing_acceleration_by_procedure={"lifetime": 20000}),
    )
    runs = [
        ChannelRun(
            str(k),
            f"ch{k}",
            plan_run(
                "lifetime",
                bench_config=bench.channel_config(k),
                parameters={"current_density": 60.0},
                output=tmp_path / "data",
                sample={"pixel": f"ch{k}"},
            ),
        )
        for k in (1, 2)
    ]
    results = run_parallel(runs)
    assert [r.outcome.status for r in results] == ["finished", "finished"]
    for result in results:
        assert result.outcome.figures["t50_h"] > 0
        assert result.outcome.outputs_off
