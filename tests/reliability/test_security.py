"""Security for a lab PC: no listening port, safe YAML only, no evaluated expressions,
identifiers that cannot leave the data folder, and no world-writable files."""

from __future__ import annotations

import ast
import os
import stat
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_helpers import run_faulty

from perovlab_daq.bench import Bench, BenchError, load_bench, sim_bench
from perovlab_daq.runner import RunInputError, plan_run, read_parameter_file
from perovlab_daq.sequence import load_recipe, plan_recipe

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["perovlab_daq", "procedures", "instruments"]


def _listening() -> list[str]:
    return [
        f"{c.laddr.ip}:{c.laddr.port}"
        for c in psutil.Process().net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]


@pytest.mark.fault_class("security: no network port")
def test_no_listening_socket_during_or_after_a_run(tmp_path: Path) -> None:
    pytest.importorskip("zmq")  # the trap: pymeasure binds tcp://*:5888 when pyzmq is there
    pytest.importorskip("cloudpickle")
    seen: list[list[str]] = []

    def look(bench: Bench) -> None:
        time.sleep(0.3)
        seen.append(_listening())

    assert _listening() == []
    run_faulty("lifetime", tmp_path, during=look)
    assert seen == [[]], f"listening while running: {seen}"
    assert _listening() == []


UNSAFE = "!!python/object/apply:os.system ['touch {marker}']"


@pytest.mark.fault_class("security: YAML safe-loaded, nothing evaluated")
def test_yaml_tags_that_run_code_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = UNSAFE.format(marker=marker)
    bench = tmp_path / "bench.yaml"
    bench.write_text(f"format: 1\nname: {payload}\nroles: {{}}\n", encoding="utf-8")
    with pytest.raises(BenchError):
        load_bench(bench)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"runs:\n  - procedure: {payload}\n", encoding="utf-8")
    with pytest.raises(RunInputError):
        load_recipe(recipe)
    params = tmp_path / "params.yaml"
    params.write_text(f"stop_voltage: {payload}\n", encoding="utf-8")
    with pytest.raises(RunInputError):
        read_parameter_file(params)
    assert not marker.exists()


@pytest.mark.fault_class("security: YAML safe-loaded, nothing evaluated")
def test_recipe_and_parameter_expressions_are_never_evaluated(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    for value in (code, "1+1", "2**10", "[x for x in ()]"):
        with pytest.raises(RunInputError):
            plan_run(
                "jlv", bench_config=sim_bench(), parameters={"stop_voltage": value}, output=tmp_path
            )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f'runs:\n  - procedure: jlv\n    parameters: {{stop_voltage: "{code}"}}\n', encoding="utf-8"
    )
    with pytest.raises(RunInputError):
        plan_recipe(load_recipe(recipe), bench_config=sim_bench(), output=tmp_path)
    assert not marker.exists()


@pytest.mark.fault_class("security: YAML safe-loaded, nothing evaluated")
def test_source_has_no_unsafe_yaml_eval_exec_or_pickle_loads() -> None:
    safe_loaders = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
    problems = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                owner = getattr(getattr(func, "value", None), "id", "")
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if name in {"eval", "exec"} and not owner:
                    problems.append(f"{where} {name}()")
                if owner == "yaml" and name in {"unsafe_load", "full_load", "load_all"}:
                    problems.append(f"{where} yaml.{name}")
                if owner == "yaml" and name == "load":
                    loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
                    loader_name = getattr(loader, "attr", getattr(loader, "id", ""))
                    if loader_name not in safe_loaders:
                        problems.append(f"{where} yaml.load(Loader={loader_name or '?'})")
                if owner in {"pickle", "cloudpickle"} and name in {"load", "loads"}:
                    problems.append(f"{where} {owner}.{name}")
    assert problems == []


@pytest.mark.fault_class("security: identifiers stay in the data folder")
@settings(max_examples=150, deadline=None)
@given(
    field=st.sampled_from(["sample", "device", "pixel", "operator"]),
    value=st.one_of(
        st.text(max_size=40),
        st.sampled_from(["../x", "..", "/etc/passwd", "a/../../b", "..\\x", "a\x00b", ".hidden"]),
    ),
)
def test_identifiers_cannot_escape_the_data_folder(field: str, value: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder).resolve()
        try:
            plan = plan_run("jlv", bench_config=sim_bench(), sample={field: value}, output=root)
        except RunInputError:
            return
        assert plan.path.resolve().parent == root
        assert not plan.path.name.startswith(".")


@pytest.mark.fault_class("security: identifiers stay in the data folder")
def test_file_pattern_cannot_escape_the_data_folder(tmp_path: Path) -> None:
    for pattern in ("../{sample}.h5", "/tmp/{sample}.h5", "{sample}/../../x.h5"):
        try:
            plan = plan_run("jlv", bench_config=sim_bench(), output=tmp_path, file_pattern=pattern)
        except RunInputError:
            continue
        assert plan.path.resolve().parent == tmp_path.resolve(), pattern


@pytest.mark.fault_class("security: no world-writable files")
def test_run_files_are_not_world_writable_even_with_umask_0(tmp_path: Path) -> None:
    modes: dict[str, int] = {}

    def look_at_live_files(bench: Bench) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("journal" in n for n in modes):
            for path in tmp_path.iterdir():
                modes[path.name] = stat.S_IMODE(path.stat().st_mode)
            time.sleep(0.01)

    old = os.umask(0)
    try:
        result = run_faulty("lifetime", tmp_path, during=look_at_live_files, log_file=True)
    finally:
        os.umask(old)
    for path in tmp_path.iterdir():
        modes[path.name] = stat.S_IMODE(path.stat().st_mode)
    assert result.outcome.path.name in modes
    assert any(name.endswith(".log") for name in modes)
    assert any("journal" in name for name in modes)
    writable = {name: oct(mode) for name, mode in modes.items() if mode & stat.S_IWOTH}
    assert writable == {}
