"""``sim.sample`` in a bench file: the preset's LED ageing overridden, validated, recorded."""

from __future__ import annotations

from pathlib import Path

import perovlab_daq.sim_configs as sim_configs
import pytest
import yaml

from perovlab_daq.bench import Bench, BenchError, load_bench
from perovlab_daq.sim.presets import get_preset, with_ageing
from perovlab_daq.sim.world import World


def bench_with(tmp_path: Path, sample: object) -> Path:
    source = Path(sim_configs.__file__).parent / "bench_sim.yaml"
    data = yaml.safe_load(source.read_text())
    data["sim"]["sample"] = sample
    for key in ("responsivity_file", "spectrometer_sensitivity_file"):
        data["setup"][key] = str(source.parent / data["setup"][key])
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_sample_overrides_reach_the_world_and_the_metadata(tmp_path: Path) -> None:
    sample = {
        "acceleration_exponent": 1.7,
        "t50_reference_s": "600 h",
        "reference_luminance_cd_m2": 100,
        "stretch_exponent": 0.55,
        "brightening_fraction": 0.1,
    }
    config = load_bench(bench_with(tmp_path, sample))
    assert config.sim.sample["t50_reference_s"] == 600 * 3600.0
    bench = Bench(config, procedure="lifetime", roles=["source_meter", "photodetector"]).open()
    try:
        ageing = bench.world.preset.led.ageing
        assert ageing.acceleration_exponent == 1.7
        assert ageing.stretch_exponent == 0.55
        assert ageing.brightening_fraction == 0.1
        assert ageing.reference_current_density_ma_cm2 is None
        meta = bench.metadata()
        assert meta["sim_sample_acceleration_exponent"] == 1.7
        # T50 = C / L0^n with C from the new reference: 600 h at 100 cd/m^2
        l0 = bench.world.fresh_luminance_cd_m2(40.0)
        expected_h = 600.0 * (100.0 / l0) ** 1.7
        assert bench.world.t50_device_s(40.0) / 3600 == pytest.approx(expected_h, rel=1e-6)
    finally:
        bench.close()
    untouched = World(with_ageing(get_preset("qd-in-matrix"), {}))
    assert untouched.preset.led.ageing.acceleration_exponent == 1.95


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ({"lifetime_h": 5}, r"sim\.sample\.lifetime_h: unknown entry \(allowed: acceleration"),
        ({"stretch_exponent": "steep"}, r"sim\.sample\.stretch_exponent: .*'steep'"),
        ({"stretch_exponent": 3}, r"sim\.sample\.stretch_exponent: value 3 .*0\.1 to 1"),
        ({"acceleration_exponent": -1}, r"sim\.sample\.acceleration_exponent: value -1"),
        ({"brightening_fraction": 1.5}, r"sim\.sample\.brightening_fraction: value 1\.5"),
        ([1, 2], r"sim\.sample: expected a mapping"),
    ],
)
def test_bad_sample_entries_are_refused_by_name(
    tmp_path: Path, sample: object, message: str
) -> None:
    with pytest.raises(BenchError, match=message):
        load_bench(bench_with(tmp_path, sample))
