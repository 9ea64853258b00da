"""Options of ``perovlab-daq sim serve`` (and ``python -m perovlab_daq.sim.serve``).

Kept apart from :mod:`perovlab_daq.sim.serve` so that the command line can build its
parser without importing the simulator and PyVISA (every ``perovlab-daq`` call builds
every subcommand's parser).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from perovlab_daq.cli_args import add_bench_arguments

__all__ = ["LOOPBACK_HOST", "add_serve_arguments"]

log = logging.getLogger(__name__)

#: The only address a served bench binds: it is a simulator, never reachable from the LAN.
LOOPBACK_HOST = "127.0.0.1"


def _loopback_host(text: str) -> str:
    if text != LOOPBACK_HOST:
        raise argparse.ArgumentTypeError(
            f"{text!r} refused: a served simulated bench binds {LOOPBACK_HOST} only"
        )
    return text


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1024 <= value <= 65000:
        raise argparse.ArgumentTypeError(f"{text!r} must be from 1024 to 65000")
    return value


def add_serve_arguments(parser: argparse.ArgumentParser, *, bench_options: bool = True) -> None:
    """Add the options of ``sim serve`` to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The (sub)command parser.
    bench_options : bool
        Also add ``--sim [PRESET]``, ``--bench FILE`` and ``--seed``; pass False when the
        CLI adds its own and hands the chosen config to :func:`run_serve`.
    """
    if bench_options:
        add_bench_arguments(
            parser,
            sim_help="serve the shipped simulated bench, optionally with a sample preset",
            bench_help="simulated bench file (with a sim: section)",
            seed_help="noise seed of the simulator",
        )
    parser.add_argument(
        "--write-bench",
        type=Path,
        metavar="FILE",
        help="write a bench file whose roles point at the served instruments",
    )
    parser.add_argument(
        "--procedure",
        metavar="NAME",
        help="procedure the bench is served for (selects the ageing acceleration)",
    )
    parser.add_argument(
        "--port-base",
        type=_port,
        metavar="N",
        help="first TCP port, roles in bench-file order (default: ports chosen by the system)",
    )
    parser.add_argument(
        "--host",
        type=_loopback_host,
        default=LOOPBACK_HOST,
        help=f"address to bind: {LOOPBACK_HOST} only (anything else is refused)",
    )
