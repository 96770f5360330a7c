"""Filtering rows by many record ids: in chunks, and on PostgreSQL as one array parameter.

On PostgreSQL the ids travel as one array and are matched through `IN (SELECT unnest(array))`,
which the planner runs as a hash join. A plain `= ANY(array)` is checked row by row against the
whole array when the planner scans the tenant's rows by another index (as it does on a table
whose statistics are not yet gathered, a tenant's first sync): quadratic, one second per
50,000-id Bulk result set against a 4,000-row quarantine, and growing with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

CHUNK = 1000
"""Ids per statement on SQLite, well under its bound-variable limit."""
ARRAY_CHUNK = 100_000
"""Ids per statement on PostgreSQL: one array value, so only memory bounds it."""


def chunks(conn: sa.Connection, values: Sequence[str]) -> list[Sequence[str]]:
    """`values` in slices small enough for one statement on `conn`'s database."""
    size = ARRAY_CHUNK if conn.dialect.name == "postgresql" else CHUNK
    return [values[i : i + size] for i in range(0, len(values), size)]


def among(conn: sa.Connection, column: sa.Column[Any], values: Sequence[str]) -> Any:
    """`column IN values`; on PostgreSQL `column IN (SELECT unnest(array))`: one bound value
    instead of a thousand, and a hash join instead of a scan of the array per row."""
    if conn.dialect.name == "postgresql":
        ids = sa.literal(list(values), type_=postgresql.ARRAY(column.type))
        return column.in_(sa.select(sa.func.unnest(ids)).scalar_subquery())
    return column.in_(values)
