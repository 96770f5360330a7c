"""Alembic environment: runs migrations on a connection handed over by `store.migrate`.

No alembic.ini is involved. `gtm_pipeline.store.migrate` builds the Alembic config in code and
puts an open connection in `config.attributes["connection"]`; the `alembic` command line also
works when a `sqlalchemy.url` option is set on its config.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from gtm_pipeline.store.migrate import VERSION_TABLE
from gtm_pipeline.store.tables import metadata

# An arbitrary, fixed key: concurrent upgrades of one PostgreSQL database queue on it.
POSTGRES_MIGRATION_LOCK_KEY = 7_415_320_119


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK_KEY}
            )
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection to run the store migrations")
    from gtm_pipeline.store.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported for the store")
run_migrations_online()
