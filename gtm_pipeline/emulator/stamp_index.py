"""The emulator's index on SystemModstamp, as Salesforce keeps one on every object.

A query whose WHERE clause bounds `SystemModstamp` (`>=`, `>`, `<`, `<=`, `=` among its AND-ed
conditions, as parallel slices and their `COUNT()` plans do) reads only the rows in that range
instead of filtering the whole table: without it every slice of a 1,000,000-record object made the
emulator test each record, which Salesforce does not. The candidate rows still pass through the
whole WHERE clause, so the index can only narrow, never change, what a query returns; rows come
back in the table's own order, as a scan gives them.

A `Table` counts its changes; the index is rebuilt (one sort) the first time it is used after one.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from gtm_pipeline.emulator.schema import ObjectDef
from gtm_pipeline.emulator.soql import Schema
from gtm_pipeline.emulator.soql_syntax import BoolOp, Compare, Query

STAMP = "SystemModstamp"
_LOWER = {">", ">=", "="}
_UPPER = {"<", "<=", "="}

Bounds = tuple[str | None, str | None]
"""Lowest and highest stamp a matching row can have (both inclusive), None when open."""


class Table(dict):
    """Rows by Id that count their changes (`version`), so an index knows when it is stale."""

    version: int = 0

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.version += 1

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self.version += 1

    def pop(self, *args: Any) -> Any:
        self.version += 1
        return super().pop(*args)

    def popitem(self) -> Any:
        self.version += 1
        return super().popitem()

    def clear(self) -> None:
        self.version += 1
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.version += 1
        super().update(*args, **kwargs)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self.version += 1
        return super().setdefault(key, default)


def stamp_bounds(query: Query, schema: Schema, obj: ObjectDef) -> Bounds | None:
    """The SystemModstamp range the query's top-level AND conditions allow, or None when they
    do not bound it (no WHERE, an OR at the top, conditions on other fields only)."""
    where = query.where
    conditions = where.items if isinstance(where, BoolOp) and where.op == "AND" else (where,)
    lower: str | None = None
    upper: str | None = None
    bounded = False
    for condition in conditions:
        if not (isinstance(condition, Compare) and condition.literal.kind == "datetime"):
            continue
        resolved = schema.resolve(obj, condition.path)
        if resolved.direct_slot is None or resolved.field.name != STAMP:
            continue
        value = str(condition.literal.value)
        if condition.op in _LOWER:
            lower, bounded = value if lower is None else max(lower, value), True
        if condition.op in _UPPER:
            upper, bounded = value if upper is None else min(upper, value), True
    return (lower, upper) if bounded else None


@dataclass(frozen=True)
class StampIndex:
    """One table's rows (in the table's order) and their positions sorted by stamp."""

    version: int
    rows: list[tuple]
    order: list[int]
    stamps: list[str]

    @classmethod
    def build(cls, table: Table, stamp_slot: int) -> StampIndex:
        rows = list(table.values())
        # A row without a stamp sorts first; no bound lets a missing stamp match anyway.
        keys = [row[stamp_slot] or "" for row in rows]
        order = sorted(range(len(rows)), key=keys.__getitem__)
        return cls(table.version, rows, order, [keys[i] for i in order])

    def rows_between(self, bounds: Bounds) -> list[tuple]:
        """Rows whose stamp may lie within `bounds`, in the table's order."""
        lower, upper = bounds
        start = 0 if lower is None else bisect.bisect_left(self.stamps, lower)
        end = len(self.stamps) if upper is None else bisect.bisect_right(self.stamps, upper)
        return [self.rows[i] for i in sorted(self.order[start:end])]
