"""Slice plans in `sync_slices`: a full read split into SystemModstamp ranges and how far each
range's rows are committed.

Like the cursors, every function runs in the caller's transaction: the sync records a slice's
position in the transaction that writes the rows it covers, so a crash leaves each slice at a
committed batch boundary and a rerun resumes it there.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from gtm_pipeline.store.cursors import Cursor, later
from gtm_pipeline.store.tables import sync_slices
from gtm_pipeline.store.types import ensure_aware_utc


@dataclass(frozen=True)
class Slice:
    """Records with `lower <= SystemModstamp < upper`; None leaves that side open."""

    number: int
    lower: datetime | None
    upper: datetime | None

    def __post_init__(self) -> None:
        for name in ("lower", "upper"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, ensure_aware_utc(value, f"slice {name} bound"))
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ValueError(f"slice {self.number} is empty: {self.lower} >= {self.upper}")


@dataclass(frozen=True)
class SliceProgress:
    slice: Slice
    cursor: Cursor | None
    """The largest `(stamp, id)` committed in the slice; None before its first rows."""
    done: bool
    extraction: str = "rest"
    """`rest` pages or one `bulk` job a slice."""


def save_plan(
    conn: sa.Connection,
    tenant_id: str,
    entity: str,
    slices: Sequence[Slice],
    planned_at: datetime,
    extraction: str = "rest",
) -> None:
    """Store a new plan for the entity (replacing any earlier one), every slice unread."""
    drop_plan(conn, tenant_id, entity)
    conn.execute(
        sync_slices.insert(),
        [
            {
                "tenant_id": tenant_id,
                "entity": entity,
                "slice": piece.number,
                "lower_modstamp": piece.lower,
                "upper_modstamp": piece.upper,
                "done": False,
                "extraction": extraction,
                "planned_at": planned_at,
            }
            for piece in slices
        ],
    )


def load_plan(conn: sa.Connection, tenant_id: str, entity: str) -> list[SliceProgress]:
    """The entity's unfinished plan in slice order; empty when there is none."""
    rows = conn.execute(
        sa.select(sync_slices)
        .where(_of(tenant_id, entity))
        .order_by(sync_slices.c.slice)
    ).all()  # fmt: skip
    return [
        SliceProgress(
            Slice(row.slice, row.lower_modstamp, row.upper_modstamp),
            _cursor_of(row),
            row.done,
            row.extraction,
        )
        for row in rows
    ]


def record_progress(
    conn: sa.Connection,
    tenant_id: str,
    entity: str,
    number: int,
    reached: Cursor | None,
    *,
    done: bool,
) -> None:
    """Move slice `number`'s position up to `reached` (never back); `done` marks it read."""
    values: dict[str, object] = {}
    if done:
        values["done"] = True
    if reached is not None:
        stored = _stored_cursor(conn, tenant_id, entity, number)
        if later(stored, reached) != stored:
            values.update(cursor_modstamp=reached.system_modstamp, cursor_id=reached.id)
    if values:
        conn.execute(
            sa.update(sync_slices)
            .where(_of(tenant_id, entity), sync_slices.c.slice == number)
            .values(**values)
        )


def furthest_position(conn: sa.Connection, tenant_id: str, entity: str) -> Cursor | None:
    """The largest position any slice of the plan reached: where the entity's cursor goes once
    every slice is read (the last slice has no upper bound, so it holds the newest stamps)."""
    return functools.reduce(later, (p.cursor for p in load_plan(conn, tenant_id, entity)), None)


def read_through(conn: sa.Connection, tenant_id: str, entity: str, extraction: str) -> None:
    """Read the plan's unfinished slices through `extraction` from now on (Bulk failed: REST)."""
    conn.execute(sa.update(sync_slices).where(_of(tenant_id, entity)).values(extraction=extraction))


def drop_plan(conn: sa.Connection, tenant_id: str, entity: str) -> None:
    conn.execute(sa.delete(sync_slices).where(_of(tenant_id, entity)))


def _cursor_of(row: sa.Row) -> Cursor | None:
    return None if row.cursor_id is None else Cursor(row.cursor_modstamp, row.cursor_id)


def _stored_cursor(conn: sa.Connection, tenant_id: str, entity: str, number: int) -> Cursor | None:
    row = conn.execute(
        sa.select(sync_slices.c.cursor_modstamp, sync_slices.c.cursor_id).where(
            _of(tenant_id, entity), sync_slices.c.slice == number
        )
    ).one()
    return _cursor_of(row)


def _of(tenant_id: str, entity: str) -> sa.ColumnElement[bool]:
    return sa.and_(sync_slices.c.tenant_id == tenant_id, sync_slices.c.entity == entity)
