"""Bad input, generated: procedure parameters, bench files and recipes.

Any invalid input must give a clear error (``RunInputError``/``BenchError``, exit code 2)
before an instrument is touched - no command reaches the simulated instruments
(:meth:`SimBenchLibrary.total_command_count`) - and never a traceback or a file.
"""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perovlab_daq.bench import BenchError, parse_bench, sim_bench
from perovlab_daq.cli import main
from perovlab_daq.runner import RunInputError, plan_run, procedure_classes
from perovlab_daq.sequence import load_recipe, plan_recipe
from perovlab_daq.sim.visalib import SimBenchLibrary

PROCEDURES = procedure_classes()
BENCH = sim_bench()
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: Values of every kind a user, a YAML file or a GUI field can produce.
ANY_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.sampled_from(["20mA/cm^2", "5 V", "1e400", "nan", "-inf", "3 parsec", "__import__('os')"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _no_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.fault_class("bad input: procedure parameters (hypothesis)")
@pytest.mark.parametrize("name", list(PROCEDURES))
def test_any_parameters_are_refused_cleanly_or_planned_without_touching_anything(
    name: str,
) -> None:
    cls = PROCEDURES[name]
    names = sorted(cls.parameter_objects_of_class()) + ["no_such_parameter"]

    @SETTINGS
    @given(st.dictionaries(st.sampled_from(names), ANY_VALUE, min_size=1, max_size=3))
    def check(values: dict[str, Any]) -> None:
        before = SimBenchLibrary.total_command_count()
        with tempfile.TemporaryDirectory() as folder:
            try:
                plan_run(name, bench_config=BENCH, parameters=values, output=folder)
            except RunInputError as exc:
                text = str(exc)
                assert text and "\n" not in text and "Traceback" not in text
            assert _no_files(Path(folder)) == []
        assert SimBenchLibrary.total_command_count() == before

    check()


@pytest.mark.fault_class("bad input: procedure parameters (hypothesis)")
@SETTINGS
@given(
    name=st.sampled_from(sorted(PROCEDURES)),
    value=st.sampled_from(["nan", "inf", "-1e300", "1e300", "abc", "1+1", "5 parsec", ""]),
)
def test_cli_refuses_bad_values_with_exit_2_before_any_instrument(
    name: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cls = PROCEDURES[name]
    numeric = [
        attribute
        for attribute, spec in cls.parameter_specs().items()
        if spec["type"] in {"float", "integer"}
    ]
    before = SimBenchLibrary.total_command_count()
    with tempfile.TemporaryDirectory() as folder:
        code = main(["run", name, "--sim", "-o", folder, "--set", f"{numeric[0]}={value}"])
        assert code == 2
        assert _no_files(Path(folder)) == []
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert SimBenchLibrary.total_command_count() == before


# ----------------------------------------------------------------------- bench files
def _bench_document() -> dict[str, Any]:
    assert BENCH.path is not None
    return yaml.safe_load(BENCH.path.read_text(encoding="utf-8"))


BENCH_DOC = _bench_document()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*prefix, key)))
    return found


BENCH_PATHS = _paths(BENCH_DOC)


@pytest.mark.fault_class("bad input: bench files (hypothesis)")
@SETTINGS
@given(
    where=st.sampled_from(BENCH_PATHS),
    action=st.sampled_from(["replace", "delete", "add"]),
    value=ANY_VALUE,
)
def test_mutated_bench_file_gives_a_named_error_or_a_valid_bench(
    where: tuple[Any, ...], action: str, value: Any
) -> None:
    document = copy.deepcopy(BENCH_DOC)
    parent = document
    for key in where[:-1]:
        parent = parent[key]
    if action == "replace":
        parent[where[-1]] = value
    elif action == "delete":
        del parent[where[-1]]
    else:
        parent[f"{where[-1]}_typo"] = value
    before = SimBenchLibrary.total_command_count()
    try:
        config = parse_bench(document, path=BENCH.path, base=BENCH.path.parent)
    except BenchError as exc:
        assert ": " in str(exc) and "Traceback" not in str(exc)
    else:
        assert config.roles
    assert SimBenchLibrary.total_command_count() == before


@pytest.mark.fault_class("bad input: bench files (hypothesis)")
@SETTINGS
@given(text=st.text(max_size=200))
def test_arbitrary_bench_text_through_the_cli_exits_2(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = SimBenchLibrary.total_command_count()
    with tempfile.TemporaryDirectory() as folder:
        bench = Path(folder) / "bench.yaml"
        bench.write_text(text, encoding="utf-8")
        code = main(["bench", "check", "--bench", str(bench)])
        assert code == 2
    assert "Traceback" not in capsys.readouterr().err
    assert SimBenchLibrary.total_command_count() == before


# ----------------------------------------------------------------------- recipes
RUN_ENTRY = st.fixed_dictionaries(
    {"procedure": st.sampled_from([*sorted(PROCEDURES), "nope", 3])},
    optional={
        "parameters": st.dictionaries(st.sampled_from(["dwell", "stop_voltage", "x"]), ANY_VALUE),
        "sample": ANY_VALUE,
        "pixel": ANY_VALUE,
        "preset": st.sampled_from(["qd-in-matrix", "nope", 1]),
        "bogus": ANY_VALUE,
    },
)
RECIPE = st.one_of(
    ANY_VALUE,
    st.fixed_dictionaries(
        {"runs": st.one_of(st.lists(RUN_ENTRY, max_size=3), ANY_VALUE)},
        optional={"defaults": ANY_VALUE, "continue_on_failure": ANY_VALUE, "name": ANY_VALUE},
    ),
)


@pytest.mark.fault_class("bad input: recipes (hypothesis)")
@SETTINGS
@given(recipe=RECIPE)
def test_any_recipe_is_refused_cleanly_or_planned_without_touching_anything(
    recipe: Any,
) -> None:
    before = SimBenchLibrary.total_command_count()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
        try:
            plan_recipe(load_recipe(path), bench_config=BENCH, output=folder)
        except RunInputError as exc:
            assert str(exc) and "Traceback" not in str(exc)
        assert [p for p in _no_files(Path(folder)) if p.name != "recipe.yaml"] == []
    assert SimBenchLibrary.total_command_count() == before


def test_nan_is_never_a_valid_number() -> None:
    with pytest.raises(RunInputError):
        plan_run("jlv", bench_config=BENCH, parameters={"stop_voltage": math.nan})
