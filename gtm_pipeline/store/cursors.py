"""Sync cursors in `sync_state`: the position up to which an entity's rows are committed.

Every function runs in the caller's transaction and never commits, so the sync advances the
cursor in the same transaction as the rows it covers: a crash can then neither skip rows nor
leave a cursor pointing past rows that were never stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gtm_pipeline.store.errors import StoreError
from gtm_pipeline.store.tables import sync_state
from gtm_pipeline.store.types import ensure_aware_utc

SYNC_MODES = ("full", "incremental")


@dataclass(frozen=True)
class Cursor:
    """`(system_modstamp, id)`: the sort key of the last committed record, ties broken by Id."""

    system_modstamp: datetime
    id: str

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "system_modstamp", ensure_aware_utc(self.system_modstamp, "cursor modstamp")
        )
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("cursor id must be a non-empty record Id")


def later(a: Cursor | None, b: Cursor | None) -> Cursor | None:
    """The further of two positions (either may be None)."""
    if a is None or b is None:
        return a or b
    return max(a, b, key=lambda c: (c.system_modstamp, c.id))


def get_cursor(conn: sa.Connection, tenant_id: str, entity: str) -> Cursor | None:
    """The committed cursor, or None when the entity was never synced (a full sync is due)."""
    row = conn.execute(
        sa.select(sync_state.c.cursor_modstamp, sync_state.c.cursor_id).where(
            sync_state.c.tenant_id == tenant_id, sync_state.c.entity == entity
        )
    ).one_or_none()
    if row is None or row.cursor_modstamp is None or row.cursor_id is None:
        return None
    return Cursor(row.cursor_modstamp, row.cursor_id)


def save_cursor(
    conn: sa.Connection,
    tenant_id: str,
    entity: str,
    cursor: Cursor,
    mode: str,
    stats: Mapping[str, Any] | None = None,
) -> None:
    """Record `cursor` as committed for the entity, with the mode and stats of the run so far."""
    if not isinstance(cursor, Cursor):
        raise TypeError(f"cursor must be a Cursor, got {type(cursor).__name__}")
    _upsert_state(
        conn,
        tenant_id,
        entity,
        cursor_modstamp=cursor.system_modstamp,
        cursor_id=cursor.id,
        mode=_checked_mode(mode),
        last_stats=dict(stats) if stats is not None else None,
    )


def last_success(conn: sa.Connection, tenant_id: str, entity: str) -> datetime | None:
    """When the entity's last successful run of the tenant ended; None if none did."""
    query = sa.select(sync_state.c.last_succeeded_at).where(
        sync_state.c.tenant_id == tenant_id, sync_state.c.entity == entity
    )
    return conn.execute(query).scalar_one_or_none()


def _run_marks(conn: sa.Connection, tenant_id: str, entity: str) -> sa.Row | None:
    """When the entity's last run of the tenant started and its last success ended."""
    return conn.execute(
        sa.select(sync_state.c.last_started_at, sync_state.c.last_succeeded_at).where(
            sync_state.c.tenant_id == tenant_id, sync_state.c.entity == entity
        )
    ).one_or_none()


def last_run_succeeded(conn: sa.Connection, tenant_id: str, entity: str) -> bool:
    """Whether the entity's last run of the tenant finished: it succeeded and no run started
    after that success (False for an entity never run)."""
    row = _run_marks(conn, tenant_id, entity)
    if row is None or row.last_succeeded_at is None:
        return False
    return row.last_started_at is None or row.last_started_at <= row.last_succeeded_at


def ever_succeeded(conn: sa.Connection, tenant_id: str, entity: str) -> bool:
    """Whether any run of the entity for the tenant has finished."""
    row = _run_marks(conn, tenant_id, entity)
    return row is not None and row.last_succeeded_at is not None


def mark_run_started(
    conn: sa.Connection, tenant_id: str, entity: str, mode: str, at: datetime | None = None
) -> None:
    """Note that a run began, leaving the cursor untouched."""
    _upsert_state(
        conn,
        tenant_id,
        entity,
        mode=_checked_mode(mode),
        last_started_at=_utc_or_now(at),
    )


def mark_run_succeeded(
    conn: sa.Connection,
    tenant_id: str,
    entity: str,
    stats: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Note that a run finished (with its final stats, if given), leaving the cursor untouched."""
    values: dict[str, Any] = {"last_succeeded_at": _utc_or_now(at)}
    if stats is not None:
        values["last_stats"] = dict(stats)
    _upsert_state(conn, tenant_id, entity, **values)


def _checked_mode(mode: str) -> str:
    if mode not in SYNC_MODES:
        raise ValueError(f"sync mode must be one of {', '.join(SYNC_MODES)}, got {mode!r}")
    return mode


def _utc_or_now(at: datetime | None) -> datetime:
    return datetime.now(UTC) if at is None else ensure_aware_utc(at, "run timestamp")


def _upsert_state(conn: sa.Connection, tenant_id: str, entity: str, **values: Any) -> None:
    if not tenant_id or not entity:
        raise ValueError("tenant_id and entity must be non-empty")
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise StoreError(f"sync_state supports SQLite and PostgreSQL, not {dialect}")
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(sync_state).values(tenant_id=tenant_id, entity=entity, **values)
    statement = statement.on_conflict_do_update(
        index_elements=[sync_state.c.tenant_id, sync_state.c.entity],
        set_={name: statement.excluded[name] for name in values},
    )
    conn.execute(statement)
