"""Bench file of a served simulated bench: ordinary roles whose resources are its sockets.

``sim serve --write-bench FILE`` writes this file so that any process (an acquisition, a
supervisor, a test) opens the served instruments with the usual drivers through
pyvisa-py (``visa_library: "@py"``), exactly as it would open LAN instruments. It is a
normal bench file (``simulated: false``, no ``sim:`` section: the simulation runs in the
server, not in the process that opens the file); its name and header comment say that it
is simulated and by which server process, since the bench format has no field for that.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from perovlab_daq.bench import BenchConfig

log = logging.getLogger(__name__)

#: VISA library that opens ``TCPIP::...::SOCKET`` resources without NI-VISA.
PYVISA_PY = "@py"


def served_bench_document(
    config: BenchConfig,
    resources: Mapping[str, str],
    *,
    procedure: str | None = None,
    pid: int | None = None,
) -> dict[str, Any]:
    """Return the bench-file mapping of a served bench.

    Parameters
    ----------
    config : BenchConfig
        The simulated bench being served (drivers, options, set-up).
    resources : mapping of str to str
        Role -> ``TCPIP::127.0.0.1::PORT::SOCKET`` of the served roles.
    procedure : str, optional
        Procedure the server was started for (named in the bench name).
    pid : int, optional
        Process id of the server (default: this process).

    Returns
    -------
    dict
        A document :func:`perovlab_daq.bench.parse_bench` accepts.
    """
    sim = config.sim
    what = f"preset {sim.preset}, seed {sim.seed}" if sim else "simulated"
    if procedure:
        what += f", ageing as for {procedure}"
    roles: dict[str, dict[str, Any]] = {}
    for role, rc in config.roles.items():
        if role not in resources:
            continue
        entry: dict[str, Any] = {"driver": rc.driver, "resource": resources[role]}
        if rc.options:
            entry["options"] = dict(rc.options)
        if rc.expect_identity:
            entry["expect_identity"] = rc.expect_identity
        if rc.pixels:
            entry["pixels"] = dict(rc.pixels)
        roles[role] = entry
    return {
        "format": 1,
        "name": f"simulated bench served by sim serve ({what}; pid {pid or os.getpid()})",
        "simulated": False,
        "visa_library": PYVISA_PY,
        "roles": roles,
        # Calibration files are absolute already (resolved when the bench was loaded).
        "setup": dict(config.setup),
    }


def write_served_bench(
    path: str | Path,
    config: BenchConfig,
    resources: Mapping[str, str],
    *,
    procedure: str | None = None,
) -> Path:
    """Write the bench file of a served bench, atomically (a reader never sees half a file).

    Parameters
    ----------
    path : str or Path
        File to write (its folder is created).
    config : BenchConfig
        The simulated bench being served.
    resources : mapping of str to str
        Role -> socket resource.
    procedure : str, optional
        Procedure the server was started for.

    Returns
    -------
    Path
        The file written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    document = served_bench_document(config, resources, procedure=procedure)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    header = (
        "# SIMULATED bench served by `perovlab-daq sim serve` "
        f"(python -m perovlab_daq.sim.serve), pid {os.getpid()}, started {stamp}.\n"
        "# Every resource below is a raw socket on 127.0.0.1 answered by that process's\n"
        "# simulator, not a real instrument; the file is valid only while it runs.\n"
    )
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_text(header + body, encoding="utf-8")
    os.replace(partial, target)
    log.info("bench file of the served bench written to %s", target)
    return target
