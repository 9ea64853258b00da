"""What every ``perovlab-daq`` command shares.

Exit codes, usage errors, the bench options, progress and the printing of key figures;
safe stop on signals is :mod:`perovlab_daq.stop_signals`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any

from perovlab_daq.cli_args import add_bench_arguments
from perovlab_daq.stop_signals import StopFlag, say, stop_on_signals

__all__ = ["StopFlag", "add_bench_arguments", "say", "stop_on_signals"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_OUTPUT_NOT_OFF = 3
EXIT_INTERRUPTED = 130


class UsageError(ValueError):
    """Bad input on the command line: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors raise :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def positive_int(text: str) -> int:
    """Parse a whole number >= 1 (``--jobs``); argparse reports anything else as a usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


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


def parse_sets(pairs: Sequence[str] | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set expects NAME=VALUE, got {pair!r}")
        values[name.strip()] = value.strip()
    return values


class Progress:
    """A rich progress bar on a terminal, plain log lines otherwise; both with the ETA.

    ``update(percent, message)`` takes the runner's live figure as ``message`` (lifetime:
    ``L/L0 0.931 at 1.2 h, T95 0.8 h``): shown beside the bar, or at the end of each
    line (every 10 %, and at least every 10 minutes when the figure changed).
    """

    #: Longest gap between two plain lines while the live figure changes (s).
    LINE_INTERVAL_S = 600.0

    def __init__(self, title: str) -> None:
        from perovlab_daq.run_progress import EtaClock

        self.title = title
        self.interactive = sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._last_logged = -10.0
        self._last_line = 0.0
        self._last_message = ""
        self.eta = EtaClock()

    def __enter__(self) -> Progress:
        if self.interactive:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>5.1f} %"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}"),
                TextColumn("{task.fields[live]}"),
                console=console(stderr=True),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.title, total=100, eta="", live="")
        else:
            say(f"{self.title}: started")
        return self

    def line(self, percent: float, message: str = "") -> str:
        """Return the progress text: ``45.2 %, ETA 0:04:05, L/L0 0.931 at 1.2 h``."""
        parts = [f"{percent:5.1f} %", self.eta.text(percent)]
        return ", ".join([*parts, message] if message else parts)

    def update(self, percent: float, message: str = "") -> None:
        """Show ``percent`` (0-100) and the live figure ``message``."""
        if self._bar is not None:
            with contextlib.suppress(OSError, ValueError):  # the terminal may be gone
                self._bar.update(
                    self._task, completed=percent, eta=self.eta.text(percent), live=message
                )
            return
        now = time.monotonic()
        changed = message != self._last_message and now - self._last_line >= self.LINE_INTERVAL_S
        if percent - self._last_logged >= 10 or percent >= 100 or changed:
            self._last_logged = percent
            self._last_line = now
            self._last_message = message
            say(f"{self.title}: {self.line(percent, message)}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            with contextlib.suppress(OSError, ValueError):
                self._bar.stop()


def console(*, stderr: bool = False) -> Any:
    """Return a rich Console as wide as the terminal (``COLUMNS``, else 160 on a pipe).

    Tables and progress bars fit the operator's terminal instead of a fixed width that
    wraps every line of a narrow one; output to a file or pipe keeps long lines whole.
    """
    from rich.console import Console

    if stderr:  # rich measures the stderr terminal itself
        return Console(stderr=True)
    return Console(width=shutil.get_terminal_size((160, 24)).columns)


class _PymeasureTcpNotice(logging.Filter):
    """Drop pymeasure's import-time notice that pyzmq is missing (nothing else).

    ``pymeasure.experiment.workers`` and ``...listeners`` warn at import when pyzmq or
    cloudpickle is not installed, because their Worker can publish over TCP. This program
    never does (``DaqWorker`` opens no port), so the notice printed on every run says
    nothing; every other record of those loggers passes.
    """

    NOTICE = "ZMQ and cloudpickle are required for TCP communication"

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.NOTICE


def quiet_pymeasure_tcp_notice() -> None:
    """Install :class:`_PymeasureTcpNotice` on the two loggers (before pymeasure loads)."""
    for name in ("pymeasure.experiment.workers", "pymeasure.experiment.listeners"):
        target = logging.getLogger(name)
        if not any(isinstance(f, _PymeasureTcpNotice) for f in target.filters):
            target.addFilter(_PymeasureTcpNotice())


def print_outcome(outcome: Any, *, as_json: bool) -> None:
    """Print how a run ended: the outputs as read back, the file's state, key figures.

    An output that did not read back off is also said on stderr. A terminal that is gone
    (SIGHUP) does not turn the end of a safe run into an error.
    """
    if not outcome.outputs_off:
        say(outcome.safe_state_line())
    with contextlib.suppress(OSError, ValueError):
        if as_json:
            print(json.dumps(outcome.summary()), flush=True)
            return
        print(f"file:   {outcome.path}")
        print(f"status: {outcome.status}" + (f" ({outcome.reason})" if outcome.reason else ""))
        print(f"safe:   {outcome.safe_state_line()}")
        for key, value in outcome.figures.items():
            print(f"  {key}: {format_figure(value)}")
        sys.stdout.flush()


def format_figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
