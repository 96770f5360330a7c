"""Run the store's Alembic migrations from code, without an alembic.ini."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import URL, Engine

from gtm_pipeline.store.engine import make_engine, safe_url
from gtm_pipeline.store.errors import MigrationError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "gtm_store_alembic_version"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, e.g. to write a new revision.

    The version table has its own name so the store can share a PostgreSQL database with
    Dagster's storage, which keeps its own `alembic_version`.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = sa.make_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest revision the packaged migrations define."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def upgrade(engine_or_url: Engine | str | URL) -> None:
    """Bring the database to the newest schema; running it again is a no-op.

    Given a URL it creates and disposes its own engine; given an engine it borrows one
    connection and leaves the engine to its owner.
    """
    if isinstance(engine_or_url, Engine):
        _upgrade_engine(engine_or_url)
        return
    engine = make_engine(engine_or_url)
    try:
        _upgrade_engine(engine)
    finally:
        engine.dispose()


def open_store(url: str | URL, *, home: Path | None = None) -> Engine:
    """An engine on the store at `url`, migrated to the newest schema (`home`: see
    `make_engine`). The caller disposes it."""
    engine = make_engine(url, home=home)
    try:
        _upgrade_engine(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _upgrade_engine(engine: Engine) -> None:
    cfg = alembic_config()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except sa.exc.OperationalError as exc:
        raise MigrationError(
            f"could not migrate the store at {safe_url(engine.url)}: {exc.orig}"
        ) from exc
    except CommandError as exc:
        # Typically a database migrated by a newer gtm-pipeline than the one running now.
        raise MigrationError(
            f"could not migrate the store at {safe_url(engine.url)}: {exc}; "
            "is this gtm-pipeline older than the one that last migrated the database?"
        ) from exc


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
