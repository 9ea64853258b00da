"""The ``perovlab-daq sim`` command: the simulated bench as a service (``sim serve``).

``perovlab-daq sim serve [--sim PRESET | --bench FILE] [--write-bench FILE] ...`` serves
the simulated instruments as raw sockets on 127.0.0.1 until SIGINT or SIGTERM (exit 0);
other processes open them through pyvisa-py with the bench file it writes. The body is
:func:`perovlab_daq.sim.serve.run_serve`; see docs/simulator.md section 10.
"""

from __future__ import annotations

import argparse
import logging
import sys

from perovlab_daq.cli._common import EXIT_BAD_INPUT, _Parser
from perovlab_daq.sim.serve_args import add_serve_arguments

log = logging.getLogger(__name__)

__all__ = ["add_sim_parser"]


def add_sim_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``sim`` and its action ``serve`` to the CLI's subcommands.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``add_subparsers`` object of the main parser.
    """
    sim = sub.add_parser("sim", help="the simulated bench as a service for other processes")
    actions = sim.add_subparsers(dest="sim_command", metavar="ACTION", parser_class=_Parser)
    serve = actions.add_parser(
        "serve",
        help="serve the simulated instruments on 127.0.0.1 ports until SIGINT/SIGTERM",
        description="Serve the simulated instruments as raw sockets on 127.0.0.1; "
        "other processes reach them through pyvisa-py (TCPIP::127.0.0.1::PORT::SOCKET) "
        "with the bench file --write-bench writes. SIGINT or SIGTERM stops it (exit 0).",
    )
    add_serve_arguments(serve)
    serve.set_defaults(func=_cmd_sim_serve)

    def missing(_args: argparse.Namespace) -> int:
        sim.print_help(sys.stderr)
        return EXIT_BAD_INPUT

    sim.set_defaults(func=missing)


def _cmd_sim_serve(args: argparse.Namespace) -> int:
    from perovlab_daq.sim.serve import run_serve  # the simulator and PyVISA: only when serving

    return run_serve(args)
