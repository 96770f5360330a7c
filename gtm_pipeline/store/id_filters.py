"""Filtering rows by many record ids: in chunks, and on PostgreSQL as one array parameter.

On PostgreSQL the ids travel as one array (`= ANY(array)`), so a whole batch is one statement.
PostgreSQL hashes such an array when it plans the statement for the actual ids, which the store
engine makes sure of (`store/engine.py`: no server-side prepared statements); a statement
planned once for any ids compares each row with the whole array, quadratic in batch size.
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
    """`column IN values`; on PostgreSQL `column = ANY(array)`, one bound value instead of a
    thousand (planning a 1000-parameter IN list per page was over half of a Bulk sync's time)."""
    if conn.dialect.name == "postgresql":
        ids = sa.literal(list(values), type_=postgresql.ARRAY(column.type))
        return column == sa.any_(ids)
    return column.in_(values)
