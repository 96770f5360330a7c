"""The store: SQLAlchemy Core tables, Alembic migrations, bulk upserts and sync cursors.

No Salesforce and no Dagster here; callers hand in connections and DataFrames.

Table names are exported here, so no module is named like a table (a submodule import would
rebind the name on the package): connections.py, scoring.py and writeback.py hold the SQL for
`connectors`/`connector_tokens`, `scores` and `writeback_state`.
"""

from gtm_pipeline.store.connections import (
    ConnectorRow,
    OAuthStateRow,
    OperatorRow,
    TokenRow,
    UnknownTenantError,
    consume_oauth_state,
    create_operator,
    delete_expired_oauth_states,
    delete_token_row,
    find_operator,
    get_connector,
    insert_oauth_state,
    list_connectors,
    list_operators,
    load_token_row,
    operator_token_hash,
    revoke_operator,
    save_token_row,
    set_connector_status,
    upsert_connector,
)
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
from gtm_pipeline.store.migrate import current_revision, head_revision, open_store, upgrade
from gtm_pipeline.store.tables import (
    CANONICAL_TABLES,
    accounts,
    activities,
    connector_tokens,
    connectors,
    field_mappings,
    metadata,
    oauth_states,
    operator_credentials,
    opportunities,
    persons,
    quality_failures,
    scores,
    sync_state,
    writeback_state,
)
from gtm_pipeline.store.types import NaiveDatetimeError, UTCDateTime
from gtm_pipeline.store.upsert import UpsertBatch, prepare_upsert, upsert_records, write_upsert

__all__ = [
    "CANONICAL_TABLES",
    "ConnectorRow",
    "Cursor",
    "InvalidRowsError",
    "MigrationError",
    "NaiveDatetimeError",
    "OAuthStateRow",
    "OperatorRow",
    "StoreConfigError",
    "StoreError",
    "TokenRow",
    "UTCDateTime",
    "UnknownTenantError",
    "UpsertBatch",
    "accounts",
    "activities",
    "connector_tokens",
    "connectors",
    "consume_oauth_state",
    "create_operator",
    "current_revision",
    "delete_expired_oauth_states",
    "delete_token_row",
    "field_mappings",
    "find_operator",
    "get_connector",
    "get_cursor",
    "head_revision",
    "insert_oauth_state",
    "list_connectors",
    "list_operators",
    "load_token_row",
    "make_engine",
    "open_store",
    "mark_run_started",
    "mark_run_succeeded",
    "metadata",
    "oauth_states",
    "operator_credentials",
    "operator_token_hash",
    "opportunities",
    "persons",
    "prepare_upsert",
    "quality_failures",
    "revoke_operator",
    "safe_url",
    "save_cursor",
    "save_token_row",
    "scores",
    "set_connector_status",
    "sync_state",
    "upgrade",
    "upsert_connector",
    "upsert_records",
    "write_upsert",
    "writeback_state",
]
