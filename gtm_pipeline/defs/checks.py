"""One asset check per quality gate, with the counts of the run that materialized the asset.

Severity is WARN while a gate rejects less than `GTM_QUALITY_ERROR_RATE` of the rows read
(default 5%), ERROR above it. The checks do not block the sync chain itself (contacts still sync
when accounts had bad rows: the bad rows are quarantined, not loaded); the writeback reads the
latest evaluations and refuses to push a tenant's scores while any of them is a failed ERROR.
"""

from __future__ import annotations

import os

import dagster as dg

from gtm_pipeline.config import ConfigError
from gtm_pipeline.sync.quality import DEDUPLICATION, REQUIRED, STAGES, TYPE_COERCION, QualityStats

DEFAULT_ERROR_RATE = 0.05
DESCRIPTIONS = {
    REQUIRED: "Every record has the entity's required fields.",
    DEDUPLICATION: "One record per external id (and per normalised email for persons).",
    TYPE_COERCION: "Numbers and dates parse; text fits the canonical columns.",
}


def error_rate() -> float:
    raw = os.environ.get("GTM_QUALITY_ERROR_RATE", "").strip()
    if not raw:
        return DEFAULT_ERROR_RATE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise ConfigError("GTM_QUALITY_ERROR_RATE must be a number between 0 and 1")
    return value


def quality_check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(stage, asset=key, description=DESCRIPTIONS[stage]) for stage in STAGES
    ]


def quality_check_results(key: dg.AssetKey, stats: QualityStats) -> list[dg.AssetCheckResult]:
    threshold = error_rate()
    results = []
    for stage in STAGES:
        rejected = stats.failed_by_stage.get(stage, 0)
        rate = rejected / stats.input if stats.input else 0.0
        results.append(
            dg.AssetCheckResult(
                asset_key=key,
                check_name=stage,
                passed=rejected == 0,
                severity=dg.AssetCheckSeverity.ERROR
                if rate > threshold
                else dg.AssetCheckSeverity.WARN,
                metadata={
                    "rows_checked": stats.input,
                    "rows_rejected": rejected,
                    "rejected_rate": dg.MetadataValue.float(round(rate, 6)),
                    "error_threshold": dg.MetadataValue.float(threshold),
                    "duplicates_removed": stats.duplicates_removed,
                },
            )
        )
    return results
