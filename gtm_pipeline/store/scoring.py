"""The `scores` table and the live canonical rows the scoring model reads.

SQL only: the model (`gtm_pipeline.scoring`) never touches the database, and the writeback reads
scores through `read_scores`, so any asset that writes this table with `write_scores` can replace
the reference model. Runs in the caller's transaction; nothing here commits.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from gtm_pipeline.store.errors import InvalidRowsError
from gtm_pipeline.store.tables import accounts, activities, is_live, opportunities, persons, scores
from gtm_pipeline.store.upsert import upsert_records

SCORE_ENTITY_TYPES = ("account", "person", "lead", "opportunity")
SCORE_COLUMNS = (
    "entity_type",
    "external_id",
    "fit_score",
    "engagement_score",
    "combined_score",
    "tier",
    "scored_at",
)
_INPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": ("external_id", "name", "industry", "employee_count", "annual_revenue"),
    "persons": ("external_id", "source_object", "account_external_id", "title", "email"),
    "opportunities": ("external_id", "account_external_id", "stage", "amount", "close_date"),
    "activities": (
        "external_id",
        "who_external_id",
        "account_external_id",
        "subtype",
        "occurred_at",
    ),
}


def _live_rows(
    conn: sa.Connection,
    table: sa.Table,
    tenant_id: str,
    condition: sa.ColumnElement[bool] | None = None,
) -> pd.DataFrame:
    names = _INPUT_COLUMNS[table.name]
    query = (
        sa.select(*(table.c[name] for name in names))
        .where(table.c.tenant_id == tenant_id, is_live(table))
        .order_by(table.c.external_id)
    )
    if condition is not None:
        query = query.where(condition)
    return pd.DataFrame(conn.execute(query).all(), columns=list(names))


def load_scoring_inputs(
    conn: sa.Connection, tenant_id: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The tenant's live accounts, persons (Contacts and Leads, told apart by `source_object`)
    and opportunities (`tables.is_live`), ordered by id."""
    return (
        _live_rows(conn, accounts, tenant_id),
        _live_rows(conn, persons, tenant_id),
        _live_rows(conn, opportunities, tenant_id),
    )


def load_activities(
    conn: sa.Connection, tenant_id: str, since: datetime | None = None
) -> pd.DataFrame:
    """The tenant's live activities (Tasks and Events) that occurred after `since` (all when
    None): the engagement model's input, which counts only a recent window of them."""
    recent = None if since is None else activities.c.occurred_at > since
    return _live_rows(conn, activities, tenant_id, recent)


def _check_scores_frame(tenant_id: str, frame: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidRowsError(f"scores must be a pandas DataFrame, got {type(frame).__name__}")
    if "tenant_id" in frame.columns:
        others = set(frame["tenant_id"].dropna().unique()) - {tenant_id}
        if others:
            raise InvalidRowsError("scores rows name a tenant_id other than the one written")
        frame = frame.drop(columns="tenant_id")
    unknown = sorted(set(map(str, frame.columns)) - set(SCORE_COLUMNS))
    if unknown:
        raise InvalidRowsError(f"scores have unknown column(s) {', '.join(unknown)}")
    missing = [name for name in ("entity_type", "external_id", "scored_at") if name not in frame]
    if missing and len(frame) > 0:
        raise InvalidRowsError(f"scores lack required column(s) {', '.join(missing)}")
    if "entity_type" in frame.columns:
        bad = sorted(set(frame["entity_type"].astype(str)) - set(SCORE_ENTITY_TYPES))
        if bad:
            raise InvalidRowsError(
                f"scores have unknown entity_type(s) {', '.join(bad)}; "
                f"expected one of {', '.join(SCORE_ENTITY_TYPES)}"
            )
    return frame


def write_scores(conn: sa.Connection, tenant_id: str, scores_df: pd.DataFrame) -> int:
    """Upsert scores by (tenant, entity type, external id); return how many rows were written.

    The last write wins: `scores` has no version column, and the newest scoring run is the truth.
    A key repeated within `scores_df` is written once (its last row).
    """
    if not tenant_id:
        raise InvalidRowsError("tenant_id must be a non-empty string")
    frame = _check_scores_frame(tenant_id, scores_df)
    if len(frame) == 0:
        return 0
    rows = frame.assign(tenant_id=tenant_id).drop_duplicates(
        ["entity_type", "external_id"], keep="last"
    )
    return upsert_records(conn, scores, rows)


def read_scores(
    conn: sa.Connection, tenant_id: str, entity_type: str | None = None
) -> pd.DataFrame:
    """A tenant's scores (one entity type, or all), ordered by entity type and id.

    `scored_at` comes back as tz-aware UTC; an empty result still has every column.
    """
    if entity_type is not None and entity_type not in SCORE_ENTITY_TYPES:
        raise ValueError(
            f"entity_type must be one of {', '.join(SCORE_ENTITY_TYPES)}, got {entity_type!r}"
        )
    query = sa.select(*(scores.c[name] for name in SCORE_COLUMNS)).where(
        scores.c.tenant_id == tenant_id
    )
    if entity_type is not None:
        query = query.where(scores.c.entity_type == entity_type)
    query = query.order_by(scores.c.entity_type, scores.c.external_id)
    frame = pd.DataFrame(conn.execute(query).all(), columns=list(SCORE_COLUMNS))
    for name in ("fit_score", "engagement_score", "combined_score"):
        frame[name] = frame[name].astype("float64")
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True)
    return frame
