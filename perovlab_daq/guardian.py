"""Guardian of the operator window: switches the outputs off if the window's process dies.

The operator window runs its acquisitions in threads of its own process (it holds the
bench for the live status and plots), so the supervisor of ``perovlab-daq run`` cannot
sit above it. The guardian watches from beside it instead: a small process
(``python -m perovlab_daq.guardian FD``, in a session of its own, deaf to the stop
signals) connected to the window by a socket pair. The window tells it when a run
starts (bench file or preset, procedure, run file) and when it has ended. When the
window's process starts to exit while a run is going (Linux: its ``PF_EXITING`` flag,
looked at every 50 ms) or the socket reaches end-of-file - the window's process was
SIGKILLed, killed by the OOM killer or crashed - the guardian opens the source meter
and the laser again, switches them off and reads them back at once; once the process
has released its files (end of file), it rebuilds the run file from its journal and
records ``killed`` and ``safe_state``, as the supervisor does after a death
(:func:`perovlab_daq.supervisor.close_after_death`). End-of-file with no run going is the
window closing: the guardian just exits. A run file that is already closed (the window
ended the run itself just before it went) is left as it is; the outputs are still
switched off and read back.

Only plain JSON crosses the socket, one object per line, as for the supervisor.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from perovlab_daq.instruments import VISA_DRIVERS, load_driver
from perovlab_daq.stop_signals import STOP_SIGNALS
from perovlab_daq.supervisor import (
    bench_from_spec,
    bench_spec,
    close_after_death,
    preload_drivers,
    switch_off,
)

__all__ = ["Guardian", "main"]

log = logging.getLogger(__name__)

#: How often the window's process is looked at while a run is going.
POLL_S = 0.05
#: Longest wait for a dying window's process to release its files and connections.
EXIT_WAIT_S = 30.0
#: ``PF_EXITING`` of Linux's task flags (``include/linux/sched.h``).
_PF_EXITING = 0x00000004
#: Statuses of a run file its writer closed itself.
_CLOSED = {"finished", "aborted", "failed", "interrupted"}


class Guardian:
    """The window's end of the guardian: start it, tell it about runs, close it.

    Never raises: a guardian that cannot start or has gone is logged (the window keeps
    working; its runs are then unguarded, as before).
    """

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Get the guardian's process id (None before it started)."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> bool:
        """Start the guardian process (once); return whether it runs."""
        if self._proc is not None and self._proc.poll() is None:
            return True
        mine, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - our own module, no shell
                [sys.executable, "-P", "-m", "perovlab_daq.guardian", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                close_fds=True,
                start_new_session=True,  # a Ctrl-C in the terminal is the window's business
            )
        except OSError as exc:
            log.error("the guardian of the outputs could not start: %s", exc)
            mine.close()
            return False
        finally:
            theirs.close()
        self._sock = mine
        atexit.register(self.close)
        log.info("guardian of the outputs started (pid %d)", self._proc.pid)
        return True

    def run_started(self, config: Any, procedure: str, path: str | Path) -> bool:
        """Tell the guardian a run is going; return whether it guards it.

        Parameters
        ----------
        config
            The window's bench (:class:`perovlab_daq.bench.BenchConfig`).
        procedure
            The run's procedure name.
        path
            The run file.
        """
        spec = bench_spec(config)
        if spec is None:
            log.warning("this bench cannot be rebuilt in another process: run not guarded")
            return False
        if not self.start():
            return False
        message = {"run": {"bench": spec, "procedure": procedure, "file": str(path)}}
        return self._send(message)

    def run_ended(self) -> None:
        """Tell the guardian the run has ended through its own safe path."""
        self._send({"idle": True})

    def close(self) -> None:
        """Stop the guardian (no run going): close the socket and reap the process."""
        if self._sock is not None:
            self._send({"idle": True})
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.error("guardian %d does not end; killing it", self._proc.pid)
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def _send(self, message: dict[str, Any]) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendall(json.dumps(message).encode("utf-8") + b"\n")
        except OSError as exc:
            log.error("the guardian of the outputs is gone (%s): runs are unguarded", exc)
            self._sock.close()
            self._sock = None
            return False
        return True


# --------------------------------------------------------------------------- guardian
def _guard(fd: int, window_pid: int) -> int:
    """Watch the window until it dies or closes its end; act if a run was going."""
    for sig in STOP_SIGNALS:  # only the window's death (end of file) ends the guardian
        signal.signal(sig, signal.SIG_IGN)
    import perovlab_daq.bench  # noqa: F401 - imported now: a death is answered within 2 s
    import perovlab_daq.storage  # noqa: F401

    for driver in sorted(VISA_DRIVERS):  # every driver, before the first run is announced
        try:
            load_driver(driver)
        except Exception as exc:  # noqa: BLE001 - imported again when needed
            log.debug("driver %s not preloaded: %s", driver, exc)
    sock = socket.socket(fileno=fd)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    buffer = b""
    active: dict[str, Any] | None = None
    config: Any = None
    eof = False
    while not eof:
        if not selector.select(timeout=POLL_S):
            if active is not None and _exiting(window_pid):
                break  # killed: its memory is still being freed, its sockets still open
            continue
        try:
            chunk = sock.recv(65536)
        except OSError:
            chunk = b""
        eof = not chunk
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            with contextlib.suppress(ValueError, KeyError, TypeError):
                message = json.loads(line)
                if "run" in message:
                    active = message["run"]
                    config = bench_from_spec(active["bench"])
                    preload_drivers(config)
                elif "idle" in message:
                    active = None
    if active is None or config is None:
        return 0
    log.warning("the window's process is %s mid-run: switching off", "gone" if eof else "ending")
    switched = switch_off(config, active["procedure"])
    log.warning("outputs read back: %s", switched[1])
    if not eof:  # wait until the window's process is gone before touching its file
        _wait_for_end_of_file(sock, EXIT_WAIT_S)
        if any(value != "off" for value in switched[1].values()):
            switched = switch_off(config, active["procedure"])  # its connections are free now
    path = Path(active["file"])
    if _closed_by_its_writer(path):
        log.warning("the window went after its run had ended; outputs read back: %s", switched[1])
        return 0
    close_after_death(
        config,
        active["procedure"],
        path,
        "killed: the operator window's process ended without its safe path; its "
        "guardian switched the outputs off and rebuilt the file",
        switched=switched,
    )
    return 1


def _exiting(pid: int) -> bool:
    """Return whether a process is ending (Linux: PF_EXITING in ``/proc/PID/stat``).

    The kernel sets the flag as soon as a killed process starts to exit; its sockets are
    closed only after its memory has been freed, seconds later for a large window process
    on a busy machine. Elsewhere (no ``/proc``) only the end of file tells.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    try:
        return bool(int(fields[6]) & _PF_EXITING)
    except (IndexError, ValueError):
        return False


def _wait_for_end_of_file(sock: socket.socket, timeout_s: float) -> None:
    sock.settimeout(timeout_s)
    with contextlib.suppress(OSError):
        while sock.recv(65536):
            pass


def _closed_by_its_writer(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as file:
            status = file["entry"].attrs.get("status", "")
    except (OSError, KeyError):
        return False
    status = status.decode() if isinstance(status, bytes) else str(status)
    return status in _CLOSED


def main(argv: list[str] | None = None) -> int:
    """Entry point of the guardian process (``python -m perovlab_daq.guardian FD``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m perovlab_daq.guardian FD", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s guardian %(name)s: %(message)s"
    )
    return _guard(int(args[0]), os.getppid())


if __name__ == "__main__":
    sys.exit(main())
