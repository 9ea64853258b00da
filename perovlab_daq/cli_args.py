"""Command-line options shared by the ``perovlab-daq`` CLI and ``python -m perovlab_daq.sim.serve``.

Sits below both (it imports only the standard library), so the simulator's server can
offer the same ``--sim [PRESET]`` / ``--bench FILE`` / ``--seed`` options as the CLI
without importing :mod:`perovlab_daq.cli`. A run always says which bench it is on:
``run`` and ``sequence`` refuse to start without ``--sim``, ``--bench`` or the default
bench file :data:`BENCH_ENV` names (:func:`default_bench_file`, docs/cli.md).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_SIM_HELP = "use the simulated bench, optionally with a sample preset (default qd-in-matrix)"
_BENCH_HELP = "bench file (YAML)"
_SEED_HELP = "noise seed of the simulated bench"


def add_bench_arguments(
    parser: argparse.ArgumentParser,
    *,
    sim_help: str = _SIM_HELP,
    bench_help: str = _BENCH_HELP,
    seed_help: str = _SEED_HELP,
) -> None:
    """Add the mutually exclusive ``--sim [PRESET]`` / ``--bench FILE`` options and ``--seed``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The (sub)command parser.
    sim_help, bench_help, seed_help : str
        Help texts of ``--sim``, ``--bench`` and ``--seed`` (the CLI's by default).
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--sim",
        nargs="?",
        const="",
        default=None,
        metavar="PRESET",
        help=sim_help,
    )
    group.add_argument("--bench", type=Path, metavar="FILE", help=bench_help)
    parser.add_argument("--seed", type=int, default=None, help=seed_help)


#: Environment variable naming the default bench file of a user or a station.
BENCH_ENV = "PEROVLAB_DAQ_BENCH"

#: What ``run``/``sequence`` say when neither ``--sim`` nor ``--bench`` nor a default is given.
NO_BENCH_CHOICE = (
    "no bench chosen: give --sim [PRESET] for the simulated bench (nothing is measured) or "
    f"--bench FILE for the instruments, or set {BENCH_ENV}=FILE once (per user in "
    "~/.profile, per station in /etc/environment)"
)


def default_bench_file(environ: dict[str, str] | None = None) -> Path | None:
    """Return the configured default bench file (``$PEROVLAB_DAQ_BENCH``), or None.

    Parameters
    ----------
    environ : dict, optional
        The environment to read (``os.environ`` by default).
    """
    value = (os.environ if environ is None else environ).get(BENCH_ENV, "").strip()
    return Path(value).expanduser() if value else None
