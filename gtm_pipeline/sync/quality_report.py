"""The quality report read back from the store (`gtm-pipeline quality --tenant T` prints it).

Per entity: the counts of the last sync per gate (from `sync_state.last_stats`, with the rate and
the severity the asset check gave them) and the first records in quarantine (`quality_failures`)
with the field, the reason and the offending value. Same content as the asset checks, for people
at a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from gtm_pipeline.store.quarantine import (
    failures_for,
    quarantine_counts,
    standing_counts,
    twins_of,
)
from gtm_pipeline.store.tables import sync_state
from gtm_pipeline.sync.quality import (
    QualityStats,
    Standing,
    failure_value,
    stage_summaries,
)

CELL_WIDTHS = {"external_id": 20, "stage": 16, "field": 20, "reason": 60, "value": 30}


def last_quality_stats(conn: sa.Connection, tenant_id: str, entity: str) -> QualityStats | None:
    """The gate counts of the entity's last sync, or None when it never synced."""
    row = conn.execute(
        sa.select(sync_state.c.last_stats).where(
            sync_state.c.tenant_id == tenant_id, sync_state.c.entity == entity
        )
    ).one_or_none()
    if row is None or not isinstance(row.last_stats, Mapping):
        return None
    quality = row.last_stats.get("quality")
    return QualityStats.from_dict(quality) if isinstance(quality, Mapping) else None


# -- rendering ------------------------------------------------------------------------------------


def terminal_cell(value: object, width: int) -> str:
    """One line, control characters shown as spaces, cut to `width` (a value cannot forge rows
    or move the cursor in the reader's terminal)."""
    if value is None:
        return ""
    text = "".join(c if c.isprintable() else " " for c in str(value))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def failures_text(failures: Sequence[Mapping[str, Any]]) -> str:
    if not failures:
        return "  (quarantine empty)"
    columns = list(CELL_WIDTHS)
    rows = [
        [terminal_cell(f.get(c) if c != "value" else failure_value(f), CELL_WIDTHS[c])
         for c in columns]
        for f in failures
    ]  # fmt: skip
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  " + "  ".join("-" * w for w in widths))
    lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def entity_report(
    conn: sa.Connection, tenant_id: str, entity: str, limit: int, threshold: float
) -> str:
    lines = [f"== {entity}"]
    counts = quarantine_counts(conn, tenant_id, entity)
    standing = Standing(*standing_counts(conn, tenant_id, entity))
    stats = last_quality_stats(conn, tenant_id, entity)
    if stats is None:
        lines.append("  last sync: none recorded")
    else:
        lines.append(
            f"  last sync: {stats.input} read, {stats.passed} passed, {stats.failed} failed, "
            f"{stats.duplicates_removed} duplicates removed"
        )
        for summary in stage_summaries(stats, threshold, standing):
            lines.append(
                f"  {summary.stage:<16} {summary.rejected:>8} rejected "
                f"({summary.rate:.2%} of the run, {summary.tenant_rate or 0:.2%} of the tenant's "
                f"records)  {summary.severity}"
            )
    total = sum(counts.values())
    detail = ", ".join(f"{stage} {count}" for stage, count in counts.items())
    lines.append(f"  in quarantine: {total}" + (f" ({detail})" if detail else ""))
    failures = failures_for(conn, tenant_id, entity, limit=limit)
    if failures and total > len(failures):
        lines.append(f"  first {len(failures)} of {total}:")
    lines.append(failures_text(failures))
    twins, first_twins = twins_of(conn, tenant_id, entity, limit)
    if twins:
        lines.append(f"  email twins left out of the live set: {twins}")
        lines.append(failures_text(first_twins))
    return "\n".join(lines)


def quality_report(
    engine: sa.Engine,
    tenant_id: str,
    entities: Sequence[str],
    *,
    limit: int,
    threshold: float,
) -> str:
    with engine.connect() as conn:
        return "\n\n".join(
            entity_report(conn, tenant_id, entity, limit, threshold) for entity in entities
        )
