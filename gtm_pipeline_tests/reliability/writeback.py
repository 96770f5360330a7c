"""Writeback as the `salesforce/score_writeback` asset does it, without Dagster's context:
every entity type's scores to write (`writeback.selection.scores_to_write`) through `write_back`.

Shared by the crash child and the in-process reruns, so both write exactly the same thing.
"""

from __future__ import annotations

import sqlalchemy as sa

from gtm_pipeline.defs.writeback_assets import WRITEBACK_ORDER
from gtm_pipeline.writeback.engine import CollectionClient, WritebackResult, write_back
from gtm_pipeline.writeback.selection import scores_to_write


def write_all(client: CollectionClient, engine: sa.Engine, tenant_id: str) -> list[WritebackResult]:
    results = []
    for entity_type in WRITEBACK_ORDER:
        with engine.connect() as conn:
            scores, field_map, _left_out = scores_to_write(conn, tenant_id, entity_type)
        results.append(
            write_back(
                client, engine, tenant_id, entity_type, scores, field_map, sleep=lambda _s: None
            )
        )
    return results
