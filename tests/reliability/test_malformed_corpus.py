"""A corpus of malformed inputs, one of each kind, through the real command line.

Every case must end within 10 s with exit code 2 (bad input) or 1 (a damaged data file,
named in the message), one line on stderr and no traceback, no new data file, and no
instrument opened (``Bench.open`` never called, no command reached the simulator).
``python tests/reliability/test_malformed_corpus.py`` is not needed: run it with pytest;
``-s`` prints one line per case with its code and time.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import pytest
from malformed_inputs import (
    BILLION_LAUGHS,
    DEEP,
    FAST_JLV,
    absurd_shape,
    edited,
    fifo,
    flipped,
    good_run_file,
    procedure_named,
    truncated,
    without,
    write,
    wrong_dtype,
)

from perovlab_daq.cli import main
from perovlab_daq.sim.visalib import SimBenchLibrary

TIME_LIMIT_S = 10
Case = Callable[[Path, Path], list[str]]
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _bench(text: str) -> Case:
    return lambda tmp, good: ["bench", "check", "--bench", str(write(tmp, "bench.yaml", text))]


def _params(text: str) -> Case:
    return lambda tmp, good: [
        "run",
        "jlv",
        "--sim",
        "-o",
        str(tmp / "out"),
        "--params",
        str(write(tmp, "params.yaml", text)),
    ]


def _recipe(text: str) -> Case:
    return lambda tmp, good: [
        "sequence",
        str(write(tmp, "recipe.yaml", text)),
        "--sim",
        "-o",
        str(tmp / "out"),
    ]


def _run_set(assignment: str, procedure: str = "jlv") -> Case:
    return lambda tmp, good: [
        "run",
        procedure,
        "--sim",
        "-o",
        str(tmp / "out"),
        "--set",
        assignment,
    ]


def _analyze(make: Callable[[Path, Path], Path], command: str = "analyze") -> Case:
    def case(tmp: Path, good: Path) -> list[str]:
        path = make(tmp, good)
        if command == "report":
            return ["report", str(path), "-o", str(tmp / "r.png")]
        return [command, str(path)]

    return case


def _file_in_the_way(tmp: Path, good: Path) -> list[str]:
    blocker = write(tmp, "blocker", "x")
    return ["run", "jlv", "--sim", "-o", str(blocker / "sub"), *FAST_JLV]


def _h5_under_a_file(tmp: Path, good: Path) -> list[str]:
    blocker = write(tmp, "blocker", "x")
    return ["run", "jlv", "--sim", "-o", str(blocker / "x.h5"), *FAST_JLV]


def _read_only_folder(tmp: Path, good: Path) -> list[str]:
    folder = tmp / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return ["run", "jlv", "--sim", "-o", str(folder), *FAST_JLV]


def _existing_output(tmp: Path, good: Path) -> list[str]:
    return ["run", "jlv", "--sim", "-o", str(good), *FAST_JLV]


def _report_to_folder(tmp: Path, good: Path) -> list[str]:
    (tmp / "pic.png").mkdir()
    return ["report", str(good), "-o", str(tmp / "pic.png")]


def _report_nowhere(tmp: Path, good: Path) -> list[str]:
    return ["report", str(good), "-o", str(tmp / "no" / "such" / "r.png")]


def _dangling_external_link(handle: h5py.File) -> None:
    handle["entry/data/extra"] = h5py.ExternalLink("/dev/zero", "/x")


CASES: dict[str, tuple[Case, set[int]]] = {
    # command line
    "unit-exponent-tower": (_run_set("stop_voltage=1 V^9^9^9"), {2}),
    "unit-exponent-tower-no-number": (_run_set("current_density=mA/cm^9^9^9", "lifetime"), {2}),
    "unit-huge-exponent": (_run_set("current_density=1 mA/cm**99999", "lifetime"), {2}),
    "unit-very-long": (_run_set("stop_voltage=" + "1" * 5000 + " V"), {2}),
    "number-overflow": (_run_set("stop_voltage=1e400"), {2}),
    "unit-overflow": (_run_set("current_density=1e300 kA/nm^2", "lifetime"), {2}),
    "python-expression": (_run_set("stop_voltage=__import__('os').system('true')"), {2}),
    "nul-in-value": (_run_set("stop_voltage=4\x00"), {2}),
    "seed-not-int": (lambda t, g: ["run", "jlv", "--sim", "--seed", "x1"], {2}),
    "unknown-preset": (lambda t, g: ["run", "jlv", "--sim", "nosuch", "-o", str(t)], {2}),
    "sample-escapes": (lambda t, g: ["run", "jlv", "--sim", "-o", str(t), "--sample", "../x"], {2}),
    "durability-inf": (lambda t, g: ["run", "jlv", "--sim", "--durability", "inf"], {2}),
    "jobs-zero": (lambda t, g: ["analyze", "-j", "0", str(g)], {2}),
    "unknown-command": (lambda t, g: ["calibrate", "--now"], {2}),
    # bench files
    "bench-fifo": (lambda t, g: ["bench", "check", "--bench", str(fifo(t))], {2}),
    "bench-device": (lambda t, g: ["run", "jlv", "--bench", "/dev/zero"], {2}),
    "bench-folder": (lambda t, g: ["bench", "check", "--bench", str(t)], {2}),
    "bench-alias-bomb": (_bench(BILLION_LAUGHS), {2}),
    "bench-deep": (_bench(DEEP), {2}),
    "bench-huge": (_bench("# " + "x" * (2 << 20) + "\n"), {2}),
    "bench-not-utf8": (
        lambda t, g: ["bench", "check", "--bench", str(write(t, "b.yaml", b"\xff\xfe r"))],
        {2},
    ),
    "bench-python-tag": (_bench("roles: !!python/object/apply:os.system ['true']\n"), {2}),
    "bench-binary-tag": (_bench("simulated: true\nroles: !!binary aGVsbG8=\n"), {2}),
    "bench-role-list": (_bench("simulated: true\nroles: [1, 2]\n"), {2}),
    # parameter files
    "params-fifo": (lambda t, g: ["run", "jlv", "--sim", "--params", str(fifo(t, "p.yaml"))], {2}),
    "params-alias-bomb": (_params(BILLION_LAUGHS), {2}),
    "params-list": (_params("- stop_voltage\n- 4\n"), {2}),
    "params-nested-value": (_params("stop_voltage: {a: [1, 2]}\n"), {2}),
    "params-inf": (_params("stop_voltage: .inf\n"), {2}),
    "params-set-tag": (_params("stop_voltage: !!set {4}\n"), {2}),
    # recipes
    "recipe-fifo": (lambda t, g: ["sequence", str(fifo(t, "r.yaml")), "--sim"], {2}),
    "recipe-alias-bomb": (_recipe(BILLION_LAUGHS), {2}),
    "recipe-deep": (_recipe(DEEP), {2}),
    "recipe-bad-unit-in-run-3": (
        _recipe(
            "runs:\n - {procedure: jlv}\n - {procedure: jlv}\n"
            " - {procedure: lifetime, parameters: {current_density: 20 mA/cm^9^9}}\n"
        ),
        {2},
    ),
    "recipe-scalar": (_recipe("42\n"), {2}),
    # output paths
    "output-file-in-the-way": (_file_in_the_way, {2}),
    "output-h5-under-a-file": (_h5_under_a_file, {2}),
    "output-h5-no-folder": (
        lambda t, g: ["run", "jlv", "--sim", "-o", str(t / "a" / "b" / "x.h5"), *FAST_JLV],
        {2},
    ),
    "output-exists": (_existing_output, {2}),
    "output-read-only": (_read_only_folder, {2}),
    "report-to-a-folder": (_report_to_folder, {2}),
    "report-no-folder": (_report_nowhere, {2}),
    "report-wrong-suffix": (lambda t, g: ["report", str(g), "-o", str(t / "r.txt")], {2}),
    "demo-output-is-a-file": (
        lambda t, g: ["demo", "-o", str(write(t, "demo-file", "x"))],
        {2},
    ),
    # run files
    "analyze-fifo": (_analyze(lambda t, g: fifo(t, "f.h5")), {1, 2}),
    "analyze-folder": (_analyze(lambda t, g: t), {1, 2}),
    "analyze-empty": (_analyze(lambda t, g: write(t, "e.h5", b"")), {1, 2}),
    "analyze-text": (_analyze(lambda t, g: write(t, "t.h5", "not hdf5\n")), {1, 2}),
    "analyze-truncated": (_analyze(lambda t, g: truncated(g, t, 0.3)), {1, 2}),
    "analyze-truncated-tail": (_analyze(lambda t, g: truncated(g, t, 0.97)), {1, 2}),
    "analyze-flipped-header": (_analyze(lambda t, g: flipped(g, t, [40, 41, 97])), {1, 2}),
    "analyze-flipped-metadata": (
        _analyze(lambda t, g: flipped(g, t, list(range(600, 2600, 97)))),
        {1, 2},
    ),
    "analyze-absurd-shape": (_analyze(lambda t, g: edited(g, t, "s.h5", absurd_shape)), {1, 2}),
    "analyze-wrong-dtype": (_analyze(lambda t, g: edited(g, t, "d.h5", wrong_dtype)), {1, 2}),
    "analyze-no-data": (_analyze(lambda t, g: edited(g, t, "n.h5", without("entry/data"))), {1, 2}),
    "analyze-no-entry": (_analyze(lambda t, g: edited(g, t, "x.h5", without("entry"))), {1, 2}),
    "analyze-external-link": (
        _analyze(lambda t, g: edited(g, t, "l.h5", _dangling_external_link)),
        {1, 2},
    ),
    "analyze-unknown-procedure": (
        _analyze(lambda t, g: edited(g, t, "u.h5", procedure_named("subprocess"))),
        {2},
    ),
    "report-truncated": (_analyze(lambda t, g: truncated(g, t, 0.5), "report"), {1, 2}),
    "report-absurd-shape": (
        _analyze(lambda t, g: edited(g, t, "s.h5", absurd_shape), "report"),
        {1, 2},
    ),
    "lifetime-fit-not-lifetime": (_analyze(lambda t, g: g, "lifetime-fit"), {1, 2}),
    "lifetime-fit-flipped": (
        _analyze(lambda t, g: flipped(g, t, [40, 41, 97]), "lifetime-fit"),
        {1, 2},
    ),
    "recover-text": (_analyze(lambda t, g: write(t, "t.h5", "nope\n"), "recover"), {1, 2}),
    "recover-fifo": (_analyze(lambda t, g: fifo(t, "f.h5"), "recover"), {1, 2}),
    "recover-truncated": (_analyze(lambda t, g: truncated(g, t, 0.4), "recover"), {1, 2}),
    "resume-garbage": (
        lambda t, g: ["run", "lifetime", "--resume", str(write(t, "r.h5", b"\x00" * 4096))],
        {1, 2},
    ),
    "resume-fifo": (lambda t, g: ["run", "lifetime", "--resume", str(fifo(t, "r.h5"))], {1, 2}),
    "resume-not-lifetime": (lambda t, g: ["run", "lifetime", "--resume", str(g)], {1, 2}),
}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return good_run_file(tmp_path_factory.mktemp("good"))


class _TimeLimit:
    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        def expire(signum: int, frame: Any) -> None:
            raise TimeoutError(f"no answer within {self.seconds} s")

        self.previous = signal.signal(signal.SIGALRM, expire)
        signal.alarm(self.seconds)

    def __exit__(self, *exc: object) -> None:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


def data_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.suffix in {".h5", ".journal", ".log", ".png"}}


TIMES: dict[str, tuple[int, float]] = {}


@pytest.mark.fault_class("bad input: malformed-input corpus")
@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input_is_refused_cleanly(
    name: str,
    good: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_instrument: list[str],
) -> None:
    if name == "output-read-only" and ROOT:
        pytest.skip("root may write anywhere: permissions cannot be tested")
    build, expected = CASES[name]
    monkeypatch.chdir(tmp_path)
    argv = build(tmp_path, good)
    before_files = data_files(tmp_path)
    gc.collect()  # the count is over live simulators: let dead ones go first
    before_commands = SimBenchLibrary.total_command_count()
    started = time.monotonic()
    with _TimeLimit(TIME_LIMIT_S):
        code = main(argv)
    elapsed = time.monotonic() - started
    TIMES[name] = (code, elapsed)
    captured = capsys.readouterr()
    with capsys.disabled():
        print(f"\n  {name}: exit {code} in {elapsed:.2f} s")
    assert code in expected, captured.err
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    assert captured.err.strip(), "a refusal must say why"
    assert no_instrument == []
    assert SimBenchLibrary.total_command_count() == before_commands
    assert data_files(tmp_path) - before_files == set()
    assert elapsed < TIME_LIMIT_S
