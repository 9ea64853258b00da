"""Served simulated bench: the simulated instruments as raw-socket instruments on 127.0.0.1.

``perovlab-daq sim serve`` (also ``python -m perovlab_daq.sim.serve``) builds the same
:class:`~perovlab_daq.sim.world.World` and
:class:`~perovlab_daq.sim.visalib.SimBenchLibrary` as the in-process ``--sim`` bench (same
presets, physics and faults) and gives each role a TCP port on the loopback address. Any
process then opens an instrument through pyvisa-py as ``TCPIP::127.0.0.1::PORT::SOCKET``,
the way LAN instruments and GPIB-Ethernet adapters are reached. The instrument state lives
in the server, so it outlives its clients: a source left on by a killed acquisition stays
on until something switches it off, as on hardware. Supervisor tests need exactly that.

Framing: the bytes of a connection are split on the simulated device's write termination;
each message goes to the device through the library (so fault injection applies), and every
reply the device leaves pending is sent back at once, with its read termination. One thread
serves every port and connection, running each round's writes before its queries, so a
client's messages to several instruments act in the order it sent them (the photodiode is
read after the source meter was switched, as with the in-process bench), and several
connections to one instrument each get their own replies.

Examples
--------
>>> with serve(sim_bench()) as served:  # doctest: +SKIP
...     served.resources["source_meter"]
'TCPIP::127.0.0.1::40517::SOCKET'
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import selectors
import signal
import socket
import sys
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pyvisa
from pyvisa import errors, rname

from perovlab_daq.bench import Bench, BenchConfig, BenchError, load_bench, sim_bench
from perovlab_daq.sim.catalogue import SIM_INSTRUMENTS
from perovlab_daq.sim.serve_args import LOOPBACK_HOST, add_serve_arguments
from perovlab_daq.sim.served_file import write_served_bench

__all__ = [
    "LOOPBACK_HOST",
    "ServedBench",
    "ServedInstrument",
    "add_serve_arguments",
    "is_query",
    "main",
    "run_serve",
    "serve",
    "socket_resource",
]

log = logging.getLogger(__name__)

#: Longest message accepted without a termination before the connection is dropped.
MAX_MESSAGE_BYTES = 1 << 20
_READ_CHUNK = 1 << 24
#: How long a reply may wait for a client that does not read before it is dropped.
SEND_TIMEOUT_S = 5.0


def socket_resource(port: int, host: str = LOOPBACK_HOST) -> str:
    """Return the VISA name of a raw-socket instrument: ``TCPIP::host::port::SOCKET``."""
    return f"TCPIP::{host}::{port}::SOCKET"


@dataclass(frozen=True)
class ServedInstrument:
    """One role of a served bench: its driver, the simulated device behind it and its port."""

    role: str
    driver: str
    sim_resource: str
    port: int

    @property
    def resource(self) -> str:
        """Get the VISA resource a client opens with pyvisa-py (``@py``)."""
        return socket_resource(self.port)


def is_query(message: bytes) -> bool:
    """Return whether an instrument message asks for a reply (SCPI: it holds a ``?``)."""
    return b"?" in message


@dataclass(eq=False)
class _Client:
    """One open connection: its socket, its VISA session on the simulator, what it sent."""

    sock: socket.socket
    role: str
    session: Any
    write_eom: bytes
    pending: bytearray = field(default_factory=bytearray)
    #: Complete messages not yet run, with their arrival number.
    messages: deque[tuple[int, bytes]] = field(default_factory=deque)


class ServedBench:
    """A simulated bench served on loopback TCP ports, one per role.

    Use :func:`serve` (or ``with ServedBench(config) as served``) to start it; leaving the
    ``with`` block or :meth:`stop` closes every port and connection. The world and the
    instrument state persist between connections for as long as the object lives.

    Parameters
    ----------
    config : BenchConfig
        A simulated bench (``simulated: true``, e.g. :func:`perovlab_daq.bench.sim_bench`).
    procedure : str, optional
        Procedure the bench is served for (selects the ageing acceleration, as ``--sim``).
    host : str
        Must be ``127.0.0.1``: a served bench is never reachable from another machine.
    port_base : int, optional
        First port; roles get consecutive ports in bench-file order. Default: ephemeral
        ports chosen by the system (parallel tests never collide).

    Raises
    ------
    ValueError
        For a host other than 127.0.0.1.
    BenchError
        If the bench is not simulated, has no simulated instrument, or names a resource the
        simulator does not serve (as opening it in-process would).
    """

    def __init__(
        self,
        config: BenchConfig,
        *,
        procedure: str | None = None,
        host: str = LOOPBACK_HOST,
        port_base: int | None = None,
    ):
        if host != LOOPBACK_HOST:
            raise ValueError(f"a served bench binds {LOOPBACK_HOST} only, not {host!r}")
        if not config.simulated:
            raise BenchError(f"{config.path or config.name}: only a simulated bench can be served")
        self.config = config
        self.procedure = procedure
        self._port_base = port_base
        roles = [rc for rc in config.roles.values() if rc.driver in SIM_INSTRUMENTS]
        #: Roles left out because their driver has no simulator (e.g. ``seabreeze``).
        self.skipped_roles = tuple(r for r in config.roles if r not in {rc.role for rc in roles})
        if not roles:
            raise BenchError(f"{config.path or config.name}: no role has a simulated instrument")
        # The very objects the in-process --sim bench is made of: same world, same library.
        bench = Bench(config, procedure=procedure, roles=[rc.role for rc in roles])
        bench._build_simulator()
        self.world = bench.world
        self.library = bench.visa_library
        self._manager = pyvisa.ResourceManager(self.library)
        served = set(self.library.served_resources())
        self._roles: dict[str, tuple[str, str]] = {}
        for rc in roles:
            name = rname.to_canonical_name(rc.resource)
            if name not in served:
                raise BenchError(
                    f"{config.path or config.name}: roles.{rc.role}.resource: the simulator "
                    f"serves no {rc.resource!r} (it serves {', '.join(sorted(served))})"
                )
            self._roles[rc.role] = (rc.driver, name)
        self._lock = threading.Lock()  # the library, also for in-process users of .library
        self._ports: dict[str, int] = {}
        self._listeners: dict[str, socket.socket] = {}
        self._clients: dict[socket.socket, _Client] = {}  # owned by the serving thread
        self._arrivals = itertools.count()
        self._selector: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> ServedBench:
        """Bind one port per role and start serving them from one thread.

        Returns
        -------
        ServedBench
            Itself, serving.

        Raises
        ------
        OSError
            If a port cannot be bound (ports bound so far are closed again).
        """
        if self._thread is not None:
            return self
        self._stop_requested.clear()
        self._selector = selectors.DefaultSelector()
        try:
            for index, role in enumerate(self._roles):
                port = 0 if self._port_base is None else self._port_base + index
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self._listeners[role] = listener
                # a fixed --port-base must be reusable right after a stop
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((LOOPBACK_HOST, port))
                listener.listen(16)
                listener.setblocking(False)
                self._ports[role] = listener.getsockname()[1]
                self._selector.register(listener, selectors.EVENT_READ, data=role)
        except OSError:
            self._close_all()
            raise
        self._thread = threading.Thread(target=self._serve, name="sim-serve", daemon=True)
        self._thread.start()
        for instrument in self.instruments.values():
            log.info(
                "%s (%s) served at %s", instrument.role, instrument.driver, instrument.resource
            )
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close every port and every open connection. Never raises.

        Parameters
        ----------
        timeout_s : float
            How long to wait for the serving thread to finish.
        """
        self._stop_requested.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("the served bench did not stop within %g s", timeout_s)
            self._thread = None
        else:
            self._close_all()

    def __enter__(self) -> ServedBench:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what is served ---------------------------------------------------------------
    @property
    def instruments(self) -> dict[str, ServedInstrument]:
        """Get role -> :class:`ServedInstrument` for every bound port."""
        return {
            role: ServedInstrument(role, driver, name, self._ports[role])
            for role, (driver, name) in self._roles.items()
            if role in self._ports
        }

    @property
    def resources(self) -> dict[str, str]:
        """Get role -> ``TCPIP::127.0.0.1::PORT::SOCKET``."""
        return {role: inst.resource for role, inst in self.instruments.items()}

    def connection_count(self) -> int:
        """Return the number of client connections open right now."""
        return len(self._clients)

    def write_bench_file(self, path: str | Path) -> Path:
        """Write a bench file whose roles point at this server (see :mod:`.served_file`)."""
        return write_served_bench(path, self.config, self.resources, procedure=self.procedure)

    # -- the relay --------------------------------------------------------------------
    def _serve(self) -> None:
        """Accept, read and answer every connection until :meth:`stop` (the serving thread)."""
        assert self._selector is not None
        try:
            while not self._stop_requested.is_set():
                for key, _events in self._selector.select(timeout=0.1):
                    if isinstance(key.data, _Client):
                        self._receive(key.data)
                    else:
                        self._accept(key.fileobj, key.data)  # type: ignore[arg-type]
                self._run_received()
        except Exception:  # noqa: BLE001 - log it; the finally still closes every socket
            log.exception("the served bench stopped on an error")
        finally:
            self._close_all()

    def _accept(self, listener: socket.socket, role: str) -> None:
        try:
            sock, _address = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        # Sends block (up to the timeout) for a client slow to read; reads happen when ready.
        sock.settimeout(SEND_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sim_resource = self._roles[role][1]
        with self._lock:
            session = self._manager.open_resource(sim_resource)
            write_eom = bytes(self.library.device(sim_resource)._query_eom)
        client = _Client(sock, role, session, write_eom)
        self._clients[sock] = client
        assert self._selector is not None
        self._selector.register(sock, selectors.EVENT_READ, data=client)
        log.debug("%s: connection from %s", role, _address)

    def _receive(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError as exc:  # reset by a client that died
            log.info("%s: connection lost: %s", client.role, exc)
            data = b""
        if not data:
            self._drop(client)
            return
        client.pending += data
        eom = client.write_eom
        while (end := client.pending.find(eom)) >= 0:
            message = bytes(client.pending[:end])
            del client.pending[: end + len(eom)]
            if message.strip():
                client.messages.append((next(self._arrivals), message))
        if len(client.pending) > MAX_MESSAGE_BYTES:
            log.warning("%s: no termination in %d bytes; dropped", client.role, len(client.pending))
            self._drop(client)

    def _run_received(self) -> None:
        """Run every message received, in the order any one client sent them.

        A client that writes to one instrument and then queries another has both messages
        in the kernel before it waits for the reply, so they arrive in the same round:
        running every connection's leading writes before any query keeps its order (the
        photodiode is read after the source was switched, as in-process), and a
        connection's own messages always run in the order they came.
        """
        while True:
            for client in list(self._clients.values()):
                while client.messages and not is_query(client.messages[0][1]):
                    self._run_next(client)
            waiting = [c for c in self._clients.values() if c.messages]
            if not waiting:
                return
            self._run_next(min(waiting, key=lambda c: c.messages[0][0]))

    def _run_next(self, client: _Client) -> None:
        _arrival, message = client.messages.popleft()
        reply = self._exchange(client.session.session, message + client.write_eom)
        if not reply:
            return
        try:
            client.sock.sendall(reply)
        except OSError as exc:  # the client died or stopped reading: its problem only
            log.info("%s: reply not delivered (%s); connection closed", client.role, exc)
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        client.messages.clear()
        if self._clients.pop(client.sock, None) is None:
            return
        if self._selector is not None:
            try:
                self._selector.unregister(client.sock)
            except (KeyError, ValueError):
                pass
        client.sock.close()
        with self._lock:
            client.session.close()
        log.debug("%s: connection closed", client.role)

    def _close_all(self) -> None:
        for client in list(self._clients.values()):
            self._drop(client)
        for listener in self._listeners.values():
            listener.close()
        self._listeners.clear()
        self._ports.clear()
        if self._selector is not None:
            self._selector.close()
            self._selector = None

    def _exchange(self, session: Any, message: bytes) -> bytes:
        """Write one message to the simulated device and return every reply it left pending."""
        with self._lock:
            try:
                self.library.write(session, message)
            except errors.VisaIOError as exc:  # an injected outage: the client times out
                log.debug("write %r failed: %s", message, exc)
                return b""
            except Exception:  # noqa: BLE001 - one bad message must not take the bench down
                log.exception("simulated device failed on %r", message)
                return b""
            reply = bytearray()
            while True:
                try:
                    chunk, _status = self.library.read(session, _READ_CHUNK)
                except errors.VisaIOError:  # nothing (more) pending, or an injected timeout
                    log.debug("%r -> %r", message, bytes(reply[:200]))
                    return bytes(reply)
                reply += chunk


def serve(
    config: BenchConfig,
    *,
    procedure: str | None = None,
    host: str = LOOPBACK_HOST,
    port_base: int | None = None,
) -> ServedBench:
    """Start serving a simulated bench on loopback ports; see :class:`ServedBench`.

    Parameters
    ----------
    config : BenchConfig
        A simulated bench.
    procedure : str, optional
        Procedure whose ageing acceleration the world uses.
    host : str
        ``127.0.0.1`` (anything else raises ValueError).
    port_base : int, optional
        First port (default: ephemeral ports).

    Returns
    -------
    ServedBench
        Already serving; use it as a context manager to stop it.
    """
    return ServedBench(config, procedure=procedure, host=host, port_base=port_base).start()


# -- command ----------------------------------------------------------------------------
def _config_from_args(args: argparse.Namespace) -> BenchConfig:
    if getattr(args, "bench", None) is not None:
        return load_bench(args.bench)
    return sim_bench(getattr(args, "sim", None) or None, seed=getattr(args, "seed", None))


def _print_table(served: ServedBench, out: Any) -> None:
    sim = served.config.sim
    seed = f", seed {sim.seed}" if sim else ""
    print(f"serving {served.config.name}{seed}", file=out)
    for inst in served.instruments.values():
        print(
            f"  {inst.role:<14} {inst.resource:<36} {inst.driver} ({inst.sim_resource})", file=out
        )
    for role in served.skipped_roles:
        print(f"  {role:<14} not served (driver has no simulator)", file=out)


def run_serve(args: argparse.Namespace, config: BenchConfig | None = None) -> int:
    """Serve until SIGINT or SIGTERM; the body of ``perovlab-daq sim serve``.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options (:func:`add_serve_arguments`).
    config : BenchConfig, optional
        The bench to serve; default from ``args.sim``/``args.bench``/``args.seed``.

    Returns
    -------
    int
        0 after a clean stop, 2 for a bench that cannot be served, 1 when a port cannot be
        bound or the bench file cannot be written.
    """
    try:
        config = config or _config_from_args(args)
        served = ServedBench(
            config, procedure=args.procedure, host=args.host, port_base=args.port_base
        )
    except (BenchError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with served:
            _print_table(served, sys.stdout)
            if args.write_bench is not None:
                path = served.write_bench_file(args.write_bench)
                print(f"bench file: {path}", file=sys.stdout)
            print(f"pid {os.getpid()}; Ctrl-C or SIGTERM stops the bench", file=sys.stdout)
            sys.stdout.flush()
            while not stop.wait(0.2):
                pass
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped", file=sys.stderr)
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    """Run ``python -m perovlab_daq.sim.serve [--sim PRESET] [--write-bench FILE] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m perovlab_daq.sim.serve",
        description="Serve the simulated instruments as raw sockets on 127.0.0.1.",
    )
    add_serve_arguments(parser)
    args = parser.parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_serve(args)


if __name__ == "__main__":
    sys.exit(main())
