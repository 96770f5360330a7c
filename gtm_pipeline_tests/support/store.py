"""Store test constants and query-plan helpers; the migrated `engine` fixture lives in
gtm_pipeline_tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@contextmanager
def selects_from(engine: sa.Engine, table: str) -> Iterator[list[tuple[str, object]]]:
    """The SELECTs reading `table` run while open, as the driver received them."""
    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def query_plan(
    conn: sa.Connection, statement: str, parameters: object, *, no_seqscan: bool = False
) -> str:
    """The database's plan of a statement as the driver received it. `no_seqscan` (PostgreSQL):
    a table of a handful of rows is otherwise read through, index or not."""
    if conn.dialect.name == "postgresql":
        if no_seqscan:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters)
        return "\n".join(r[0] for r in rows)
    rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
    return "\n".join(r[-1] for r in rows)
