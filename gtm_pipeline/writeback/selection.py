"""What a writeback run sends for one entity type: the stored scores minus the records never to
write (quarantined by a quality gate, or deleted in Salesforce), and the tenant's field map.

One place for the asset, the command and the reliability suite, so all write the same thing.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from gtm_pipeline.store.scoring import read_scores
from gtm_pipeline.store.tables import entity_rows, is_live, quality_failures
from gtm_pipeline.sync.entities import by_score_type
from gtm_pipeline.writeback.mapping import load_writeback_map


def excluded_ids(conn: sa.Connection, tenant_id: str, entity_type: str) -> set[str]:
    """Ids never to write: quarantined by a quality gate, deleted in Salesforce, or an email twin
    of the record that survives (not live: `tables.is_live`)."""
    entity = by_score_type(entity_type).name
    rows = entity_rows(entity)
    quarantined = sa.select(quality_failures.c.external_id).where(
        quality_failures.c.tenant_id == tenant_id, quality_failures.c.entity == entity
    )
    not_live = sa.select(rows.table.c.external_id).where(
        rows.of_tenant(tenant_id), sa.not_(is_live(rows.table))
    )
    return set(conn.execute(quarantined).scalars()) | set(conn.execute(not_live).scalars())


def live_record_count(conn: sa.Connection, tenant_id: str, entity_type: str) -> int:
    """The tenant's live records of an entity type: how many a writeback may change."""
    rows = entity_rows(by_score_type(entity_type).name)
    query = sa.select(sa.func.count()).where(rows.of_tenant(tenant_id), is_live(rows.table))
    return int(conn.execute(query).scalar_one())


def scores_to_write(
    conn: sa.Connection, tenant_id: str, entity_type: str
) -> tuple[pd.DataFrame, dict[str, str], int]:
    """(scores to reconcile, the tenant's field map, how many scored records were left out)."""
    scores = read_scores(conn, tenant_id, entity_type)
    excluded = excluded_ids(conn, tenant_id, entity_type)
    kept = scores[~scores["external_id"].isin(excluded)]
    return kept, load_writeback_map(conn, tenant_id, entity_type), len(scores) - len(kept)
