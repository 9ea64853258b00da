"""Every catchable way a program is told to end becomes a safe stop of the run.

``SIGINT`` (Ctrl-C), ``SIGTERM`` (``kill``, systemd, logout and shutdown), ``SIGHUP``
(terminal or SSH session closed), ``SIGQUIT`` (Ctrl-backslash) and ``SIGUSR1``/``SIGUSR2`` (whose
default action also ends the process) set a :class:`StopFlag` instead of ending the process
with the outputs on; the run then stops through its safe path (outputs off and read back,
file closed) and the command exits with 130. The command line, the acquisition process
of a supervised run and the operator window all use this one list.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

#: Exit code of a program stopped by a signal (``perovlab_daq.runner.EXIT_INTERRUPTED``).
EXIT_INTERRUPTED = 130

#: Signals that end a run safely (the others cannot be caught, or do not end a process).
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)


class StopFlag(threading.Event):
    """An event that remembers why it was set (signal name, or what else asked)."""

    reason = ""

    def stop(self, reason: str) -> bool:
        """Set the flag with ``reason``; return False if it was already set."""
        if self.is_set():
            return False
        self.reason = reason
        self.set()
        return True


def say(text: str) -> None:
    """Print ``text`` on stderr; a terminal that is gone (SIGHUP, closed SSH) is ignored."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def stop_on_signals(
    stop: StopFlag, *, on_signal: Callable[[str], None] | None = None, quiet: bool = False
) -> Iterator[None]:
    """Turn every signal of :data:`STOP_SIGNALS` into a safe stop instead of an ending.

    Parameters
    ----------
    stop
        Set with the signal's name as reason.
    on_signal
        Also called with the signal's name (e.g. to pass the stop on to a child process).
    quiet
        Do not print the "stopping safely" line.

    Handlers can only be installed from the main thread; elsewhere this does nothing.
    """

    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if on_signal is not None:
            on_signal(name)
        if not stop.stop(name):
            log.warning("%s again: already stopping safely", name)
            return
        if not quiet:
            say(f"\n{name}: stopping safely (outputs off, file closed)...")

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def interrupt_on_signals() -> None:
    """Until a run installs its own handlers, a stop signal ends the program with 130.

    Called first thing by the command line: before a run's :func:`stop_on_signals`
    exists (the first second or two go to imports), SIGTERM, SIGHUP, SIGQUIT and
    SIGUSR1/2 would end the process by their default action (exit 128 + n, no message).
    Outside a run nothing is switched on, and every change to a closed file is a
    copy-and-rename (an ending at any moment leaves the old file or the new one), so the
    handler ends the process at once, as the default action would, but with a message and
    the documented exit code 130. It does not raise into the interrupted code: an
    exception in the middle of an import or a library's lock can hang the exit (seen).
    Main thread only; SIGINT keeps Python's own handler (KeyboardInterrupt).
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        with contextlib.suppress(OSError):
            os.write(2, f"\n{name}: interrupted (no run going)\n".encode())
        os._exit(EXIT_INTERRUPTED)

    for sig in STOP_SIGNALS:
        if sig != signal.SIGINT:
            signal.signal(sig, handler)
