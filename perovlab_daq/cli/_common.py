"""What every ``perovlab-daq`` command shares.

Exit codes, usage errors, the bench options, progress and the printing of key figures;
safe stop on signals is :mod:`perovlab_daq.stop_signals`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
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
    """A rich progress bar on a terminal, plain log lines otherwise."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.interactive = sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._last_logged = -10.0

    def __enter__(self) -> Progress:
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
            say(f"{self.title}: started")
        return self

    def update(self, percent: float, message: str = "") -> None:
        if self._bar is not None:
            with contextlib.suppress(OSError, ValueError):  # the terminal may be gone
                self._bar.update(self._task, completed=percent)
        elif percent - self._last_logged >= 10 or percent >= 100:
            self._last_logged = percent
            say(f"{self.title}: {percent:5.1f} %")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            with contextlib.suppress(OSError, ValueError):
                self._bar.stop()


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
