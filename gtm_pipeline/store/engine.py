"""Engine creation with the per-database settings the store relies on."""

from __future__ import annotations

import sqlite3
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from gtm_pipeline.private_files import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    create_private_dirs,
    private_file,
    tighten,
)
from gtm_pipeline.store.errors import StoreConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Page cache per connection, in KiB (SQLite's default is 2,000). A 20,000-row page of upserts
# touches the table and three indexes across more pages than 2 MB holds, so SQLite went back to
# the file for pages within the transaction: replaying a 146,000-Contact sync's upserts in
# 20,000-row transactions took 2.04-2.17 s with the default, 1.71-1.83 s with 32 MB (three
# rounds each, alternated). Memory is taken only as pages are used.
SQLITE_CACHE_KIB = 32_000
# Page size of a new SQLite store, in bytes (SQLite's default is 4,096; an existing file keeps
# the size it was made with). Loading the 150,000 Contacts of the benchmark org in 20,000-row
# transactions took ~9% less CPU with 16 KiB pages (median of 8 runs each, alternated): fewer
# pages to split, write to the WAL and checkpoint per committed batch.
SQLITE_PAGE_SIZE = 16_384
# Files SQLite keeps beside the database, with its data in them.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def safe_url(url: str | URL) -> str:
    """The URL with any password masked, for logs and error messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable database URL>"


def parse_url(url: str | URL) -> URL:
    """Parse a database URL, failing with a message that never echoes a password."""
    try:
        return sa.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreConfigError(
            "the database URL could not be parsed; expected sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB"
        ) from None


def make_engine(url: str | URL, *, home: Path | None = None, **engine_options: Any) -> Engine:
    """An engine for the store at `url` (a program's `Settings.database_url`).

    A SQLite store's file is private, and so is `home` (the program's GTM_HOME) when the file is
    in it (see `_private_sqlite_files`). SQLite gets WAL (readers do
    not block the writer), a busy timeout, enforced foreign keys and real transactions (see
    `_configure_sqlite`). PostgreSQL gets `pool_pre_ping` so a connection
    dropped by a restart or idle timeout is replaced instead of failing the next run, and
    (with psycopg 3) no server-side prepared statements.
    """
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        _require_sqlite_json()
        _private_sqlite_files(parsed, home)
        # The sqlite3 module keeps 128 prepared statements per connection. Statements whose
        # length followed the data (multi-row upserts, 1,000-id IN lists) once filled that cache
        # and grew a sync's memory by ~40% from 100k to 1M records; both now bind a fixed number
        # of values, and the cache stays off so no such statement can return. SQLAlchemy's own
        # compiled cache stays on.
        connect_args = {"cached_statements": 0, **engine_options.pop("connect_args", {})}
        engine = sa.create_engine(parsed, connect_args=connect_args, **engine_options)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        engine_options.setdefault("pool_pre_ping", True)
        if parsed.get_driver_name() == "psycopg":
            # psycopg 3 prepares a statement on the server after 5 runs, and PostgreSQL then
            # soon plans it once for any parameters: a filter by an array of record ids is
            # then scanned row by row instead of hashed, quadratic in page size (a 10,000-row
            # REST batch against a growing quarantine took 0.5-1 s per batch). Unprepared
            # statements are planned for their actual ids, and pass through PgBouncer's
            # transaction pooling as well.
            connect_args = {"prepare_threshold": None, **engine_options.pop("connect_args", {})}
            engine_options["connect_args"] = connect_args
        return sa.create_engine(parsed, **engine_options)
    raise StoreConfigError(
        f"unsupported database {backend!r} in {safe_url(parsed)}; use SQLite or PostgreSQL"
    )


@cache
def _require_sqlite_json() -> None:
    """Refuse a SQLite library without its JSON functions (built in since 3.38, an option
    before), which the bulk upsert sends its pages through (`upsert._upsert_sqlite`)."""
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("SELECT json_extract('[1]', '$[0]') FROM json_each('[1]')")
    except sqlite3.OperationalError:
        raise StoreConfigError(
            f"the SQLite library Python uses ({sqlite3.sqlite_version}) has no JSON functions; "
            "use SQLite 3.38 or newer, or a build with JSON1"
        ) from None
    finally:
        probe.close()


def _private_sqlite_files(url: URL, home: Path | None) -> None:
    """Create the database file 0600 (and missing folders 0700) before SQLite opens it.

    SQLite creates files with the umask's mode, 0644 on most machines: readable by every local
    user. An existing store file (and its -wal/-shm/-journal files) is tightened to 0600, and
    `home` (GTM_HOME) too when the store is in it; any other folder the store is in is the
    user's choice.
    """
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    path = Path(database).expanduser().resolve()
    create_private_dirs(path.parent)
    if home is not None and path.parent == home.expanduser().resolve():
        tighten(path.parent, PRIVATE_DIR_MODE)
    private_file(path)
    for suffix in SQLITE_SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            tighten(side, PRIVATE_FILE_MODE)


def _configure_sqlite(engine: Engine) -> None:
    """Take transaction control away from the sqlite3 module and give it to SQLAlchemy.

    The sqlite3 module's legacy mode does not BEGIN before SELECT or DDL, so a transaction that
    reads a cursor and then writes rows is not atomic. Emitting our own `BEGIN IMMEDIATE` makes
    every transaction take the write lock up front: concurrent writers then wait for each other
    (up to the busy timeout) instead of failing with "database is locked" when a read snapshot
    turns stale, and with WAL, readers outside transactions are never blocked.
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            # Before WAL: the page size is fixed once the file is written (a no-op after that).
            cursor.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
