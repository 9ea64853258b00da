"""Recipes are data: validated whole before the first run, never evaluated."""

from __future__ import annotations

from pathlib import Path

import pytest

from perovlab_daq import runner
from perovlab_daq.bench import parse_bench, sim_bench
from perovlab_daq.runner import RunInputError
from perovlab_daq.sequence import load_recipe, plan_recipe

from .test_runner_inputs import BENCH, FakeProcedure


@pytest.fixture(autouse=True)
def only_fake(monkeypatch):
    monkeypatch.setattr(runner, "procedure_classes", lambda: {"fake": FakeProcedure})


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_recipe_expands_pixels_and_names_unique_files(tmp_path: Path):
    path = _write(
        tmp_path,
        """
name: t
defaults: {sample: S1, operator: ann}
runs:
  - procedure: fake
    pixels: [A1, A2, A3]
    parameters: {current_density: 20mA/cm^2}
  - procedure: fake
    pixel: A1
    parameters: {current_density: 50}
    continue_on_failure: true
""",
    )
    steps = plan_recipe(load_recipe(path), bench_config=BENCH, output=tmp_path / "out")
    assert [s.plan.sample["pixel"] for s in steps] == ["A1", "A2", "A3", "A1"]
    assert len({s.plan.path for s in steps}) == 4
    assert [s.continue_on_failure for s in steps] == [False, False, False, True]
    assert steps[0].plan.parameters["current_density"] == 20.0
    assert all(s.plan.sample["operator"] == "ann" for s in steps)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("runs: []", "non-empty list"),
        ("- a\n- b", "mapping"),
        ("runs: [{procedure: nope}]", "runs[0]: unknown procedure"),
        ("runs: [{procedure: fake}, {procedure: fake, parameters: {points: 1000}}]", "runs[1]"),
        ("runs: [{procedure: fake, pixel: ../x}]", "runs[0]: pixel"),
        ("runs: [{procedure: fake, pixel: A, pixels: [B]}]", "not both"),
        ("runs: [{procedure: fake, shell: rm -rf /}]", "unknown entry 'shell'"),
        ("runs: [{procedure: fake, continue_on_failure: maybe}]", "true or false"),
        ("runs: [{procedure: fake, parameters: [1, 2]}]", "expected a mapping"),
        ("runs: [{procedure: fake, preset: qd-only}]", "only exists on the simulated bench"),
        ("bogus: 1\nruns: [{procedure: fake}]", "unknown recipe entry 'bogus'"),
        ("runs: [{procedure: !!python/object/apply:os.system [ls]}]", "not valid YAML"),
        ("runs: [{procedure: fake\n", "not valid YAML"),
        ("defaults: {colour: red}\nruns: [{procedure: fake}]", "unknown field 'colour'"),
    ],
)
def test_bad_recipes(tmp_path: Path, text: str, words: str):
    real = parse_bench(
        {
            "simulated": False,
            "roles": {"source_meter": {"driver": "keithley2400", "resource": "GPIB0::24::INSTR"}},
        }
    )
    with pytest.raises(RunInputError) as info:
        plan_recipe(load_recipe(_write(tmp_path, text)), bench_config=real, output=tmp_path / "out")
    assert words in str(info.value)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_preset_per_run_on_simulated_bench(tmp_path: Path):
    path = _write(tmp_path, "runs: [{procedure: fake, preset: nc-hexane}, {procedure: fake}]")
    steps = plan_recipe(load_recipe(path), bench_config=sim_bench(), output=tmp_path)
    assert steps[0].plan.bench_config.sim.preset == "nc-hexane"
    assert steps[1].plan.bench_config.sim.preset == "qd-in-matrix"


def test_shipped_demo_recipe_plans_every_procedure(tmp_path: Path, monkeypatch):
    """The demo is the README's main job: its recipe must stay valid as parameters evolve."""
    from importlib import resources

    monkeypatch.undo()  # the real procedures, not the fake
    from perovlab_daq.runner import procedure_classes

    with resources.as_file(
        resources.files("perovlab_daq.sim_configs") / "demo_recipe.yaml"
    ) as path:
        recipe = load_recipe(path)
    steps = plan_recipe(recipe, bench_config=sim_bench(), output=tmp_path)
    assert {s.plan.procedure_cls.NAME for s in steps} == set(procedure_classes())
    assert list(tmp_path.iterdir()) == []
