"""Engine creation: per-database settings, default URL, and passwords kept out of messages."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from gtm_pipeline.config import Settings
from gtm_pipeline.store import (
    Cursor,
    StoreConfigError,
    get_cursor,
    make_engine,
    persons,
    safe_url,
    save_cursor,
    upgrade,
    upsert_records,
)
from gtm_pipeline_tests.support.store import T0

ROW = {"external_id": "003A", "system_modstamp": T0, "email": "a@x.io"}


def test_sqlite_engine_creates_its_folder_and_sets_pragmas(tmp_path) -> None:
    path = tmp_path / "nested" / "deeper" / "warehouse.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            foreign_keys = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
            busy_timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
            cache_size = conn.exec_driver_sql("PRAGMA cache_size").scalar()
            page_size = conn.exec_driver_sql("PRAGMA page_size").scalar()
    finally:
        engine.dispose()
    assert path.parent.is_dir()
    assert page_size == 16_384  # a new file: 16 KiB pages instead of SQLite's 4 KiB
    assert journal == "wal"
    assert foreign_keys == 1
    assert busy_timeout >= 1000
    assert cache_size == -32_000  # KiB: 32 MB of page cache instead of SQLite's 2 MB


def test_an_existing_sqlite_store_keeps_its_page_size_and_its_rows(tmp_path) -> None:
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.execute("PRAGMA page_size = 4096")
        old.execute("CREATE TABLE kept (x INTEGER)")
        old.execute("INSERT INTO kept VALUES (1)")
        old.commit()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            page_size = conn.exec_driver_sql("PRAGMA page_size").scalar()
            conn.exec_driver_sql("INSERT INTO kept VALUES (2)")
            rows = conn.exec_driver_sql("SELECT x FROM kept ORDER BY x").scalars().all()
    finally:
        engine.dispose()
    assert page_size == 4096
    assert rows == [1, 2]


def test_sqlite_transactions_cover_reads_and_ddl(tmp_path) -> None:
    """A rolled-back transaction undoes DDL too, which sqlite3's legacy mode would autocommit."""
    engine = make_engine(f"sqlite:///{tmp_path / 'tx.db'}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
            conn.rollback()
        assert "probe" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_default_url_is_the_sqlite_file_under_gtm_home(gtm_home) -> None:
    engine = make_engine(Settings.from_process().database_url)
    try:
        assert engine.url.get_backend_name() == "sqlite"
        assert engine.url.database.startswith(gtm_home)
    finally:
        engine.dispose()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_a_row(engine: sa.Engine) -> None:
    try:
        upgrade(engine)
        with engine.begin() as conn:
            upsert_records(conn, persons, [{**ROW, "tenant_id": "t1"}])
    finally:
        engine.dispose()


def test_a_new_sqlite_store_and_the_folders_made_for_it_are_private(tmp_path, usual_umask):
    path = tmp_path / "made" / "for" / "warehouse.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:  # WAL files exist while a connection is open
        conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
        conn.commit()
        side_files = [p for p in path.parent.iterdir() if p != path]
        assert {p.name for p in side_files} >= {"warehouse.db-wal", "warehouse.db-shm"}
        assert {p.name: _mode(p) for p in side_files} == {p.name: 0o600 for p in side_files}
    engine.dispose()
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700 and _mode(path.parent.parent) == 0o700


def test_gtm_home_and_an_existing_store_are_tightened_at_start(gtm_home, usual_umask):
    home = Path(gtm_home)
    store = home / "warehouse.db"
    with contextlib.closing(sqlite3.connect(store)) as old:  # made by an earlier version
        old.execute("PRAGMA journal_mode = WAL")
        old.execute("CREATE TABLE kept (x INTEGER)")
        old.commit()
        home.chmod(0o755)
        for path in home.iterdir():
            path.chmod(0o644)
        settings = Settings.from_process()
        _write_a_row(make_engine(settings.database_url, home=settings.gtm_home))
        assert {"warehouse.db-wal", "warehouse.db-shm"} <= {p.name for p in home.iterdir()}
        assert {p.name: _mode(p) for p in home.iterdir()} == {p.name: 0o600 for p in home.iterdir()}
    assert _mode(home) == 0o700
    assert _mode(store) == 0o600


def test_a_folder_the_user_chose_for_the_store_keeps_its_mode(tmp_path, usual_umask):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    _write_a_row(make_engine(f"sqlite:///{shared / 'warehouse.db'}"))
    assert _mode(shared) == 0o755
    assert _mode(shared / "warehouse.db") == 0o600


def test_postgres_engine_pings_pooled_connections() -> None:
    engine = make_engine("postgresql+psycopg://reader:hunter2@127.0.0.1:5432/nowhere")
    try:
        assert engine.pool._pre_ping is True
    finally:
        engine.dispose()


def test_safe_url_masks_the_password() -> None:
    rendered = safe_url("postgresql+psycopg://reader:hunter2@db.example/warehouse")
    assert "hunter2" not in rendered
    assert "reader:***@db.example/warehouse" in rendered


def test_unparseable_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(StoreConfigError) as raised:
        make_engine("not a url with secret hunter2")
    assert "hunter2" not in str(raised.value)


def test_unsupported_database_is_refused_without_the_password() -> None:
    with pytest.raises(StoreConfigError, match="unsupported database 'mysql'") as raised:
        make_engine("mysql://reader:hunter2@db.example/warehouse")
    assert "hunter2" not in str(raised.value)


def test_sqlite_concurrent_read_then_write_transactions_both_commit(tmp_path) -> None:
    """Two syncs that read their cursor and then write must queue, not fail as 'locked'."""
    engine = make_engine(f"sqlite:///{tmp_path / 'concurrent.db'}")
    upgrade(engine)
    both_reading = threading.Barrier(2, timeout=5)
    errors: list[BaseException] = []

    def sync(tenant: str) -> None:
        try:
            with engine.begin() as conn:
                get_cursor(conn, tenant, "persons")
                with contextlib.suppress(threading.BrokenBarrierError):
                    # Only one can be inside a write transaction; the other waits at BEGIN.
                    both_reading.wait(timeout=0.3)
                upsert_records(conn, persons, [{**ROW, "tenant_id": tenant}])
                save_cursor(conn, tenant, "persons", Cursor(T0, "003A"), "full")
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=sync, args=(tenant,)) for tenant in ("t1", "t2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    try:
        with engine.connect() as conn:
            tenants = conn.execute(sa.select(persons.c.tenant_id).order_by("tenant_id")).scalars()
            assert list(tenants) == ["t1", "t2"]
    finally:
        engine.dispose()
    assert errors == []


def test_a_sqlite_library_without_json_functions_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bulk upsert sends SQLite pages through `json_each`: a library without it is named
    when the engine is made, not deep inside a sync."""
    from gtm_pipeline.store import engine as engine_module

    class NoJson:
        def execute(self, sql: str) -> None:
            raise sqlite3.OperationalError("no such function: json_extract")

        def close(self) -> None:
            pass

    engine_module._require_sqlite_json()  # this machine's library has them
    monkeypatch.setattr(engine_module.sqlite3, "connect", lambda _name: NoJson())
    with pytest.raises(StoreConfigError, match="no JSON functions; use SQLite 3.38 or newer"):
        engine_module._require_sqlite_json.__wrapped__()
