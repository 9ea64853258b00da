"""``run lifetime --resume FILE`` for a rack channel's file: continue on that channel's device.

Called by :mod:`perovlab_daq.cli.runs` when the file's metadata names a channel
(:func:`perovlab_daq.rack.channel_of`); the continuation runs through
:func:`perovlab_daq.rack.resume_channel` with the channel's own bench.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from perovlab_daq.cli._common import Progress, StopFlag, print_outcome, stop_on_signals
from perovlab_daq.rack import resume_channel

log = logging.getLogger(__name__)


def resume_channel_run(args: argparse.Namespace, config: Any) -> int:
    """Continue an interrupted rack-channel run; return the run's exit code."""
    stop = StopFlag()
    with stop_on_signals(stop), Progress(f"lifetime (resumed) -> {args.resume.name}") as progress:
        outcome = resume_channel(args.resume, config, stop_event=stop, on_progress=progress.update)
    print_outcome(outcome, as_json=args.json)
    return outcome.exit_code
