"""Catalogue test set-up: importable helpers, and a real PostgreSQL server started here.

The server is Debian's ``postgresql`` (``initdb``/``pg_ctl`` found beside ``pg_ctl`` on
PATH or in ``/usr/lib/postgresql/*/bin``), started once per test session in a temporary
folder on 127.0.0.1 and a free port, with trust authentication, and stopped at the end.
PostgreSQL refuses to run as root, so under root (CI) it runs as the ``postgres`` user
(or ``nobody``). Tests that need it skip, saying why, only when the binaries are absent.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # the writer subprocesses import the helpers too


def postgres_bin_dir() -> Path | None:
    """Return the folder holding ``initdb`` and ``pg_ctl``, or None."""
    found = shutil.which("pg_ctl")
    candidates = [Path(os.path.realpath(found)).parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_user() -> str | None:
    """Return the user to run the server as (None: the current one, not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    pytest.skip("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL server for the session; yield its URL (database ``postgres``)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) not installed: apt-get install postgresql"
        )
    user = _server_user()
    base = Path(tempfile.mkdtemp(prefix="perovlab-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    if user is not None:
        record = pwd.getpwnam(user)
        for path in (base, sockets):
            os.chown(path, record.pw_uid, record.pw_gid)
    base.chmod(0o700)
    port = _free_port()
    run = {"user": user, "capture_output": True, "text": True, "timeout": 120, "cwd": base}
    try:
        done = subprocess.run(
            [bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            **run,
        )
        if done.returncode != 0:
            pytest.fail(f"initdb failed: {done.stderr[-2000:]}")
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        done = subprocess.run(
            [bin_dir / "pg_ctl", "-D", data, "-o", options, "-l", base / "log", "-w", "start"],
            **run,
        )
        if done.returncode != 0:
            log = (base / "log").read_text(errors="replace") if (base / "log").exists() else ""
            pytest.fail(f"pg_ctl start failed: {done.stderr[-1000:]} {log[-2000:]}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], **run)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """Yield the URL of a new, empty database on the session's server (dropped after)."""
    import psycopg

    name = f"catalog_{uuid.uuid4().hex[:12]}"
    admin = postgres_server
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    from perovlab_daq.catalog import engine as catalog_engine

    for key, engine in list(catalog_engine._engines.items()):
        if name in key[0]:
            engine.dispose()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
