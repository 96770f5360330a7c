"""`writeback_state`: per record, the score values settled with Salesforce and the last outcome.

`last_written_values` holds the values the writeback must not send again:
- after a success, the values Salesforce accepted;
- after a permanent failure (deleted record, bad id, missing field...), the values it refused,
  so the record is not retried until its values or the mapping change; `last_status` says which;
- after a transient failure (a row lock outlasting the retries), the column is left as it was,
  so the next run sends the record again.
A failure also keeps the fields Salesforce blamed (`errors[].fields`) in `last_error_fields`, so an
operator sees which mapped field a refusal is about; a success clears them with the error.

`sending_values` holds the values of the batch in flight: stored (`mark_sending`) in its own
transaction before the request, cleared with the batch's outcomes. Values still there when a run
starts belong to a batch whose outcomes were lost with a crashed process; the engine reads those
records back from Salesforce and settles the ones that landed instead of sending them again.

Every function runs in the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gtm_pipeline.store.errors import StoreError
from gtm_pipeline.store.id_filters import among
from gtm_pipeline.store.tables import writeback_state
from gtm_pipeline.store.types import ensure_aware_utc

SUCCESS = "success"
FAILED = "failed"
TRANSIENT = "transient"
STATUSES = (SUCCESS, FAILED, TRANSIENT)
_CODE_LENGTH = writeback_state.c.last_error_code.type.length or 64
_MESSAGE_LENGTH = 2000


@dataclass(frozen=True)
class WritebackOutcome:
    """What happened to one record: `status` is success, failed (permanent) or transient."""

    external_id: str
    status: str
    values: Mapping[str, Any]
    error_code: str | None = None
    error: str | None = None
    error_fields: tuple[str, ...] = ()
    """The fields Salesforce's errors for the record named (`errors[].fields`), in order."""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if not self.external_id:
            raise ValueError("an outcome needs the record's external id")


def last_written_values(
    conn: sa.Connection, tenant_id: str, entity_type: str
) -> dict[str, dict[str, Any]]:
    """external id → settled values, for every record of the entity type that has any."""
    return _values_by_id(conn, tenant_id, entity_type, writeback_state.c.last_written_values)


def _values_by_id(
    conn: sa.Connection, tenant_id: str, entity_type: str, column: sa.Column[Any]
) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        sa.select(writeback_state.c.external_id, column).where(
            writeback_state.c.tenant_id == tenant_id,
            writeback_state.c.entity_type == entity_type,
            column.is_not(None),
        )
    )
    return {external_id: dict(values) for external_id, values in rows}


def mark_sending(
    conn: sa.Connection,
    tenant_id: str,
    entity_type: str,
    values_by_id: Mapping[str, Mapping[str, Any]],
) -> None:
    """Remember the values about to be sent for each record (its settled state is untouched)."""
    if not values_by_id:
        return
    insert = _insert_for(conn)
    rows = [
        {
            "tenant_id": tenant_id,
            "entity_type": entity_type,
            "external_id": external_id,
            "sending_values": dict(values),
        }
        for external_id, values in values_by_id.items()
    ]
    statement = insert(writeback_state)
    conn.execute(
        _on_conflict_update(statement, {"sending_values": statement.excluded.sending_values}),
        rows,
    )


def in_flight_values(
    conn: sa.Connection, tenant_id: str, entity_type: str
) -> dict[str, dict[str, Any]]:
    """external id → values sent by a batch whose outcomes were never stored (a crash)."""
    return _values_by_id(conn, tenant_id, entity_type, writeback_state.c.sending_values)


def clear_sending(
    conn: sa.Connection, tenant_id: str, entity_type: str, external_ids: Sequence[str]
) -> None:
    """Forget in-flight values that did not land: those records are simply sent again."""
    conn.execute(
        sa.update(writeback_state)
        .where(
            writeback_state.c.tenant_id == tenant_id,
            writeback_state.c.entity_type == entity_type,
            among(conn, writeback_state.c.external_id, external_ids),
        )
        .values(sending_values=None)
    )


def record_outcomes(
    conn: sa.Connection,
    tenant_id: str,
    entity_type: str,
    outcomes: Sequence[WritebackOutcome],
    at: datetime | None = None,
) -> None:
    """Store the outcomes of one batch (one executemany per kind of outcome); each record's
    in-flight values are cleared with its outcome."""
    if not tenant_id or not entity_type:
        raise ValueError("tenant_id and entity_type must be non-empty")
    when = datetime.now(UTC) if at is None else ensure_aware_utc(at, "outcome time")
    insert = _insert_for(conn)
    by_status: dict[str, list[WritebackOutcome]] = {status: [] for status in STATUSES}
    for outcome in outcomes:
        by_status[outcome.status].append(outcome)
    key = {"tenant_id": tenant_id, "entity_type": entity_type}
    if by_status[SUCCESS]:
        rows = [
            {
                **key,
                "external_id": o.external_id,
                "last_written_values": dict(o.values),
                "last_status": SUCCESS,
                "last_error_code": None,
                "last_error": None,
                "last_error_fields": None,
                "attempts": 0,
                "last_attempt_at": when,
                "written_at": when,
                "sending_values": None,
            }
            for o in by_status[SUCCESS]
        ]
        statement = insert(writeback_state)
        conn.execute(_on_conflict_update(statement, _success_updates(statement)), rows)
    for status in (FAILED, TRANSIENT):
        if by_status[status]:
            _record_failures(conn, insert, key, status, by_status[status], when)


def _record_failures(
    conn: sa.Connection,
    insert: Any,
    key: Mapping[str, str],
    status: str,
    outcomes: Sequence[WritebackOutcome],
    when: datetime,
) -> None:
    keeps_values = status == TRANSIENT
    rows = [
        {
            **key,
            "external_id": o.external_id,
            "last_written_values": None if keeps_values else dict(o.values),
            "last_error_code": (o.error_code or "")[:_CODE_LENGTH] or None,
            "last_error": (o.error or "")[:_MESSAGE_LENGTH] or None,
            "last_error_fields": list(o.error_fields) or None,
            "last_status": status,
            "attempts": 1,
            "last_attempt_at": when,
            "sending_values": None,
        }
        for o in outcomes
    ]
    statement = insert(writeback_state)
    excluded = statement.excluded
    updates: dict[str, Any] = {
        "last_status": excluded.last_status,
        "last_error_code": excluded.last_error_code,
        "last_error": excluded.last_error,
        "last_error_fields": excluded.last_error_fields,
        "attempts": writeback_state.c.attempts + 1,
        "last_attempt_at": excluded.last_attempt_at,
        "sending_values": None,
    }
    if not keeps_values:
        updates["last_written_values"] = excluded.last_written_values
    conn.execute(_on_conflict_update(statement, updates), rows)


def _success_updates(statement: Any) -> dict[str, Any]:
    excluded = statement.excluded
    return {
        name: getattr(excluded, name)
        for name in (
            "last_written_values",
            "last_status",
            "last_error_code",
            "last_error",
            "last_error_fields",
            "attempts",
            "last_attempt_at",
            "written_at",
            "sending_values",
        )
    }


def _on_conflict_update(statement: Any, updates: Mapping[str, Any]) -> Any:
    return statement.on_conflict_do_update(
        index_elements=[
            writeback_state.c.tenant_id,
            writeback_state.c.entity_type,
            writeback_state.c.external_id,
        ],
        set_=dict(updates),
    )


def _insert_for(conn: sa.Connection) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise StoreError(f"writeback_state supports SQLite and PostgreSQL, not {dialect}")
