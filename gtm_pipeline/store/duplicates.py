"""Email twins among a tenant's persons: one survivor per normalised email, the others marked.

Persons are Contacts and Leads (`source_object`), and twins span both. The candidates of a
group are the tenant's rows that share an email and are neither deleted nor converted Leads (a
converted Lead already points at its Contact). The survivor is a Contact when the group has one,
else a Lead; among those, the smallest external id in byte order. That is a function of
Salesforce's current state alone, so it does not depend on batch sizes, page boundaries, the
extraction path or the order of syncs, and it does not flip when a record is edited without
changing its email. Every other candidate has `duplicate_of` = the survivor's external id;
survivors, rows without an email, deleted rows and converted Leads have none. Rows with
`duplicate_of` set are kept with their newest values but are not in the live set (scoring,
writeback and row counts leave them out). Python's `min()` over the ids is byte order for UTF-8
text (code point order).

Each load of Contacts or Leads calls `refresh_duplicates` in its own transaction with the emails
it touched, the old ones (read with `emails_of` before the change) and the new ones, so a
survivor that is deleted, quarantined, converted or changes its email hands over to the next
twin in the same transaction.

A first full sync of an object is the exception: the tenant has none of its rows yet, so it loads
every page without that per-page work and marks the whole tenant once at its end (`settle_all`).
The object's `sync_state` row says so (`twin_marks_pending`, committed with the run's start), so a
first sync that is interrupted leaves the flag set and the next run of that object, whatever its
kind, marks the tenant when it ends. Until then the object's rows are a partial first load, read
by nothing downstream (scoring and writeback run after a successful sync). On a 1,000,000
Contact org the per-page upkeep cost 5-6 s of a 57 s sync; the single pass takes under a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa

from gtm_pipeline.store.id_filters import among, rows_by_id
from gtm_pipeline.store.tables import entity_rows, persons, sync_state

EMAIL = "email"


def emails_of(conn: sa.Connection, tenant_id: str, external_ids: Sequence[str]) -> set[str]:
    """The emails stored now for these persons (rows that have one).

    Found by primary key (`rows_by_id`); rows without an email are dropped here, not in SQL: an
    `email IS NOT NULL` condition made SQLite range-scan the email index instead, reading every
    person of the tenant for each batch (a 1,000,000-Contact sync 4-5x slower)."""
    if not external_ids:
        return set()
    query = rows_by_id(conn, persons, tenant_id, external_ids, persons.c.email)
    return {email for email in conn.execute(query).scalars() if email is not None}


def refresh_duplicates(conn: sa.Connection, tenant_id: str, emails: Iterable[str | None]) -> int:
    """Make `duplicate_of` right for every row holding one of `emails`; returns rows changed.

    Only emails held by more than one row, or by a marked row, can need a change (a lone row is
    its own survivor, or deleted: unmarked either way), so the database picks those out first and
    only their rows come back to Python, which decides the survivors and updates the rows whose
    mark changes: after a load that made no twins, one query and nothing written.
    """
    wanted = {e for e in emails if e is not None}
    return _mark(conn, tenant_id, _emails_with_twins_or_marks(conn, tenant_id, wanted))


def settle_all(conn: sa.Connection, tenant_id: str) -> int:
    """Make `duplicate_of` right for every person of the tenant; returns rows changed."""
    return _mark(conn, tenant_id, _emails_with_twins_or_marks(conn, tenant_id, None))


def _mark(conn: sa.Connection, tenant_id: str, wanted: list[str]) -> int:
    """Decide the survivors of the emails `wanted` and update the rows whose mark changes."""
    if not wanted:
        return 0
    rows = conn.execute(
        sa.select(persons.c.external_id, persons.c.email, persons.c.is_deleted,
                  persons.c.is_converted, persons.c.source_object, persons.c.duplicate_of)
        .where(persons.c.tenant_id == tenant_id, among(conn, persons.c.email, wanted))
    ).all()  # fmt: skip
    survivors = _survivors(rows)
    changes = []
    for row in rows:
        survivor = survivors.get(row.email) if _is_candidate(row) else None
        mark = None if survivor == row.external_id else survivor
        if mark != row.duplicate_of:
            changes.append({"tenant": tenant_id, "id": row.external_id, "mark": mark})
    if changes:
        conn.execute(
            sa.update(persons)
            .where(
                persons.c.tenant_id == sa.bindparam("tenant"),
                persons.c.external_id == sa.bindparam("id"),
            )
            .values(duplicate_of=sa.bindparam("mark")),
            changes,
        )
    return len(changes)


def _emails_with_twins_or_marks(
    conn: sa.Connection, tenant_id: str, emails: set[str] | None
) -> list[str]:
    """Of `emails` (None: all the tenant's), those held by two or more of the tenant's rows or
    by a row with a mark.

    Two parts: the emails held twice, counted from the entries of the (tenant, email) index
    alone, and those of marked rows, found through the partial index that holds only those rows.
    One query counting marks per email read every row the email index points at (migration
    0012)."""
    if emails is not None and not emails:
        return []
    held = (
        persons.c.email.is_not(None)
        if emails is None
        else among(conn, persons.c.email, sorted(emails))
    )
    twice = (
        sa.select(persons.c.email)
        .where(persons.c.tenant_id == tenant_id, held)
        .group_by(persons.c.email)
        .having(sa.func.count() > 1)
    )
    marked = sa.select(persons.c.email).where(
        persons.c.tenant_id == tenant_id, persons.c.duplicate_of.is_not(None), held
    )
    return sorted(conn.execute(sa.union(twice, marked)).scalars())


def _is_candidate(row: sa.Row) -> bool:
    """Whether the row takes part in its email's group: neither deleted nor a converted Lead."""
    return not row.is_deleted and not row.is_converted


def _survivors(rows: Sequence[sa.Row]) -> dict[str, str]:
    """The surviving external id of each email: a Contact before a Lead, then the smallest id."""
    best: dict[str, tuple[bool, str]] = {}
    for row in rows:
        if not _is_candidate(row):
            continue
        rank = (row.source_object != "Contact", row.external_id)
        current = best.get(row.email)
        if current is None or rank < current:
            best[row.email] = rank
    return {email: rank[1] for email, rank in best.items()}


@contextmanager
def twins_kept_marked(
    conn: sa.Connection, table: sa.Table, tenant_id: str, external_ids: Sequence[str]
) -> Iterator[set[str]]:
    """Around a change to the rows `external_ids` of `table`: their emails before it, plus the
    emails the caller adds to the yielded set, get their marks refreshed after it (in `conn`).
    Tables without email twins (no `duplicate_of` column) pass through."""
    touched: set[str] = set()
    if "duplicate_of" not in table.c:
        yield touched
        return
    touched |= emails_of(conn, tenant_id, external_ids)
    yield touched
    refresh_duplicates(conn, tenant_id, touched)


def defer_marks_if_first(
    conn: sa.Connection, tenant_id: str, entity: str, starts_empty: bool
) -> bool:
    """Whether this run loads the entity without marking twins page by page: the tenant's first
    full sync of the entity (`starts_empty`: a full sync while the tenant has none of its rows),
    which sets the flag, or any run after one that left it set. Needs the run's `sync_state`
    row (`cursors.mark_run_started`) in `conn`."""
    if "duplicate_of" not in entity_rows(entity).table.c:
        return False
    if _marks_pending(conn, tenant_id, entity):
        return True
    if not starts_empty:
        return False
    _set_pending(conn, tenant_id, entity, True)
    return True


def settle_deferred_marks(
    conn: sa.Connection, tenant_id: str, entity: str, run_started_at: datetime
) -> int:
    """Mark the tenant's twins in one pass; rows changed. The flag is cleared only when no run
    started after this one (`sync_state.last_started_at`): a later run that also defers is still
    loading, and settles when it ends."""
    changed = settle_all(conn, tenant_id)
    conn.execute(
        sa.update(sync_state)
        .where(
            sync_state.c.tenant_id == tenant_id,
            sync_state.c.entity == entity,
            sync_state.c.last_started_at == run_started_at,
        )
        .values(twin_marks_pending=False)
    )
    return changed


def _marks_pending(conn: sa.Connection, tenant_id: str, entity: str) -> bool:
    return bool(conn.execute(
        sa.select(sync_state.c.twin_marks_pending)
        .where(sync_state.c.tenant_id == tenant_id, sync_state.c.entity == entity)
    ).scalar())  # fmt: skip


def _set_pending(conn: sa.Connection, tenant_id: str, entity: str, pending: bool) -> None:
    conn.execute(
        sa.update(sync_state)
        .where(sync_state.c.tenant_id == tenant_id, sync_state.c.entity == entity)
        .values(twin_marks_pending=pending)
    )
