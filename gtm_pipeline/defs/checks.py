"""One asset check per quality gate, with the counts of the run and a table of its first failures.

Severity is WARN while the tenant's quarantine for a gate holds no more than
`GTM_QUALITY_ERROR_RATE` (default 5%) of the entity's records, ERROR above it: judged on the
whole table, not the run, so a small incremental run with one bad record in eight does not
block the writeback of an otherwise clean tenant (`sync.quality.stage_summaries`).

The checks do not block the sync chain itself (contacts still sync
when accounts had bad rows: the bad rows are quarantined, not loaded); the writeback reads the
latest evaluations and refuses to push a tenant's scores while any of them is a failed ERROR.

The failures shown are the run's own, read back from `quality_failures` by run id once the sync
has committed them, so the table in the UI is exactly what sits in quarantine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import sqlalchemy as sa

from gtm_pipeline.config import DEFAULT_ERROR_RATE
from gtm_pipeline.defs.partitions import partitioned_checks, salesforce_tenants
from gtm_pipeline.store.quarantine import failures_for, standing_counts, twins_of
from gtm_pipeline.sync.quality import (
    DEDUPLICATION,
    REQUIRED,
    STAGES,
    TYPE_COERCION,
    QualityStats,
    StageSummary,
    Standing,
    failures_markdown,
    stage_summaries,
)

__all__ = [
    "quality_check_results",
    "quality_check_specs",
    "run_failures",
    "tenant_standing",
]

FAILURES_SHOWN = 20
DESCRIPTIONS = {
    REQUIRED: "Every record has the entity's required fields.",
    DEDUPLICATION: "One row per external id; for Contacts and Leads, email twins left out of the "
    "live set (of each normalised email a Contact survives before a Lead, then the smallest id).",
    TYPE_COERCION: "Numbers and dates parse; text fits the canonical columns.",
}


def quality_check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The three gates of a sync asset, partitioned by tenant like the asset: each evaluation
    belongs to the tenant the run synced, so the UI shows every tenant's own history."""
    with partitioned_checks():
        return [
            dg.AssetCheckSpec(
                stage,
                asset=key,
                description=DESCRIPTIONS[stage],
                partitions_def=salesforce_tenants,
            )
            for stage in STAGES
        ]


def run_failures(
    engine: sa.Engine, tenant_id: str, entity: str, run_id: str, limit: int = FAILURES_SHOWN
) -> list[dict[str, Any]]:
    """The first `limit` failures of each gate that this run quarantined, and the first `limit`
    email twins of the tenant (deduplication marks them in the store, not in the quarantine)."""
    with engine.connect() as conn:
        _count, twins = twins_of(conn, tenant_id, entity, limit)
        return [
            failure
            for stage in STAGES
            for failure in failures_for(
                conn, tenant_id, entity, stage=stage, run_id=run_id, limit=limit
            )
        ] + [{**twin, "stage": DEDUPLICATION} for twin in twins]


def tenant_standing(engine: sa.Engine, tenant_id: str, entity: str) -> Standing:
    """The tenant's quarantine (email twins counted under deduplication) and record count of one
    entity, as committed now."""
    with engine.connect() as conn:
        return Standing(*standing_counts(conn, tenant_id, entity))


def quality_check_results(
    key: dg.AssetKey,
    stats: QualityStats,
    failures: Sequence[Mapping[str, Any]] = (),
    *,
    threshold: float = DEFAULT_ERROR_RATE,
    standing: Standing | None = None,
    limit: int = FAILURES_SHOWN,
) -> list[dg.AssetCheckResult]:
    """One result per gate: counts, rates, `threshold` (a rejected share above it is an ERROR)
    and a Markdown table of its first failures."""
    results = []
    for summary in stage_summaries(stats, threshold, standing):
        own = [f for f in failures if f.get("stage") == summary.stage]
        results.append(
            dg.AssetCheckResult(
                asset_key=key,
                check_name=summary.stage,
                passed=summary.severity == "PASS",
                severity=dg.AssetCheckSeverity.ERROR
                if summary.severity == "ERROR"
                else dg.AssetCheckSeverity.WARN,
                metadata={
                    "rows_checked": stats.input,
                    "rows_rejected": summary.rejected,
                    "rejected_rate": dg.MetadataValue.float(round(summary.rate, 6)),
                    **_tenant_metadata(summary, standing),
                    "error_threshold": dg.MetadataValue.float(threshold),
                    "duplicates_removed": stats.duplicates_removed,
                    "failures_shown": min(len(own), limit),
                    "first_failures": dg.MetadataValue.md(failures_markdown(own, limit)),
                },
            )
        )
    return results


def _tenant_metadata(summary: StageSummary, standing: Standing | None) -> dict[str, object]:
    if standing is None or summary.tenant_rate is None:
        return {}
    return {
        "tenant_records": standing.records,
        "tenant_quarantined": standing.quarantined.get(summary.stage, 0),
        "tenant_rejected_rate": dg.MetadataValue.float(round(summary.tenant_rate, 6)),
    }
