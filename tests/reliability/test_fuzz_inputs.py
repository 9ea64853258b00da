"""Fuzzing every input of the command line: argv, bench files, recipes, parameter files, run files.

Whatever hypothesis generates, ``perovlab-daq`` answers with an exit code (0 only where the
input may still be fine, i.e. a lightly damaged run file), one line on stderr, never a
traceback, a hang or an opened instrument, and creates no data file. A run file that names
a module planted in the working folder runs no code of it.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from malformed_inputs import BILLION_LAUGHS, DEEP, FAST_JLV, good_run_file

from perovlab_daq.bench import sim_bench
from perovlab_daq.cli import main
from perovlab_daq.runner import procedure_classes
from perovlab_daq.sim.visalib import SimBenchLibrary

ROOT = Path(__file__).resolve().parents[2]
PROCEDURES = sorted(procedure_classes())
TIME_LIMIT_S = 10.0
#: A whole process (interpreter start, imports, answer): generous, as CI machines are shared;
#: a hang (a FIFO read, an alias bomb, a huge allocation) still fails it.
PROCESS_LIMIT_S = 60.0
FUZZ = settings(
    max_examples=30,
    deadline=None,
    # Not the "explain" phase: it re-runs a failure under a tracer, 100 times slower.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return good_run_file(tmp_path_factory.mktemp("good"))


def _data_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.suffix in {".h5", ".journal", ".log", ".png"}}


def _run_cli(
    argv: list[str], folder: Path, capsys: pytest.CaptureFixture[str], opened: list[str]
) -> tuple[int, str]:
    """Run ``main(argv)`` in ``folder``; check the promises every malformed input gets."""
    gc.collect()
    commands = SimBenchLibrary.total_command_count()
    before = _data_files(folder)
    cwd = os.getcwd()
    os.chdir(folder)
    started = time.monotonic()
    try:
        code = main(argv)
    finally:
        os.chdir(cwd)
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    assert opened == [], f"{argv}: an instrument was opened"
    assert SimBenchLibrary.total_command_count() == commands
    assert _data_files(folder) - before == set(), argv
    assert elapsed < TIME_LIMIT_S, f"{argv}: {elapsed:.1f} s"
    if code != 0:
        assert err.strip(), f"{argv}: exit {code} without a message"
    return code, err


# --------------------------------------------------------------------------- argv
JUNK = st.one_of(
    st.sampled_from(
        [
            "",
            "-",
            "--",
            "nan",
            "-inf",
            "1e999",
            "0",
            "-1",
            "../x",
            "/dev/zero",
            "/",
            "x" * 300,
            "20 mA/cm^9^9^9",
            "é",
            "--sim",
            "-vv",
            "$(true)",
        ]
    ),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        max_size=12,
    ),
)
OPTIONS = {
    "run": ["--sim", "--seed", "--set", "--params", "-o", "--sample", "--pixel", "--durability"],
    "sequence": ["--sim", "--seed", "-o", "--json"],
    "bench check": ["--sim", "--seed", "--require", "--json"],
    "analyze": ["--json", "--no-store", "-j"],
    "report": ["-o"],
    "lifetime-fit": ["--at", "--json", "-o"],
    "recover": [],
}


def _defect(command: str, folder: Path) -> list[str]:
    """One error every generated command line carries, found only after parsing."""
    bad = folder / "bad.yaml"
    bad.write_text(BILLION_LAUGHS, encoding="utf-8")
    missing = str(folder / "missing.h5")
    return {
        "run": ["--set", "no_such_parameter=1"],
        "sequence": [str(bad)],
        "bench check": ["--require", "no_such_role"],
        "analyze": [missing],
        "report": [missing, "-o", str(folder / "r.png")],
        "lifetime-fit": [missing],
        "recover": [missing],
    }[command]


@pytest.mark.fault_class("bad input: fuzzed command lines (hypothesis)")
@FUZZ
@given(
    command=st.sampled_from(sorted(OPTIONS)),
    procedure=st.sampled_from([*PROCEDURES, "nope"]),
    options=st.lists(st.tuples(st.integers(0, 20), JUNK), max_size=4),
)
def test_fuzzed_command_lines_end_cleanly(
    command: str,
    procedure: str,
    options: list[tuple[int, str]],
    capsys: pytest.CaptureFixture[str],
    no_instrument: list[str],
) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        argv = command.split()
        if command == "run":
            argv.append(procedure)
        for index, value in options:
            known = OPTIONS[command]
            if known and index < len(known):
                argv += [known[index], value]
            else:
                argv.append(value)
        argv += _defect(command, folder)
        code, _ = _run_cli(argv, folder, capsys, no_instrument)
        assert code in {1, 2}, argv


# --------------------------------------------------------------------------- YAML files
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(["20mA/cm^2", "1 V^9^9^9", "!!python/name:os.system", "keithley2400"]),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "roles",
                    "simulated",
                    "sim",
                    "runs",
                    "procedure",
                    "parameters",
                    "stop_voltage",
                    "x",
                ]
            ),
            children,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
NASTY_TEXT = st.sampled_from(
    [
        BILLION_LAUGHS,
        DEEP,
        "a: " + "x" * (1 << 21),
        "\ufeff\x00\x01",
        "a: !!binary aGVsbG8=",
        "a: !!python/object/apply:os.system ['true']",
        "{" * 40,
        "&a [*a]",
        "a: &x 1\nb: *y\n",
    ]
)
MUTATION = st.lists(
    st.tuples(st.integers(0, 400), st.sampled_from(list("[]{}:,&*!%@'\" -|>\tax0"))),
    max_size=4,
)


def _yaml_text(document: Any) -> str:
    return yaml.safe_dump(document, allow_unicode=True)


def _mutate(text: str, edits: list[tuple[int, str]]) -> str:
    for position, char in edits:
        position %= len(text) + 1
        text = text[:position] + char + text[position:]
    return text


def _valid_recipe_with_a_bad_last_run() -> str:
    return _yaml_text(
        {
            "name": "fuzz",
            "runs": [
                {"procedure": "jlv", "parameters": {"stop_voltage": 4}},
                {"procedure": "no-such-procedure"},
            ],
        }
    )


YAML_INPUT = st.one_of(
    DOCUMENTS.map(_yaml_text),
    NASTY_TEXT,
    MUTATION.map(lambda edits: _mutate(_valid_recipe_with_a_bad_last_run(), edits)),
)


def _bench_text_with_a_mutation(edits: list[tuple[int, str]]) -> str:
    text = sim_bench().path.read_text(encoding="utf-8")  # type: ignore[union-attr]
    return _mutate(text, edits) + "\nno_such_entry: 1\n"


@pytest.mark.fault_class("bad input: fuzzed bench files (hypothesis)")
@FUZZ
@given(text=st.one_of(YAML_INPUT, MUTATION.map(_bench_text_with_a_mutation)))
def test_fuzzed_bench_files_exit_2(
    text: str, capsys: pytest.CaptureFixture[str], no_instrument: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        bench = folder / "bench.yaml"
        bench.write_text(text, encoding="utf-8")
        code, _ = _run_cli(["bench", "check", "--bench", str(bench)], folder, capsys, no_instrument)
        assert code == 2


@pytest.mark.fault_class("bad input: fuzzed recipes (hypothesis)")
@FUZZ
@given(text=YAML_INPUT)
def test_fuzzed_recipes_exit_2(
    text: str, capsys: pytest.CaptureFixture[str], no_instrument: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        recipe = folder / "recipe.yaml"
        recipe.write_text(text, encoding="utf-8")
        argv = ["sequence", str(recipe), "--sim", "-o", str(folder / "out")]
        code, _ = _run_cli(argv, folder, capsys, no_instrument)
        assert code == 2


@pytest.mark.fault_class("bad input: fuzzed parameter files (hypothesis)")
@FUZZ
@given(text=YAML_INPUT, procedure=st.sampled_from(PROCEDURES))
def test_fuzzed_parameter_files_exit_2(
    text: str, procedure: str, capsys: pytest.CaptureFixture[str], no_instrument: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        params = folder / "params.yaml"
        params.write_text(text, encoding="utf-8")
        argv = ["run", procedure, "--sim", "-o", str(folder / "out"), "--params", str(params)]
        code, _ = _run_cli([*argv, "--set", "no_such_parameter=1"], folder, capsys, no_instrument)
        assert code == 2


@pytest.mark.fault_class("bad input: non-regular files")
@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
@pytest.mark.parametrize("option", ["--bench", "--params", "sequence", "analyze", "recover"])
def test_non_regular_files_are_refused_at_once(
    kind: str,
    option: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_instrument: list[str],
) -> None:
    if kind == "fifo":
        path = tmp_path / "input"
        os.mkfifo(path)
    elif kind == "folder":
        path = tmp_path / "input"
        path.mkdir()
    else:
        path = Path("/dev/zero")
    argv = {
        "--bench": ["bench", "check", "--bench", str(path)],
        "--params": ["run", "jlv", "--sim", "--params", str(path)],
        "sequence": ["sequence", str(path), "--sim"],
        "analyze": ["analyze", str(path)],
        "recover": ["recover", str(path)],
    }[option]
    code, err = _run_cli(argv, tmp_path, capsys, no_instrument)
    assert code == 2
    assert str(path) in err


# --------------------------------------------------------------------------- run files
def _objects(path: Path) -> list[str]:
    names: list[str] = []
    with h5py.File(path, "r") as handle:
        handle.visit(names.append)
    return sorted(names)


DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 0.999)),
    st.tuples(st.just("flip"), st.lists(st.integers(0, 2_100_000), min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 10_000)),
    st.tuples(
        st.just("retype"),
        st.integers(0, 10_000),
        st.sampled_from(["text", "int", "empty", "2d", "scalar", "huge"]),
    ),
    st.tuples(
        st.just("attribute"),
        st.sampled_from(["procedure", "status", "procedure_class", "start_time"]),
        # integers HDF5 can store (an attribute is at most 64-bit): hypothesis found -2**63-1
        st.one_of(
            st.text(max_size=8),
            st.integers(min_value=-(2**63), max_value=2**64 - 1),
            st.just(b"\xff\xfe"),
        ),
    ),
)


def _damage(good: Path, folder: Path, damage: tuple[Any, ...]) -> Path:
    target = folder / "damaged.h5"
    kind = damage[0]
    if kind == "truncate":
        data = good.read_bytes()
        target.write_bytes(data[: int(len(data) * damage[1])])
        return target
    if kind == "flip":
        data = bytearray(good.read_bytes())
        for offset in damage[1]:
            data[offset % len(data)] ^= 0x5A
        target.write_bytes(bytes(data))
        return target
    shutil.copyfile(good, target)
    names = _objects(good)
    with h5py.File(target, "r+") as handle:
        if kind == "delete":
            name = names[damage[1] % len(names)]
            if name in handle:
                del handle[name]
        elif kind == "retype":
            datasets = [n for n in names if isinstance(handle[n], h5py.Dataset)]
            name = datasets[damage[1] % len(datasets)]
            del handle[name]
            how = damage[2]
            if how == "huge":
                handle.create_dataset(name, shape=(10**12,), dtype="f8", chunks=(4096,))
            else:
                value = {
                    "text": np.array([b"nope"] * 3),
                    "int": np.arange(5, dtype="i1"),
                    "empty": np.empty(0),
                    "2d": np.ones((3, 4)),
                    "scalar": np.float64(np.nan),
                }[how]
                handle[name] = value
        else:
            handle["entry"].attrs[damage[1]] = damage[2]
    return target


@pytest.mark.fault_class("bad input: damaged run files (hypothesis)")
@FUZZ
@given(damage=DAMAGE, command=st.sampled_from(["analyze", "report", "recover", "lifetime-fit"]))
def test_damaged_run_files_end_cleanly(
    damage: tuple[Any, ...],
    command: str,
    good: Path,
    capsys: pytest.CaptureFixture[str],
    no_instrument: list[str],
) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        path = _damage(good, folder, damage)
        argv = [command, str(path)]
        if command == "report":
            argv += ["-o", str(folder / "report.png")]
            before = {folder / "report.png"}
        else:
            before = set()
        code, err = _run_cli(argv, folder, capsys, no_instrument) if not before else (None, "")
        if before:  # a report may be drawn: only the named picture may appear
            gc.collect()
            started = time.monotonic()
            code = main(argv)
            captured = capsys.readouterr().err
            assert "Traceback" not in captured and "internal error" not in captured
            assert no_instrument == []
            assert time.monotonic() - started < TIME_LIMIT_S
            assert _data_files(folder) - {path} <= before
            err = captured
        assert code in {0, 1, 2}
        if code:
            assert str(path) in err or "damaged.h5" in err, err


# --------------------------------------------------------------------------- subprocess
def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "perovlab_daq.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_LIMIT_S,
    )


PLANTED = """
from pathlib import Path
Path(__file__).with_name("PLANTED_CODE_RAN").write_text("yes")
class Evil:
    pass
"""


@pytest.mark.fault_class("bad input: code planted beside a run file")
@pytest.mark.parametrize("where", ["procedure_class", "procedure"])
@pytest.mark.parametrize("command", ["analyze", "report", "recover"])
def test_a_module_planted_in_the_working_folder_never_runs(
    where: str, command: str, good: Path, tmp_path: Path
) -> None:
    (tmp_path / "planted_evil.py").write_text(PLANTED, encoding="utf-8")
    run_file = tmp_path / "run.h5"
    shutil.copyfile(good, run_file)
    with h5py.File(run_file, "r+") as handle:
        entry = handle["entry"]
        entry.attrs["procedure_class"] = "planted_evil:Evil"
        if where == "procedure":
            entry.attrs["procedure"] = "planted_evil"
            if "procedure" in entry:
                del entry["procedure"]
            entry["procedure"] = "planted_evil"
    args = [command, run_file.name]
    if command == "report":
        args += ["-o", "report.png"]
    result = _cli(args, tmp_path)
    assert not (tmp_path / "PLANTED_CODE_RAN").exists(), result.stderr
    assert "Traceback" not in result.stderr
    if where == "procedure" and command != "recover":
        assert result.returncode == 2
        assert "planted_evil" in result.stderr


@pytest.mark.fault_class("bad input: malformed-input corpus")
@pytest.mark.parametrize(
    "args",
    [
        ["run", "lifetime", "--sim", "--set", "current_density=1 mA/cm^9^9^9"],
        ["bench", "check", "--bench", "bomb.yaml"],
        ["run", "jlv", "--sim", "--params", "fifo.yaml"],
        ["analyze", "forged.h5"],
    ],
    ids=["unit-tower", "alias-bomb", "fifo", "forged-shape"],
)
def test_in_a_real_process_within_the_time_limit(
    args: list[str], good: Path, tmp_path: Path
) -> None:
    (tmp_path / "bomb.yaml").write_text(BILLION_LAUGHS, encoding="utf-8")
    os.mkfifo(tmp_path / "fifo.yaml")
    forged = _damage(good, tmp_path, ("retype", 0, "huge"))
    forged.rename(tmp_path / "forged.h5")
    result = _cli(args, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not list(tmp_path.glob("data/*.h5"))


def test_a_closed_pipe_ends_quietly(good: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    copies = []
    for index in range(3):
        copy = tmp_path / f"run{index}.h5"
        shutil.copyfile(good, copy)
        copies.append(str(copy))
    process = subprocess.Popen(
        [sys.executable, "-m", "perovlab_daq.cli", "analyze", "--no-store", "-j", "1", *copies],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader (``head``) went away before the first line
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) in {0, 1}
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_the_fast_jlv_settings_are_valid() -> None:
    """The corpus relies on FAST_JLV being valid: only the defect makes a case fail."""
    assert FAST_JLV and all("=" in v for v in FAST_JLV[1::2])
