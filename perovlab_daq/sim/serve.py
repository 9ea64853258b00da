"""Served simulated bench: the simulated instruments as raw-socket instruments on 127.0.0.1.

``perovlab-daq sim serve`` (for now ``python -m perovlab_daq.sim.serve``) builds the same
:class:`~perovlab_daq.sim.world.World` and
:class:`~perovlab_daq.sim.visalib.SimBenchLibrary` as the in-process ``--sim`` bench (same
presets, physics and faults) and gives each role a TCP port on the loopback address. Any
process then opens an instrument through pyvisa-py as ``TCPIP::127.0.0.1::PORT::SOCKET``,
the way LAN instruments and GPIB-Ethernet adapters are reached. The instrument state lives
in the server, so it outlives its clients: a source left on by a killed acquisition stays
on until something switches it off, as on hardware. Supervisor tests need exactly that.

Framing: the bytes of a connection are split on the simulated device's write termination;
each message goes to the device through the library (so fault injection applies), and every
reply the device leaves pending is sent back at once, with its read termination. One lock
serialises the whole bench, so several connections to one instrument each get their own
replies, and the photodiode sees the LED the served source meter drives.

Examples
--------
>>> with serve(sim_bench()) as served:  # doctest: +SKIP
...     served.resources["source_meter"]
'TCPIP::127.0.0.1::40517::SOCKET'
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pyvisa
from pyvisa import errors, rname

from perovlab_daq.bench import Bench, BenchConfig, BenchError, load_bench, sim_bench
from perovlab_daq.sim.catalogue import SIM_INSTRUMENTS
from perovlab_daq.sim.served_file import write_served_bench

__all__ = [
    "LOOPBACK_HOST",
    "ServedBench",
    "ServedInstrument",
    "add_serve_arguments",
    "main",
    "run_serve",
    "serve",
    "socket_resource",
]

log = logging.getLogger(__name__)

#: The only address a served bench binds: it is a simulator, never reachable from the LAN.
LOOPBACK_HOST = "127.0.0.1"
#: Longest message accepted without a termination before the connection is dropped.
MAX_MESSAGE_BYTES = 1 << 20
_READ_CHUNK = 1 << 24


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


class _InstrumentServer(socketserver.ThreadingTCPServer):
    """Accept loop of one instrument's port; one thread per connection."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True  # a fixed --port-base must be reusable right after a stop

    def __init__(self, bench: ServedBench, instrument: str, port: int):
        self.bench = bench
        self.sim_resource = instrument
        super().__init__((LOOPBACK_HOST, port), _Connection)


class _Connection(socketserver.BaseRequestHandler):
    """Relay one TCP connection to its simulated device until the client goes away."""

    server: _InstrumentServer

    def handle(self) -> None:
        bench = self.server.bench
        sock: socket.socket = self.request
        if not bench._track(sock, True):
            return  # the bench is stopping
        try:
            bench._relay(sock, self.server.sim_resource)
        except OSError as exc:  # the client died mid-reply: its problem, not the bench's
            log.info("connection to %s ended: %s", self.server.sim_resource, exc)
        finally:
            bench._track(sock, False)


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
        self._lock = threading.Lock()  # one conversation with the bench at a time
        self._servers: dict[str, _InstrumentServer] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._connections: set[socket.socket] = set()
        self._connections_changed = threading.Condition()
        self._stopping = False

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> ServedBench:
        """Bind one port per role and start accepting connections.

        Returns
        -------
        ServedBench
            Itself, serving.

        Raises
        ------
        OSError
            If a port cannot be bound (ports bound so far are closed again).
        """
        if self._servers:
            return self
        with self._connections_changed:
            self._stopping = False
        try:
            for index, role in enumerate(self._roles):
                port = 0 if self._port_base is None else self._port_base + index
                self._servers[role] = _InstrumentServer(self, self._roles[role][1], port)
        except OSError:
            self.stop()
            raise
        for role, server in self._servers.items():
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"sim-serve-{role}",
                daemon=True,
            )
            thread.start()
            self._threads[role] = thread
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
            How long to wait for the connection threads to finish.
        """
        with self._connections_changed:
            self._stopping = True
            connections = list(self._connections)
        # shutdown() waits for an accept loop to notice (one poll interval): all at once.
        stoppers = [
            threading.Thread(target=self._servers[role].shutdown)
            for role, thread in self._threads.items()
            if thread.is_alive()
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout_s)
        for server in self._servers.values():
            server.server_close()
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone
        with self._connections_changed:
            self._connections_changed.wait_for(lambda: not self._connections, timeout_s)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> ServedBench:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what is served ---------------------------------------------------------------
    @property
    def instruments(self) -> dict[str, ServedInstrument]:
        """Get role -> :class:`ServedInstrument` for every bound port."""
        return {
            role: ServedInstrument(role, driver, name, self._servers[role].server_address[1])
            for role, (driver, name) in self._roles.items()
            if role in self._servers
        }

    @property
    def resources(self) -> dict[str, str]:
        """Get role -> ``TCPIP::127.0.0.1::PORT::SOCKET``."""
        return {role: inst.resource for role, inst in self.instruments.items()}

    def connection_count(self) -> int:
        """Return the number of client connections open right now."""
        with self._connections_changed:
            return len(self._connections)

    def write_bench_file(self, path: str | Path) -> Path:
        """Write a bench file whose roles point at this server (see :mod:`.served_file`)."""
        return write_served_bench(path, self.config, self.resources, procedure=self.procedure)

    # -- the relay --------------------------------------------------------------------
    def _track(self, sock: socket.socket, opened: bool) -> bool:
        with self._connections_changed:
            if opened:
                if self._stopping:
                    return False
                self._connections.add(sock)
            else:
                self._connections.discard(sock)
            self._connections_changed.notify_all()
        return True

    def _relay(self, sock: socket.socket, sim_resource: str) -> None:
        with self._lock:
            resource = self._manager.open_resource(sim_resource)
            write_eom = bytes(self.library.device(sim_resource)._query_eom)
        try:
            pending = bytearray()
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                pending += data
                while (end := pending.find(write_eom)) >= 0:
                    message = bytes(pending[:end])
                    del pending[: end + len(write_eom)]
                    if message.strip():
                        reply = self._exchange(resource.session, message + write_eom)
                        if reply:
                            sock.sendall(reply)
                if len(pending) > MAX_MESSAGE_BYTES:
                    log.warning(
                        "%s: no termination in %d bytes; dropping", sim_resource, len(pending)
                    )
                    return
        finally:
            with self._lock:
                resource.close()

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
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--sim",
            nargs="?",
            const="",
            default=None,
            metavar="PRESET",
            help="serve the shipped simulated bench, optionally with a sample preset",
        )
        group.add_argument(
            "--bench", type=Path, metavar="FILE", help="simulated bench file (with a sim: section)"
        )
        parser.add_argument("--seed", type=int, default=None, help="noise seed of the simulator")
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
