"""`scoring/scores`: the reference scoring model run over one tenant's synced canonical tables.

(No `from __future__ import annotations`: Dagster reads the resource types from the asset
function's signature at definition time.)

The writeback reads only the `scores` table, so a tenant can replace this asset with its own that
writes the same table through `write_scores`.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from gtm_pipeline.defs.assets import asset_key
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.defs.resources import WarehouseResource
from gtm_pipeline.scoring import ScoringConfig, score_all
from gtm_pipeline.store.scoring import (
    SCORE_ENTITY_TYPES,
    load_activities,
    load_scoring_inputs,
    read_scores,
    write_scores,
)
from gtm_pipeline.sync.entities import SYNC_ORDER

SCORES_KEY = dg.AssetKey(["scoring", "scores"])
_KEY_COLUMNS = ["entity_type", "external_id"]
_VALUE_COLUMNS = ["fit_score", "engagement_score", "combined_score", "tier"]


def keep_unchanged_stamps(fresh: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """`fresh` with the previous `scored_at` wherever a record's scores and tier are unchanged.

    `scored_at` says when a record got its current score. Restamping unchanged scores on every
    run would make every record differ from what was last written, and the writeback would
    resend all of them each time instead of only what changed.
    """
    if previous.empty or fresh.empty:
        return fresh
    old = previous[_KEY_COLUMNS + _VALUE_COLUMNS + ["scored_at"]].rename(
        columns={c: f"{c}_previous" for c in [*_VALUE_COLUMNS, "scored_at"]}
    )
    merged = fresh.merge(old, on=_KEY_COLUMNS, how="left")
    same = pd.Series(True, index=merged.index)
    for column in _VALUE_COLUMNS:
        same &= merged[column].eq(merged[f"{column}_previous"]).fillna(False).astype(bool)
    merged.loc[same, "scored_at"] = merged.loc[same, "scored_at_previous"]
    return merged[list(fresh.columns)]


def scoring_metadata(scores: pd.DataFrame, written: int) -> dict[str, object]:
    """Rows per entity type and per tier, every entity type named even when it has none."""
    per_type = scores["entity_type"].value_counts()
    tiers = scores["tier"].value_counts()
    metadata: dict[str, object] = {
        f"rows_scored_{entity_type}": int(per_type.get(entity_type, 0))
        for entity_type in SCORE_ENTITY_TYPES
    }
    metadata["tier_counts"] = dg.MetadataValue.table(
        [dg.TableRecord({"tier": str(t), "rows": int(n)}) for t, n in tiers.items()],
        schema=dg.TableSchema(
            columns=[dg.TableColumn("tier", "string"), dg.TableColumn("rows", "int")]
        ),
    )
    metadata["dagster/row_count"] = dg.MetadataValue.int(written)
    return metadata


@dg.asset(
    key=SCORES_KEY,
    partitions_def=salesforce_tenants,
    deps=[asset_key(entity) for entity in SYNC_ORDER],
    group_name="scoring",
    kinds={"python"},
    description="Fit, engagement and combined scores with a tier per synced record (table "
    "`scores`), from the reference model in gtm_pipeline.scoring.",
)
def scores_asset(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    tenant_id = context.partition_key
    engine = warehouse.engine()
    # One transaction: the scores written are those of the rows read, never half a run.
    with engine.begin() as conn:
        accounts, persons, opportunities = load_scoring_inputs(conn, tenant_id)
        config, now = ScoringConfig(), datetime.now(UTC)
        # Only the model's window of activities: a tenant's history may hold millions.
        since = now - timedelta(days=config.activity_window_days)
        activities = load_activities(conn, tenant_id, since)
        fresh = score_all(accounts, persons, opportunities, config, now, activities)
        scores = keep_unchanged_stamps(fresh, read_scores(conn, tenant_id))
        written = write_scores(conn, tenant_id, scores)
    context.log.info(f"scored {len(scores)} records of tenant {tenant_id}")
    return dg.MaterializeResult(metadata=scoring_metadata(scores, written))


def definitions() -> dg.Definitions:
    """The scoring domain: the reference scores asset."""
    return dg.Definitions(assets=[scores_asset])
