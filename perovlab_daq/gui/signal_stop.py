"""Signals and logout end the operator window's run through its safe path, within a second.

Qt's event loop runs in C++: a Python signal handler only runs when Qt next calls into
Python, which an idle window may not do for 30 s and more (Ctrl-C seemed ignored, SIGTERM
and SIGHUP at logout or shutdown ended the process with the laser and the source on).
:class:`SignalStop` makes the loop see a signal at once: ``signal.set_wakeup_fd`` writes a
byte on a socket that a ``QSocketNotifier`` watches, the Python handler records the
signal, and the notifier's slot (with a 250 ms timer as a fallback) passes it on to the
window, which aborts the running procedure (outputs off and read back, file closed) and
closes. The session manager's logout request (``commitDataRequest``) does the same.

The signals are those of :data:`perovlab_daq.stop_signals.STOP_SIGNALS`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Callable
from typing import Any

from pymeasure.display.Qt import QtCore

from perovlab_daq.stop_signals import STOP_SIGNALS

log = logging.getLogger(__name__)


class SignalStop(QtCore.QObject):
    """Deliver every stop signal to ``on_signal(name)`` from Qt's event loop.

    Parameters
    ----------
    on_signal
        Called in the GUI thread with the signal's name (``"SIGTERM"``) or ``"logout"``.
    app
        The ``QApplication``; its logout request is passed on as ``"logout"``.
    """

    FALLBACK_MS = 250

    def __init__(self, on_signal: Callable[[str], None], app: Any = None) -> None:
        super().__init__()
        self._on_signal = on_signal
        self._pending: list[str] = []
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._old_wakeup = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        self._previous = {sig: signal.signal(sig, self._handler) for sig in STOP_SIGNALS}
        self._notifier = QtCore.QSocketNotifier(
            self._read.fileno(), QtCore.QSocketNotifier.Type.Read, self
        )
        self._notifier.activated.connect(self._drain)
        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self._deliver)
        self._timer.start(self.FALLBACK_MS)
        self._app = app
        if app is not None and hasattr(app, "commitDataRequest"):
            app.commitDataRequest.connect(self._logout)

    def _handler(self, signum: int, _frame: Any) -> None:
        self._pending.append(signal.Signals(signum).name)

    def _logout(self, *_args: Any) -> None:
        self._pending.append("logout")
        self._deliver()

    def _drain(self, *_args: Any) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._read.recv(4096):
                pass
        self._deliver()

    def _deliver(self) -> None:
        while self._pending:
            name = self._pending.pop(0)
            log.warning("%s received: stopping the run safely and closing", name)
            try:
                self._on_signal(name)
            except Exception:  # noqa: BLE001 - the next signal must still get through
                log.exception("handling %s failed", name)

    def uninstall(self) -> None:
        """Restore the previous handlers and wakeup fd; close the sockets."""
        self._timer.stop()
        self._notifier.setEnabled(False)
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous.clear()
        signal.set_wakeup_fd(self._old_wakeup)
        if self._app is not None and hasattr(self._app, "commitDataRequest"):
            with contextlib.suppress(TypeError, RuntimeError):
                self._app.commitDataRequest.disconnect(self._logout)
        self._read.close()
        self._write.close()
