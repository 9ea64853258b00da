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
import json
import logging
import sys
from collections.abc import Callable, Sequence
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
        print(json.dumps(out, indent=1, default=str))
        return EXIT_OK
    for name, preset in PRESETS.items():
        summary = _preset_summary(preset)
        print(f"{name}: {summary['description']}")
        for key, value in summary["published"].items():
            print(f"    {key}: {value}")
    return EXIT_OK


def _preset_summary(preset: Any) -> dict[str, Any]:
    published = getattr(preset, "published", {}) or {}
    return {
        "description": getattr(preset, "description", ""),
        "published": dict(published),
    }


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
    return parser


def _missing(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_BAD_INPUT


def configure_logging(verbosity: int) -> None:
    """Log to stderr: warnings by default, info with ``-v``, debug with ``-vv``."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pyvisa logs every byte at DEBUG; keep it quiet unless asked twice.
    if verbosity < 3:
        logging.getLogger("pyvisa").setLevel(max(level, logging.INFO))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    from perovlab_daq.bench import BenchError

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
    except (UsageError, BenchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
