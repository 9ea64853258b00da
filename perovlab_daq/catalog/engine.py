"""Where the run catalogue lives and how to connect to it (SQLite by default, PostgreSQL).

The URL comes from ``--catalog URL`` (or a plain path to an SQLite file), else from the
bench file's ``catalog:`` entry, else it is ``sqlite:///<data folder>/catalog.sqlite``:
a file beside the data, created on first use. ``postgresql://user@host/db`` connects
with psycopg 3 (``postgresql+psycopg://``). :func:`open_catalog` returns an engine whose
schema is at the newest Alembic revision (``upgrade head`` runs on first use, serialised
between processes: ``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL).

SQLite runs in WAL mode with a busy timeout and every transaction begun ``IMMEDIATE``,
so several processes (stations on one share, the GUI, ``runs index``) queue for the
write lock instead of failing; PostgreSQL serialises concurrent writers itself.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

log = logging.getLogger(__name__)

#: File name of the default catalogue, in the data folder.
DEFAULT_FILE_NAME = "catalog.sqlite"
#: Values of ``catalog:`` / ``--catalog`` that switch the catalogue off.
DISABLED = frozenset({"", "off", "none", "no", "false"})
#: Seconds an SQLite writer waits for another one's lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Key of the PostgreSQL advisory lock held while migrating (any fixed 64-bit number).
MIGRATION_LOCK_KEY = 0x5045524F564C4142  # "PEROVLAB"
#: Where the Alembic environment and revisions are (package data).
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_engines: dict[tuple[str, float, int], Engine] = {}
_engines_lock = threading.Lock()


class CatalogError(ValueError):
    """A catalogue URL that cannot be used (bad syntax, unknown database kind)."""


def resolve_url(
    catalog: str | os.PathLike[str] | None = None,
    *,
    bench_config: Any = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> str | None:
    """Return the catalogue URL to use, or None when the catalogue is switched off.

    Parameters
    ----------
    catalog
        ``--catalog``: a URL or the path of an SQLite file; ``off`` switches it off.
    bench_config
        A :class:`~perovlab_daq.bench.BenchConfig`; its ``catalog`` applies when
        ``catalog`` is not given.
    data_dir
        The data folder (default ``./data``): the default catalogue is a file in it.

    Raises
    ------
    CatalogError
        If the URL names a database kind other than SQLite or PostgreSQL.
    """
    chosen: Any = catalog
    if chosen is None and bench_config is not None:
        chosen = getattr(bench_config, "catalog", None)
    if chosen is None or (isinstance(chosen, str) and chosen == ""):
        folder = Path(data_dir) if data_dir is not None else Path("data")
        return f"sqlite:///{(folder / DEFAULT_FILE_NAME).resolve()}"
    if chosen is False or str(chosen).strip().lower() in DISABLED:
        return None
    return normalize_url(str(chosen))


def normalize_url(text: str) -> str:
    """Return an SQLAlchemy URL for ``text`` (a URL or a path of an SQLite file).

    ``postgresql://`` and ``postgres://`` get the psycopg 3 driver.

    Raises
    ------
    CatalogError
        For a database other than SQLite or PostgreSQL, or a URL that does not parse.
    """
    text = text.strip()
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise CatalogError(f"catalogue URL {_hide_password(text)!r}: {exc}") from None
    backend = url.get_backend_name()
    if backend == "postgres":
        url = url.set(drivername="postgresql+psycopg")
    elif backend == "postgresql" and "+" not in url.drivername:  # SQLAlchemy 2.0: psycopg2
        url = url.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise CatalogError(
            f"catalogue URL {_hide_password(text)!r}: only sqlite:/// and postgresql:// are "
            "supported"
        )
    return url.render_as_string(hide_password=False)


def _hide_password(text: str) -> str:
    try:
        return make_url(text).render_as_string(hide_password=True)
    except ArgumentError:
        return text[:200]


def shown_url(url: str) -> str:
    """Return ``url`` with its password hidden, for messages and logs."""
    return _hide_password(url)


def open_catalog(url: str, *, connect_timeout_s: float = 10.0) -> Engine:
    """Return an engine on the catalogue at ``url``, its schema migrated to the newest revision.

    Engines are kept per URL, timeout and process (a forked child makes its own). An
    SQLite file and its folder are created if missing.

    Raises
    ------
    sqlalchemy.exc.SQLAlchemyError, OSError
        If the database cannot be reached or migrated.
    """
    key = (url, float(connect_timeout_s), os.getpid())
    with _engines_lock:
        engine = _engines.get(key)
    if engine is not None:
        return engine
    engine = _create(url, connect_timeout_s)
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    with _engines_lock:
        return _engines.setdefault(key, engine)


def _create(url: str, connect_timeout_s: float) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # libpq counts whole seconds and treats anything below 2 as 2.
    connect_args = {"connect_timeout": max(1, round(connect_timeout_s))}
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: SQLAlchemy's "begin" event below issues the BEGIN,
    # so DDL is transactional and writers take the lock at once (no upgrade deadlock).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    """Bring the catalogue's schema to the newest Alembic revision (``upgrade head``).

    Concurrent callers (several stations starting at once on a new catalogue) are
    serialised: the first migrates, the others find the schema current.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", os.fspath(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        if _current_revision(connection) == _head_revision(config):
            return
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        log.info("catalogue %s migrated to %s", shown_url(str(engine.url)), _head_revision(config))


def _current_revision(connection: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _head_revision(config: Any) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config).get_current_head()
