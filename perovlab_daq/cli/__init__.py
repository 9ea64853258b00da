"""The ``perovlab-daq`` command line: bench checks, headless runs, analysis, reports.

Exit codes (the same for every subcommand):

* 0 - finished;
* 1 - failed (instrument fault, disk full, ...), the reason in the file and on stderr;
* 2 - bad input (unknown name, value out of range, bad bench or recipe file), reported in
  one line before any instrument is touched and without creating a data file;
* 3 - a source output or the laser emission did not read back off at the end (it
  overrides every other code: switch it off at the instrument);
* 130 - stopped by a signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2) after a safe stop.

``run`` and ``sequence`` run the acquisition in a supervised child process
(:mod:`perovlab_daq.supervisor`): if it is killed, this process switches the outputs off,
reads them back and rebuilds the file (status ``killed`` in the summary, exit 1).

A damaged or foreign data file given to ``analyze``, ``report``, ``recover`` or
``lifetime-fit`` is reported in one line naming the file (exit 2 when it is not a run file
this program can read, 1 when ``recover`` finds nothing usable); standard output closed by
its reader (``... | head``) ends quietly with 1. The table is ``docs/cli.md``.

This module holds the parser and :func:`main`; the commands live by group in
:mod:`perovlab_daq.cli.bench` (bench, list, gui), :mod:`perovlab_daq.cli.runs` (run,
resume, sequence, demo, recover) and :mod:`perovlab_daq.cli.files` (analyze, report,
lifetime-fit), with what they share in :mod:`perovlab_daq.cli._common`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from perovlab_daq import __version__
from perovlab_daq.cli import _common
from perovlab_daq.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    _Parser,
    add_bench_arguments,
    bench_config_from_args,
    positive_int,
)
from perovlab_daq.cli.bench import _cmd_bench_check, _cmd_bench_presets, _cmd_gui, _cmd_list
from perovlab_daq.cli.catalog import add_runs_parser
from perovlab_daq.cli.export import add_export_parser
from perovlab_daq.cli.files import _cmd_analyze, _cmd_lifetime_fit, _cmd_report
from perovlab_daq.cli.runs import _cmd_demo, _cmd_recover, _cmd_run, _cmd_sequence
from perovlab_daq.cli.sim import add_sim_parser
from perovlab_daq.stop_signals import interrupt_on_signals

log = logging.getLogger(__name__)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "UsageError",
    "add_bench_arguments",
    "bench_config_from_args",
    "build_parser",
    "configure_logging",
    "main",
]


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
        type=positive_int,
        default=None,
        metavar="N",
        help="files analysed in parallel (default: one per core)",
    )
    ana.add_argument(
        "--by", choices=["pixel"], help="substrate summary: one line per pixel, champion, spread"
    )
    ana.add_argument("--figure", type=Path, metavar="OUT.png", help="with --by pixel: bar figure")
    ana.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler to analyse on")
    ana.set_defaults(func=_cmd_analyze)

    rep = sub.add_parser("report", help="draw a run's figures to a PNG or PDF")
    rep.add_argument("file", nargs="+", type=Path, metavar="FILE")
    rep.add_argument(
        "--compare", action="store_true", help="overlay several jlv (or lifetime) runs"
    )
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
    add_runs_parser(sub)
    add_sim_parser(sub)
    add_export_parser(sub)
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


def configure_logging(verbosity: int) -> logging.Handler:
    """Log warnings to stderr (info with ``-v``, debug with ``-vv``); run log files get info.

    The root logger passes INFO on so that each run's log file is complete; the console
    handler filters by the requested verbosity. Returns the console handler, which
    :func:`main` removes again when the command ends (a second ``main`` call in one
    process, as in a notebook or a test, must not log twice or to a stale stream).
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
    _common.quiet_pymeasure_tcp_notice()  # pyzmq missing: we never use pymeasure's TCP link
    return console


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code (see the module docstring)."""
    interrupt_on_signals()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _error_line("error", exc)
        return EXIT_BAD_INPUT
    console = configure_logging(args.verbose)
    try:
        return _dispatch(parser, args)
    finally:
        logging.getLogger().removeHandler(console)


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run the chosen command; map its errors to the documented exit codes."""
    from perovlab_daq.safe_input import UnsafeInputError

    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        code = func(args)
        sys.stdout.flush()  # a closed pipe shows here, not as a trace at interpreter exit
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except (UsageError, UnsafeInputError) as exc:
        _error_line("error", exc)
        return EXIT_BAD_INPUT
    except ValueError as exc:
        # Imported here: a command that raised one has loaded them already (list and
        # --help stay free of the runner's imports).
        from perovlab_daq.bench import BenchError
        from perovlab_daq.runner import RunInputError

        if not isinstance(exc, BenchError | RunInputError):
            return _internal_error(exc)
        _error_line("error", exc)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        # A path the user gave that the system refuses (too long, a folder, no permission):
        # bad input naming it. Anything else (disk full, I/O error) is a failure.
        log.debug("OS error", exc_info=True)
        where = f"{exc.filename}: " if exc.filename is not None else ""
        _error_line("error", f"{where}{exc.strerror or exc}")
        return EXIT_BAD_INPUT if exc.errno in _PATH_ERRNOS else EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - one line for the operator, details in the log
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    log.debug("internal error", exc_info=True)
    _error_line(
        "internal error",
        f"{type(exc).__name__}: {exc} (run with -vv for the traceback; please report it)",
    )
    return EXIT_FAILED


#: OS errors that mean "this path cannot be used as given" (exit 2) rather than a failure.
_PATH_ERRNOS = {
    errno.ENAMETOOLONG,
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.EEXIST,
    errno.ELOOP,
    errno.EROFS,
}


def _error_line(prefix: str, message: object) -> None:
    """Print one line to stderr: the message with its newlines folded, at most 2000 characters."""
    text = " ".join(str(message).split())
    if len(text) > 2000:
        text = text[:2000] + "..."
    with contextlib.suppress(OSError, ValueError):
        print(f"{prefix}: {text}", file=sys.stderr)


def _closed_pipe() -> int:
    """End quietly when the reader of stdout went away (``perovlab-daq analyze ... | head``).

    The Python documentation's recipe (``signal`` module, "Note on SIGPIPE"): point stdout
    at /dev/null so that the interpreter's final flush does not fail again; exit code 1,
    as a process whose output was cut short.
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_FAILED
