"""Scoring: the reference model that fills the `scores` table from the canonical tables.

Pure pandas, no I/O and no Dagster; `gtm_pipeline.store.scoring` reads its inputs and stores
its output.
"""

from gtm_pipeline.scoring.model import (
    ENTITY_TYPES,
    INDUSTRY_WEIGHTS,
    SCORE_COLUMNS,
    STAGE_PROGRESS,
    TIERS,
    ScoringConfig,
    ScoringConfigError,
    ScoringInputError,
    score_accounts,
    score_all,
    score_opportunities,
    score_persons,
    title_seniority,
)

__all__ = [
    "ENTITY_TYPES",
    "INDUSTRY_WEIGHTS",
    "SCORE_COLUMNS",
    "STAGE_PROGRESS",
    "TIERS",
    "ScoringConfig",
    "ScoringConfigError",
    "ScoringInputError",
    "score_accounts",
    "score_all",
    "score_opportunities",
    "score_persons",
    "title_seniority",
]
