"""Resetting the session's PostgreSQL database between tests."""

from __future__ import annotations

import sqlalchemy as sa


def _reset_postgres(url: str) -> None:
    """Drop every table so each test starts from an empty database."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
