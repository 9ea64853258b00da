"""The ``perovlab-daq`` commands ``run`` (with ``--resume``), ``sequence``, ``demo``, ``recover``.

Runs on the bench, one at a time or as a recipe, and repair of a file a killed run left.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from perovlab_daq.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    Progress,
    StopFlag,
    UsageError,
    bench_config_from_args,
    console,
    format_figure,
    parse_sets,
    print_outcome,
    say,
    stop_on_signals,
)
from perovlab_daq.cli_args import NO_BENCH_CHOICE, default_bench_file
from perovlab_daq.filecheck import DamagedFileError, NotHdf5Error, check_run_file
from perovlab_daq.safe_input import UnsafeInputError, check_output_folder, check_regular_file

log = logging.getLogger(__name__)


def _sample_from_args(args: argparse.Namespace) -> dict[str, str | None]:
    return {
        "sample": args.sample,
        "device": args.device,
        "pixel": args.pixel,
        "operator": args.operator,
        "notes": args.notes,
    }


def _chosen_bench(args: argparse.Namespace) -> Any:
    """Return the bench config of ``--sim``/``--bench``/the default bench file (else exit 2).

    A run never falls back to the simulator: a simulated file must not pass for a
    measurement (issue 22); :func:`announce_simulated` says so once the run is planned.
    """
    if args.bench is None and args.sim is None:
        default = default_bench_file()
        if default is None:
            raise UsageError(NO_BENCH_CHOICE)
        args.bench = default
    return bench_config_from_args(args)


def announce_simulated(config: Any) -> None:
    """Say on stderr, once the input is checked and before anything runs, that it is simulated."""
    if getattr(config, "simulated", False):
        say(
            f"SIMULATED: {config.name} is the simulated bench; no instrument is used and the "
            "file is marked simulated"
        )


def _cmd_run(args: argparse.Namespace) -> int:
    from perovlab_daq.runner import plan_run, read_parameter_file
    from perovlab_daq.supervisor import execute_supervised

    if args.resume is not None:
        return _resume_run(args)
    config = _chosen_bench(args)
    values: dict[str, Any] = {}
    if args.params is not None:
        values.update(read_parameter_file(args.params))
    values.update(parse_sets(args.set))
    plan = plan_run(
        args.procedure,
        bench_config=config,
        parameters=values,
        output=args.output,
        sample=_sample_from_args(args),
        durability_interval_s=args.durability,
        power_loss_safe=args.power_loss_safe,
    )
    announce_simulated(config)
    stop = StopFlag()
    with stop_on_signals(stop), Progress(f"{args.procedure} -> {plan.path.name}") as progress:
        outcome = execute_supervised(
            plan, stop_event=stop, on_progress=progress.update, verbosity=args.verbose
        )
    print_outcome(outcome, as_json=args.json)
    if config.simulated and not args.json:
        print("SIMULATED: this run was taken on the simulated bench, not measured")
    return outcome.exit_code


def _resume_run(args: argparse.Namespace) -> int:
    """Continue an interrupted lifetime run in the same file (``run lifetime --resume FILE``)."""
    from perovlab_daq.cli.rack import resume_channel_run
    from perovlab_daq.rack import channel_of
    from perovlab_daq.resume import plan_resume, simulated_bench_of
    from perovlab_daq.supervisor import execute_supervised_resume

    if args.procedure != "lifetime":
        raise UsageError("--resume applies to 'run lifetime' only")
    if args.set or args.params or args.output:
        raise UsageError("--resume takes parameters and file from FILE: drop --set, --params, -o")
    if not args.resume.exists():
        raise UsageError(f"--resume: {args.resume}: no such file")
    check_regular_file(args.resume, "run file")  # a FIFO or device would block
    if args.bench is None and args.sim is None:
        config = simulated_bench_of(args.resume)  # refuses a run on real instruments
    else:
        config = _chosen_bench(args)
    if channel_of(args.resume):  # a rack channel continues on its own channel's device
        return resume_channel_run(args, config)
    plan = plan_resume(
        args.resume,
        config,
        durability_interval_s=args.durability,
        power_loss_safe=args.power_loss_safe,
    )
    announce_simulated(config)
    stop = StopFlag()
    with stop_on_signals(stop), Progress(f"lifetime (resumed) -> {plan.path.name}") as progress:
        outcome = execute_supervised_resume(
            plan, stop_event=stop, on_progress=progress.update, verbosity=args.verbose
        )
    print_outcome(outcome, as_json=args.json)
    return outcome.exit_code


def _cmd_recover(args: argparse.Namespace) -> int:
    from perovlab_daq.storage import ForeignFileError, StorageError, recover
    from perovlab_daq.storage.journal import journal_path

    code = EXIT_OK
    for path in args.files:
        if not Path(path).exists():
            print(f"error: {path}: no such file", file=sys.stderr)
            code = EXIT_BAD_INPUT
            continue
        try:
            check_regular_file(path, "run file")  # a FIFO or device would block
            if not journal_path(path).exists():  # else the journal rebuilds the file
                check_run_file(path, allow_unreadable=True)  # damage would hang the salvage
            report = recover(path)
        except ForeignFileError as exc:  # not ours: refused, left byte-identical
            print(f"error: {path}: {exc}", file=sys.stderr)
            code = EXIT_BAD_INPUT
            continue
        except NotHdf5Error as exc:  # not even HDF5: refused, left byte-identical
            print(
                f"error: {path}: not a perovlab-daq run file ({exc.problem}); left untouched",
                file=sys.stderr,
            )
            code = EXIT_BAD_INPUT
            continue
        except UnsafeInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = EXIT_BAD_INPUT
            continue
        except DamagedFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = EXIT_FAILED
            continue
        except (StorageError, OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            print(f"error: {path}: cannot be recovered ({exc})", file=sys.stderr)
            code = EXIT_FAILED
            continue
        print(report)
    return code


def _cmd_sequence(args: argparse.Namespace) -> int:
    from perovlab_daq.sequence import load_recipe, plan_recipe, recipe_exit_code

    config = _chosen_bench(args)
    recipe = load_recipe(args.recipe)
    steps = plan_recipe(recipe, bench_config=config, output=args.output)
    announce_simulated(config)
    print(f"recipe {recipe.get('name') or args.recipe}: {len(steps)} run(s) on {config.name}")
    stop = StopFlag()
    with stop_on_signals(stop):
        results = _run_steps(steps, stop, supervised=True, verbosity=args.verbose)
    _print_step_table(results, as_json=args.json, simulated=config.simulated)
    return recipe_exit_code(results)


def _run_steps(
    steps: list[Any], stop: threading.Event, *, supervised: bool = False, verbosity: int = 0
) -> list[Any]:
    from functools import partial

    from perovlab_daq.runner import execute_run
    from perovlab_daq.sequence import run_recipe
    from perovlab_daq.supervisor import execute_supervised

    execute = partial(execute_supervised, verbosity=verbosity) if supervised else execute_run

    progress: dict[str, Progress] = {}

    def on_step(number: int, step: Any) -> None:
        for bar in progress.values():
            bar.__exit__(None, None, None)
        progress.clear()
        bar = Progress(f"[{number + 1}/{len(steps)}] {step.label}")
        progress["bar"] = bar.__enter__()

    def on_progress(percent: float, message: str) -> None:
        if "bar" in progress:
            progress["bar"].update(percent, message)

    try:
        return run_recipe(
            steps, stop_event=stop, on_step=on_step, on_progress=on_progress, execute=execute
        )
    finally:
        for bar in progress.values():
            bar.__exit__(None, None, None)


def _print_step_table(
    results: list[Any],
    *,
    as_json: bool,
    extra: dict[str, str] | None = None,
    simulated: bool = False,
) -> None:
    rows = []
    for r in results:
        outcome = r.outcome
        figures = outcome.figures if outcome is not None else {}
        wanted = [k for k in getattr(r, "summary_keys", ()) if k in figures] or list(figures)[:3]
        key_figures = ", ".join(f"{k}={format_figure(figures[k])}" for k in wanted)
        rows.append(
            {
                "run": r.label,
                "procedure": r.procedure,
                "status": r.status,
                "file": str(outcome.path) if outcome is not None else "",
                "note": (outcome.reason if outcome is not None else r.error) or "",
                "figures": key_figures,
                "report": (extra or {}).get(r.label, ""),
                "simulated": simulated,
            }
        )
    if as_json:
        print(json.dumps(rows))
        return
    from rich.table import Table

    table = Table(title="runs (SIMULATED: not measured)" if simulated else "runs")
    for column in ("run", "status", "file", "key figures", "note"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["run"], row["status"], row["file"], row["figures"], row["note"])
    console().print(table)


def _cmd_demo(args: argparse.Namespace) -> int:
    from importlib import resources

    from perovlab_daq.bench import sim_bench
    from perovlab_daq.figures import AnalysisInputError, draw_report
    from perovlab_daq.runner import procedure_classes
    from perovlab_daq.sequence import load_recipe, plan_recipe, recipe_exit_code

    folder = check_output_folder(args.output, "demo output folder")
    folder.mkdir(parents=True, exist_ok=True)
    with resources.as_file(
        resources.files("perovlab_daq.sim_configs") / "demo_recipe.yaml"
    ) as recipe_path:
        recipe = load_recipe(recipe_path)
    installed = procedure_classes()
    recipe["runs"] = [run for run in recipe["runs"] if run.get("procedure") in installed]
    print(
        f"perovlab-daq demo: {len(recipe['runs'])} runs on the simulated bench -> {folder}/\n"
        "(simulated instruments; slow processes such as ageing run faster, see each file's "
        "ageing_acceleration)"
    )
    steps = plan_recipe(recipe, bench_config=sim_bench(seed=args.seed), output=folder)
    stop = StopFlag()
    with stop_on_signals(stop):
        results = _run_steps(steps, stop, supervised=True, verbosity=args.verbose)
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
    _print_step_table(results, as_json=False, extra=reports, simulated=True)
    print(
        f"\nData files (HDF5), run logs and report pictures are in {folder}/.\n"
        f"Look at a report:   open {folder}/*.png\n"
        f"Key figures again:  perovlab-daq analyze {folder}/*.h5\n"
        "Open one in Python: h5py.File(path, 'r')['entry/data'] (layout: docs/hdf5-layout.md)"
    )
    return recipe_exit_code(results)
