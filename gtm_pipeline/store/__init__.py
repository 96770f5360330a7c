"""The store: SQLAlchemy Core tables, Alembic migrations, bulk upserts and sync cursors.

No Salesforce and no Dagster here; callers hand in connections and DataFrames.
"""

from gtm_pipeline.store.cursors import (
    Cursor,
    get_cursor,
    mark_run_started,
    mark_run_succeeded,
    save_cursor,
)
from gtm_pipeline.store.engine import make_engine, safe_url
from gtm_pipeline.store.errors import (
    InvalidRowsError,
    MigrationError,
    StoreConfigError,
    StoreError,
)
from gtm_pipeline.store.migrate import current_revision, head_revision, upgrade
from gtm_pipeline.store.tables import (
    CANONICAL_TABLES,
    accounts,
    connector_tokens,
    connectors,
    field_mappings,
    metadata,
    opportunities,
    persons,
    quality_failures,
    scores,
    sync_state,
    writeback_state,
)
from gtm_pipeline.store.types import NaiveDatetimeError, UTCDateTime
from gtm_pipeline.store.upsert import upsert_records

__all__ = [
    "CANONICAL_TABLES",
    "Cursor",
    "InvalidRowsError",
    "MigrationError",
    "NaiveDatetimeError",
    "StoreConfigError",
    "StoreError",
    "UTCDateTime",
    "accounts",
    "connector_tokens",
    "connectors",
    "current_revision",
    "field_mappings",
    "get_cursor",
    "head_revision",
    "make_engine",
    "mark_run_started",
    "mark_run_succeeded",
    "metadata",
    "opportunities",
    "persons",
    "quality_failures",
    "safe_url",
    "save_cursor",
    "scores",
    "sync_state",
    "upgrade",
    "upsert_records",
    "writeback_state",
]
