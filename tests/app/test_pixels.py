"""Multi-pixel substrates end to end: a recipe over six pixels of the simulated bench.

Each run switches to its pixel (output off, open all, close one, read back), the six files
differ by the simulated spread and match each pixel's truth, and a shorted pixel is named
as failed in the substrate summary instead of being averaged in.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from perovlab_daq.bench import Bench, load_bench
from perovlab_daq.cli import main
from perovlab_daq.figures import analyze_file
from perovlab_daq.figures.substrate import summarise_substrate
from perovlab_daq.runner import RunInputError, plan_run
from perovlab_daq.sequence import load_recipe, plan_recipe, run_recipe

SWITCH = "GPIB0::7::INSTR"


def _bench_file(tmp_path: Path, faulty: dict[int, str]) -> Path:
    shipped = importlib.resources.files("perovlab_daq.sim_configs")
    data = yaml.safe_load(shipped.joinpath("bench_sim.yaml").read_text())
    data["sim"]["faulty_pixels"] = faulty
    for key in ("responsivity_file", "spectrometer_sensitivity_file"):
        data["setup"][key] = str(shipped.joinpath(data["setup"][key]))
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_pixel_not_on_the_switch_is_bad_input_before_any_instrument(tmp_path: Path) -> None:
    config = load_bench(_bench_file(tmp_path, {}))
    with pytest.raises(RunInputError, match="no pixel '9'"):
        plan_run("jlv", bench_config=config, output=tmp_path, sample={"pixel": "9"})
    plan = plan_run("jlv", bench_config=config, output=tmp_path)
    assert plan.sample["pixel"] == "1"  # the first pixel of the map, and the file says so
    assert plan.path.name.endswith("_jlv_1.h5")
    assert main(["run", "jlv", "--sim", "--pixel", "9", "-o", str(tmp_path)]) == 2
    assert not list(tmp_path.glob("*.h5"))


def test_bench_file_refuses_a_bad_pixel_map_or_fault(tmp_path: Path) -> None:
    from perovlab_daq.bench import BenchError

    path = _bench_file(tmp_path, {7: "short"})
    with pytest.raises(BenchError, match="sim.faulty_pixels.7"):
        load_bench(path)
    data = yaml.safe_load(_bench_file(tmp_path, {3: "melted"}).read_text())
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(BenchError, match="short or open"):
        load_bench(path)
    data["sim"]["faulty_pixels"] = {}
    data["roles"]["pixel_switch"]["pixels"]["2"] = "1!1"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(BenchError, match="two pixels"):
        load_bench(path)


@pytest.mark.slow
def test_recipe_over_six_pixels_measures_six_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_bench(_bench_file(tmp_path, {3: "short"}))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "runs:\n  - procedure: jlv\n    pixels: [1, 2, 3, 4, 5, 6]\n    continue_on_failure: true\n"
    )
    benches: list[Any] = []
    build = Bench._build_simulator

    def keep(self: Any) -> None:
        build(self)
        benches.append(self)

    monkeypatch.setattr(Bench, "_build_simulator", keep)
    steps = plan_recipe(load_recipe(recipe), bench_config=config, output=tmp_path / "out")
    results = run_recipe(steps)
    files = [Path(r.outcome.path) for r in results if r.outcome is not None]
    assert len(files) == 6 and all(f.exists() for f in files)
    assert len(benches) == 6

    for pixel, bench in zip("123456", benches, strict=True):
        log = bench.visa_library.command_log(SWITCH)
        closes = [c for c in log if c.startswith(":ROUT:CLOS (@")]
        assert closes == [f":ROUT:CLOS (@1!{pixel})"]  # one pixel closed per run
        assert ":ROUT:OPEN ALL" in log[: log.index(closes[0])]  # break before make
        history = bench.world.switch_history
        assert history[1] == ((f"1!{pixel}",), False)  # output off while switching
        assert not any(output_on for _channels, output_on in history)

    figures = {p: analyze_file(f, store=False) for p, f in zip("123456", files, strict=True)}
    world = benches[0].world
    truth = {p: world.pixel_truth(p) for p in "123456"}
    working = [p for p in "123456" if p != "3"]
    for p in working:
        # Ratios to pixel 1 take out what is common to every pixel (shunt, sweep grid).
        measured = figures[p]["peak_eqe_pct"] / figures["1"]["peak_eqe_pct"]
        assert measured == pytest.approx(truth[p].peak_eqe / truth["1"].peak_eqe, rel=0.02)
        assert figures[p]["el_peak_nm"] == pytest.approx(truth[p].el_peak_nm, abs=1.0)
        assert figures[p]["turn_on_voltage_v"] - figures["1"]["turn_on_voltage_v"] == (
            pytest.approx(truth[p].turn_on_shift_v, abs=0.1)
        )
    eqes = [figures[p]["peak_eqe_pct"] for p in working]
    assert len({round(e, 2) for e in eqes}) == 5  # six devices, not one measured six times

    summary = summarise_substrate(files)
    assert summary.failed == {"3": "short"}
    assert summary.mean["max_eqe_pct"] == pytest.approx(np.mean(eqes))
    assert summary.spread["max_eqe_pct"] == pytest.approx(np.std(eqes, ddof=1))
    assert summary.champion == max(working, key=lambda p: figures[p]["peak_eqe_pct"])
    assert [p.channel for p in summary.pixels] == [f"1!{n}" for n in range(1, 7)]

    capsys.readouterr()
    out_png = tmp_path / "substrate.png"
    args = ["analyze", "--by", "pixel", "--json", "--figure", str(out_png), *map(str, files)]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[0])
    assert printed["failed"] == {"3": "short"}
    assert out_png.stat().st_size > 0
