"""The ``perovlab-daq`` command line: bench checks, headless runs, analysis, reports.

Exit codes (the same for every subcommand):

* 0 - finished;
* 1 - failed (instrument fault, disk full, ...), the reason in the file and on stderr;
* 2 - bad input (unknown name, value out of range, bad bench or recipe file), reported in
  one line before any instrument is touched and without creating a data file;
* 130 - stopped by Ctrl-C or SIGTERM after a safe stop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from perovlab_daq import __version__

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class UsageError(ValueError):
    """Bad input on the command line: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors raise :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    """Parse a whole number >= 1 (``--jobs``); argparse reports anything else as a usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the mutually exclusive ``--sim [PRESET]`` / ``--bench FILE`` options."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--sim",
        nargs="?",
        const="",
        default=None,
        metavar="PRESET",
        help="use the simulated bench, optionally with a sample preset (default qd-in-matrix)",
    )
    group.add_argument("--bench", type=Path, metavar="FILE", help="bench file (YAML)")
    parser.add_argument("--seed", type=int, default=None, help="noise seed of the simulated bench")


def bench_config_from_args(args: argparse.Namespace) -> Any:
    """Return the :class:`~perovlab_daq.bench.BenchConfig` the options ask for.

    Neither option means the simulated bench, so a newcomer's first command works.
    """
    from perovlab_daq.bench import load_bench, sim_bench

    if getattr(args, "bench", None) is not None:
        if args.seed is not None:
            raise UsageError("--seed applies to the simulated bench only (use --sim)")
        return load_bench(args.bench)
    preset = getattr(args, "sim", None) or None
    return sim_bench(preset, seed=getattr(args, "seed", None))


# --------------------------------------------------------------------------- bench
def _cmd_bench_check(args: argparse.Namespace) -> int:
    from perovlab_daq.bench import DEFAULT_REQUIRED_ROLES, Bench

    config = bench_config_from_args(args)
    required = args.require or list(DEFAULT_REQUIRED_ROLES)
    config.require_roles(required)
    bench = Bench(config, procedure=None)
    statuses = bench.check()
    rows = [
        {
            "role": s.role,
            "driver": s.driver,
            "resource": s.resource,
            "identity": s.identity,
            "ok": s.ok,
            "problem": s.problem,
        }
        for s in statuses
    ]
    if args.json:
        print(json.dumps({"bench": config.name, "simulated": config.simulated, "roles": rows}))
    else:
        print(f"bench: {config.name} ({'simulated' if config.simulated else 'real instruments'})")
        width = max(len(r["role"]) for r in rows)
        for r in rows:
            state = r["identity"] if r["ok"] else f"FAILED: {r['problem']}"
            print(f"  {r['role']:<{width}}  {r['driver']:<18} {r['resource']:<40} {state}")
    failures = [s for s in statuses if not s.ok]
    if failures:
        for s in failures:
            print(f"error: {s.problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _cmd_bench_presets(args: argparse.Namespace) -> int:
    from perovlab_daq.sim.presets import PRESETS

    if args.json:
        out = {name: _preset_summary(p) for name, p in PRESETS.items()}
        print(json.dumps(out, indent=1))
        return EXIT_OK
    for name, preset in PRESETS.items():
        summary = _preset_summary(preset)
        print(f"{name}: {summary['description']}")
        for figure in summary["published"]:
            print(
                f"    {figure['quantity']}: {figure['value']:g} {figure['unit']}"
                f"  ({figure['source']})"
            )
        for assumption in summary["assumptions"]:
            print(f"    model choice: {assumption}")
    return EXIT_OK


def _preset_summary(preset: Any) -> dict[str, Any]:
    return {
        "description": preset.description,
        "published": [
            {"quantity": f.quantity, "value": f.value, "unit": f.unit, "source": f.source}
            for f in preset.published
        ],
        "assumptions": list(preset.assumptions),
    }


# --------------------------------------------------------------------------- list / run
def _cmd_list(args: argparse.Namespace) -> int:
    from perovlab_daq.runner import procedure_classes

    classes = procedure_classes()
    if args.json:
        out = {
            name: {
                "title": cls.TITLE,
                "description": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
                "required_roles": list(cls.REQUIRED_ROLES),
                "optional_roles": list(cls.OPTIONAL_ROLES),
                "columns": dict(cls.COLUMNS),
                "parameters": cls.parameter_specs(),
            }
            for name, cls in classes.items()
        }
        print(json.dumps(out, indent=1, default=str))
        return EXIT_OK
    for name, cls in classes.items():
        print(f"{name}: {cls.TITLE}")
        print(
            f"    roles: {', '.join(cls.REQUIRED_ROLES)}"
            + (f" (optional: {', '.join(cls.OPTIONAL_ROLES)})" if cls.OPTIONAL_ROLES else "")
        )
        for attribute, spec in cls.parameter_specs().items():
            units = f" {spec['units']}" if spec["units"] else ""
            if "minimum" in spec:
                allowed = f"{spec['minimum']:g} to {spec['maximum']:g}{units}"
            elif "choices" in spec:
                allowed = " | ".join(map(str, spec["choices"]))
            else:
                allowed = spec["type"]
            print(
                f"    {attribute:<28} default {spec['default']!s:<10} [{allowed}]  {spec['label']}"
            )
    return EXIT_OK


def _parse_sets(pairs: Sequence[str] | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set expects NAME=VALUE, got {pair!r}")
        values[name.strip()] = value.strip()
    return values


class _StopFlag(threading.Event):
    """An event that remembers why it was set (signal name)."""

    reason = ""


@contextlib.contextmanager
def _stop_on_signals(stop: _StopFlag) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into a safe stop of the run instead of an exception."""

    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: already stopping safely", name)
            return
        stop.reason = name
        print(f"\n{name}: stopping safely (outputs off, file closed)...", file=sys.stderr)
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Progress:
    """A rich progress bar on a terminal, plain log lines otherwise."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.interactive = sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._last_logged = -10.0

    def __enter__(self) -> _Progress:
        if self.interactive:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>5.1f} %"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.title, total=100)
        else:
            print(f"{self.title}: started", file=sys.stderr, flush=True)
        return self

    def update(self, percent: float, message: str = "") -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=percent)
        elif percent - self._last_logged >= 10 or percent >= 100:
            self._last_logged = percent
            print(f"{self.title}: {percent:5.1f} %", file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _sample_from_args(args: argparse.Namespace) -> dict[str, str | None]:
    return {
        "sample": args.sample,
        "device": args.device,
        "pixel": args.pixel,
        "operator": args.operator,
        "notes": args.notes,
    }


def _cmd_run(args: argparse.Namespace) -> int:
    from perovlab_daq.runner import execute_run, plan_run, read_parameter_file

    if args.resume is not None:
        return _resume_run(args)
    config = bench_config_from_args(args)
    values: dict[str, Any] = {}
    if args.params is not None:
        values.update(read_parameter_file(args.params))
    values.update(_parse_sets(args.set))
    plan = plan_run(
        args.procedure,
        bench_config=config,
        parameters=values,
        output=args.output,
        sample=_sample_from_args(args),
        durability_interval_s=args.durability,
        power_loss_safe=args.power_loss_safe,
    )
    stop = _StopFlag()
    with _stop_on_signals(stop), _Progress(f"{args.procedure} -> {plan.path.name}") as progress:
        outcome = execute_run(plan, stop_event=stop, on_progress=progress.update)
    _print_outcome(outcome, as_json=args.json)
    return outcome.exit_code


def _resume_run(args: argparse.Namespace) -> int:
    """Continue an interrupted lifetime run in the same file (``run lifetime --resume FILE``)."""
    from perovlab_daq.resume import execute_resume, plan_resume, simulated_bench_of

    if args.procedure != "lifetime":
        raise UsageError("--resume applies to 'run lifetime' only")
    if args.set or args.params or args.output:
        raise UsageError("--resume takes parameters and file from FILE: drop --set, --params, -o")
    if not args.resume.exists():
        raise UsageError(f"--resume: {args.resume}: no such file")
    if args.bench is None and args.sim is None:
        config = simulated_bench_of(args.resume)
    else:
        config = bench_config_from_args(args)
    plan = plan_resume(
        args.resume,
        config,
        durability_interval_s=args.durability,
        power_loss_safe=args.power_loss_safe,
    )
    stop = _StopFlag()
    with _stop_on_signals(stop), _Progress(f"lifetime (resumed) -> {plan.path.name}") as progress:
        outcome = execute_resume(plan, stop_event=stop, on_progress=progress.update)
    _print_outcome(outcome, as_json=args.json)
    return outcome.exit_code


def _cmd_lifetime_fit(args: argparse.Namespace) -> int:
    from perovlab_daq.figures import AnalysisInputError
    from perovlab_daq.figures.lifetime_fit import (
        draw_lifetime_fit,
        format_fit_report,
        lifetime_fit_report,
    )
    from perovlab_daq.runner import jsonable

    for path in args.files:
        if not path.exists():
            print(f"error: {path}: no such file", file=sys.stderr)
            return EXIT_BAD_INPUT
    if args.output is not None and args.output.suffix.lower() not in {".png", ".pdf"}:
        raise UsageError(f"-o {args.output}: the figure must be a .png or .pdf file")
    for value in args.at or []:
        if not (value > 0 and value < 1e7):
            raise UsageError(f"--at {value}: a luminance from 0 to 1e7 cd/m^2 (exclusive)")
    try:
        report = lifetime_fit_report(args.files, at=args.at or [100.0, 1000.0])
    except AnalysisInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.output is not None:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        figure = Figure(figsize=(7, 5), layout="constrained")
        draw_lifetime_fit(args.files, figure, report=report)
        figure.savefig(args.output, dpi=110)
    print(json.dumps(report, default=jsonable) if args.json else format_fit_report(report))
    return EXIT_OK


def _print_outcome(outcome: Any, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(outcome.summary()))
        return
    print(f"file:   {outcome.path}")
    print(f"status: {outcome.status}" + (f" ({outcome.reason})" if outcome.reason else ""))
    for key, value in outcome.figures.items():
        print(f"  {key}: {_format_figure(value)}")


def _format_figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cmd_recover(args: argparse.Namespace) -> int:
    from perovlab_daq.storage import StorageError, recover

    code = EXIT_OK
    for path in args.files:
        if not Path(path).exists():
            print(f"error: {path}: no such file", file=sys.stderr)
            code = EXIT_BAD_INPUT
            continue
        try:
            report = recover(path)
        except StorageError as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            code = EXIT_FAILED
            continue
        print(report)
    return code


def _cmd_analyze(args: argparse.Namespace) -> int:
    from perovlab_daq.figures import analyze_files

    results: dict[str, Any] = {}
    code = EXIT_OK
    for path, figures in analyze_files(args.files, store=not args.no_store, jobs=args.jobs):
        if isinstance(figures, FileNotFoundError):
            print(f"error: {path}: no such file", file=sys.stderr)
            code = EXIT_BAD_INPUT
            continue
        if isinstance(figures, Exception):
            print(f"error: {path}: {figures}", file=sys.stderr)
            code = EXIT_BAD_INPUT
            continue
        results[str(path)] = figures
        if not args.json:
            print(f"{path}:")
            for key, value in figures.items():
                print(f"  {key}: {_format_figure(value)}")
    if args.json:
        from perovlab_daq.runner import jsonable

        print(json.dumps({p: {k: jsonable(v) for k, v in f.items()} for p, f in results.items()}))
    return code


# ------------------------------------------------------------------ sequence / report / demo
def _cmd_report(args: argparse.Namespace) -> int:
    from perovlab_daq.figures import AnalysisInputError, draw_report

    try:
        out = draw_report(args.file, args.output)
    except FileNotFoundError:
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AnalysisInputError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"report: {out}")
    return EXIT_OK


def _cmd_sequence(args: argparse.Namespace) -> int:
    from perovlab_daq.sequence import load_recipe, plan_recipe, recipe_exit_code

    config = bench_config_from_args(args)
    recipe = load_recipe(args.recipe)
    steps = plan_recipe(recipe, bench_config=config, output=args.output)
    print(f"recipe {recipe.get('name') or args.recipe}: {len(steps)} run(s) on {config.name}")
    stop = _StopFlag()
    with _stop_on_signals(stop):
        results = _run_steps(steps, stop)
    _print_step_table(results, as_json=args.json)
    return recipe_exit_code(results)


def _run_steps(steps: list[Any], stop: threading.Event) -> list[Any]:
    from perovlab_daq.sequence import run_recipe

    progress: dict[str, _Progress] = {}

    def on_step(number: int, step: Any) -> None:
        for bar in progress.values():
            bar.__exit__(None, None, None)
        progress.clear()
        bar = _Progress(f"[{number + 1}/{len(steps)}] {step.label}")
        progress["bar"] = bar.__enter__()

    def on_progress(percent: float, message: str) -> None:
        if "bar" in progress:
            progress["bar"].update(percent, message)

    try:
        return run_recipe(steps, stop_event=stop, on_step=on_step, on_progress=on_progress)
    finally:
        for bar in progress.values():
            bar.__exit__(None, None, None)


def _print_step_table(
    results: list[Any], *, as_json: bool, extra: dict[str, str] | None = None
) -> None:
    rows = []
    for r in results:
        outcome = r.outcome
        figures = outcome.figures if outcome is not None else {}
        wanted = [k for k in getattr(r, "summary_keys", ()) if k in figures] or list(figures)[:3]
        key_figures = ", ".join(f"{k}={_format_figure(figures[k])}" for k in wanted)
        rows.append(
            {
                "run": r.label,
                "procedure": r.procedure,
                "status": r.status,
                "file": str(outcome.path) if outcome is not None else "",
                "note": (outcome.reason if outcome is not None else r.error) or "",
                "figures": key_figures,
                "report": (extra or {}).get(r.label, ""),
            }
        )
    if as_json:
        print(json.dumps(rows))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="runs")
    for column in ("run", "status", "file", "key figures", "note"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["run"], row["status"], row["file"], row["figures"], row["note"])
    Console(width=160).print(table)


def _cmd_demo(args: argparse.Namespace) -> int:
    from importlib import resources

    from perovlab_daq.bench import sim_bench
    from perovlab_daq.figures import AnalysisInputError, draw_report
    from perovlab_daq.runner import procedure_classes
    from perovlab_daq.sequence import load_recipe, plan_recipe, recipe_exit_code

    folder = args.output
    folder.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files("sim_configs") / "demo_recipe.yaml") as recipe_path:
        recipe = load_recipe(recipe_path)
    installed = procedure_classes()
    recipe["runs"] = [run for run in recipe["runs"] if run.get("procedure") in installed]
    print(
        f"perovlab-daq demo: {len(recipe['runs'])} runs on the simulated bench -> {folder}/\n"
        "(simulated instruments; slow processes such as ageing run faster, see each file's "
        "ageing_acceleration)"
    )
    steps = plan_recipe(recipe, bench_config=sim_bench(seed=args.seed), output=folder)
    stop = _StopFlag()
    with _stop_on_signals(stop):
        results = _run_steps(steps, stop)
    reports: dict[str, str] = {}
    for r in results:
        if r.outcome is None:
            continue
        out = r.outcome.path.with_suffix(".png")
        try:
            draw_report(r.outcome.path, out)
            reports[r.label] = str(out)
        except AnalysisInputError as exc:
            print(f"warning: no report for {r.outcome.path.name}: {exc}", file=sys.stderr)
    _print_step_table(results, as_json=False, extra=reports)
    print(
        f"\nData files (HDF5), run logs and report pictures are in {folder}/.\n"
        f"Look at a report:   open {folder}/*.png\n"
        f"Key figures again:  perovlab-daq analyze {folder}/*.h5\n"
        "Open one in Python: h5py.File(path, 'r')['entry/data'] (layout: docs/hdf5-layout.md)"
    )
    return recipe_exit_code(results)


def _cmd_gui(args: argparse.Namespace) -> int:
    from perovlab_daq.gui.app import run_gui

    config = bench_config_from_args(args)
    if args.run and args.screenshot is None:
        raise UsageError("--run is for screenshots: use it with --screenshot OUT.png")
    return run_gui(
        config,
        data_dir=args.output,
        procedure=args.procedure,
        values=_parse_sets(args.set),
        screenshot=args.screenshot,
        runs=args.run or [],
    )


# --------------------------------------------------------------------------- wiring
Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every subcommand."""
    parser = _Parser(
        prog="perovlab-daq",
        description="Acquisition for perovskite LEDs and nanocrystal films, "
        "on real instruments or on the simulated bench.",
    )
    parser.add_argument("--version", action="version", version=f"perovlab-daq {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    bench = sub.add_parser("bench", help="check the bench, list simulated presets")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="ACTION", parser_class=_Parser)
    check = bench_sub.add_parser(
        "check", help="open every role and print the identity each instrument returns"
    )
    add_bench_arguments(check)
    check.add_argument(
        "--require",
        action="append",
        metavar="ROLE",
        help="role the bench must define (repeatable; default source_meter and photodetector)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON document")
    check.set_defaults(func=_cmd_bench_check)
    presets = bench_sub.add_parser("presets", help="simulated samples and their published figures")
    presets.add_argument("--json", action="store_true", help="print one JSON document")
    presets.set_defaults(func=_cmd_bench_presets)
    bench.set_defaults(func=lambda a: _missing(bench))

    lst = sub.add_parser("list", help="procedures and their parameters (units, defaults, ranges)")
    lst.add_argument("--json", action="store_true", help="print one JSON document")
    lst.set_defaults(func=_cmd_list)

    run = sub.add_parser("run", help="run one procedure headless into an HDF5 file")
    run.add_argument("procedure", help="procedure name (see 'perovlab-daq list')")
    add_bench_arguments(run)
    run.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="parameter value, units allowed where ambiguous (e.g. current_density=20mA/cm^2)",
    )
    run.add_argument("--params", type=Path, metavar="FILE", help="YAML file of parameter values")
    run.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="DIR_OR_FILE",
        help="folder for the run file (default ./data) or a new .h5 file",
    )
    run.add_argument("--sample", help="sample identifier")
    run.add_argument("--device", help="device (substrate) identifier")
    run.add_argument("--pixel", help="pixel identifier")
    run.add_argument("--operator", help="operator name")
    run.add_argument("--notes", help="free-text notes stored with the run")
    run.add_argument(
        "--durability",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="most data a crash may cost, in seconds (default 1)",
    )
    run.add_argument(
        "--power-loss-safe",
        action="store_true",
        help="fsync the journal at every commit (survives a power cut)",
    )
    run.add_argument("--json", action="store_true", help="print one JSON summary at the end")
    run.add_argument(
        "--resume",
        type=Path,
        metavar="FILE",
        help="continue an interrupted lifetime run in FILE (after 'perovlab-daq recover')",
    )
    run.set_defaults(func=_cmd_run)

    fit = sub.add_parser(
        "lifetime-fit", help="acceleration factor n (L0^n T50 = C) over lifetime runs"
    )
    fit.add_argument("files", nargs="+", type=Path, metavar="FILE")
    fit.add_argument(
        "--at",
        action="append",
        type=float,
        metavar="CD_M2",
        help="luminance to extrapolate T50 to (repeatable; default 100 and 1000)",
    )
    fit.add_argument("--json", action="store_true", help="print one JSON document")
    fit.add_argument("-o", "--output", type=Path, metavar="OUT.png", help="log-log figure")
    fit.set_defaults(func=_cmd_lifetime_fit)

    rec = sub.add_parser("recover", help="make a file left by a killed run readable")
    rec.add_argument("files", nargs="+", type=Path, metavar="FILE")
    rec.set_defaults(func=_cmd_recover)

    ana = sub.add_parser("analyze", help="key figures of runs")
    ana.add_argument("files", nargs="+", type=Path, metavar="FILE")
    ana.add_argument("--json", action="store_true", help="print one JSON document")
    ana.add_argument(
        "--no-store", action="store_true", help="do not write the figures into entry/analysis"
    )
    ana.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="files analysed in parallel (default: one per core)",
    )
    ana.set_defaults(func=_cmd_analyze)

    rep = sub.add_parser("report", help="draw a run's figures to a PNG or PDF")
    rep.add_argument("file", type=Path, metavar="FILE")
    rep.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.png|OUT.pdf")
    rep.set_defaults(func=_cmd_report)

    seq = sub.add_parser("sequence", help="run a recipe of runs in order (YAML, data only)")
    seq.add_argument("recipe", type=Path, metavar="FILE.yaml")
    add_bench_arguments(seq)
    seq.add_argument("-o", "--output", type=Path, metavar="DIR", help="folder for the run files")
    seq.add_argument("--json", action="store_true", help="print the summary as JSON")
    seq.set_defaults(func=_cmd_sequence)

    demo = sub.add_parser("demo", help="a short tour of every procedure on the simulated bench")
    demo.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("demo-output"),
        metavar="DIR",
        help="folder for files and reports (default ./demo-output)",
    )
    demo.add_argument("--seed", type=int, default=None, help="noise seed")
    demo.set_defaults(func=_cmd_demo)

    gui = sub.add_parser("gui", help="the operator window (queue runs, live plots, re-open files)")
    add_bench_arguments(gui)
    gui.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("data"),
        metavar="DIR",
        help="default folder for the run files (default ./data)",
    )
    gui.add_argument("--procedure", metavar="NAME", help="procedure selected at start")
    gui.add_argument(
        "--set", action="append", metavar="NAME=VALUE", help="prefill a parameter of --procedure"
    )
    gui.add_argument(
        "--screenshot",
        type=Path,
        metavar="OUT.png",
        help="run the --run procedures, save a picture of the window when done, and quit",
    )
    gui.add_argument(
        "--run",
        action="append",
        metavar="PROCEDURE",
        help="procedure to run with short demo parameters before the screenshot (repeatable)",
    )
    gui.set_defaults(func=_cmd_gui)
    return parser


def _missing(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_BAD_INPUT


class _ConsoleFormatter(logging.Formatter):
    """One line per message on the console; tracebacks only with ``-vv`` (and in run logs)."""

    def __init__(self, fmt: str, *, tracebacks: bool) -> None:
        super().__init__(fmt)
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        if self.tracebacks or not (record.exc_info or record.stack_info):
            return super().format(record)
        quiet = logging.makeLogRecord(record.__dict__)
        quiet.exc_info = None
        quiet.exc_text = None
        quiet.stack_info = None
        return super().format(quiet).splitlines()[0]


def configure_logging(verbosity: int) -> None:
    """Log warnings to stderr (info with ``-v``, debug with ``-vv``); run log files get info.

    The root logger passes INFO on so that each run's log file is complete; the console
    handler filters by the requested verbosity.
    """
    console_level = (
        logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    )
    root = logging.getLogger()
    root.setLevel(min(console_level, logging.INFO))
    console = logging.StreamHandler()
    console.setLevel(console_level)
    console.setFormatter(
        _ConsoleFormatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", tracebacks=verbosity >= 2
        )
    )
    root.addHandler(console)
    # pyvisa logs every byte at DEBUG; keep it quiet unless asked three times.
    if verbosity < 3:
        logging.getLogger("pyvisa").setLevel(logging.INFO)
    # pymeasure warns at import time that IPython is missing: irrelevant here.
    logging.getLogger("pymeasure.experiment.experiment").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    from perovlab_daq.bench import BenchError
    from perovlab_daq.runner import RunInputError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    configure_logging(args.verbose)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return func(args)
    except (UsageError, BenchError, RunInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one line for the operator, details in the log
        log.debug("internal error", exc_info=True)
        print(
            f"internal error: {type(exc).__name__}: {exc} (run with -vv for the traceback; "
            "please report it)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
