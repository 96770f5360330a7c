"""Whether a tenant has anything to sync, asked for less than a sync that finds nothing costs.

A tenant needs a run when the last run of one of its entities did not finish (or none ever ran),
or when Salesforce holds a record of an entity modified after that entity's cursor: an edit, an
insert, a deletion or an undeletion alike (each moves `SystemModstamp`, and queryAll returns the
deleted records too). One `SELECT Id ... WHERE SystemModstamp > cursor LIMIT 1` per entity at
most, in sync order, stopping at the first that has changed; nothing when a run is due anyway.

A check that fails (Salesforce unreachable, the tenant's tokens revoked) is a reason too: the
run it starts reports the error where runs report them. An object the integration user may not
read is not (`sync/access.py`): it would start a run on every tick that reads nothing.

What this cannot see: a commit that becomes visible later than its `SystemModstamp`, before the
cursor. The sync's lookback window catches it in the next run the tenant gets for any other
reason, and the daily reconciliation catches it otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import sqlalchemy as sa

from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.errors import SalesforceApiError
from gtm_pipeline.store.cursors import Cursor, get_cursor, last_run_succeeded
from gtm_pipeline.sync.access import unreadable_reason
from gtm_pipeline.sync.entities import SYNC_ORDER, Entity
from gtm_pipeline.sync.soql import changed_query

CHECK_BATCH_SIZE = 200
"""The smallest batch Salesforce accepts; the check reads one record at most."""


def sync_reason(
    engine: sa.Engine,
    tenant_id: str,
    client: Callable[[], SalesforceClient],
    entities: Sequence[Entity] = SYNC_ORDER,
) -> str | None:
    """Why the tenant should sync now, or None when nothing changed since its last good run.

    `client` is called (and Salesforce asked) only when the store alone cannot tell."""
    with engine.connect() as conn:
        standing = [
            (e, get_cursor(conn, tenant_id, e.name), last_run_succeeded(conn, tenant_id, e.name))
            for e in entities
        ]
    for entity, _cursor, succeeded in standing:
        if not succeeded:
            return f"{entity.asset_name}: the last run did not finish"
    try:
        return _first_change(client(), [(e, cursor) for e, cursor, _ in standing])
    except GtmError as exc:
        return f"the change check failed: {exc.user_message}"


def _first_change(
    salesforce: SalesforceClient, standing: Sequence[tuple[Entity, Cursor | None]]
) -> str | None:
    for entity, cursor in standing:
        since = cursor.system_modstamp if cursor is not None else None
        if _has_change(salesforce, entity, since):
            return f"{entity.asset_name}: changed in Salesforce since {since or 'the last run'}"
    return None


def _has_change(salesforce: SalesforceClient, entity: Entity, since: datetime | None) -> bool:
    """Whether a record of the entity was modified after `since`; an object the integration
    user may not read has none to sync (`sync/access.py`)."""
    query = changed_query(entity.sf_object, since)
    try:
        pages = salesforce.query_pages(query, include_deleted=True, batch_size=CHECK_BATCH_SIZE)
        return bool(next(pages).records)
    except SalesforceApiError as exc:
        if unreadable_reason(salesforce, entity.sf_object, exc) is None:
            raise
        return False
