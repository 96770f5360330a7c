"""SQL for `field_mappings`: a tenant's own mapping rows per entity and direction.

Rows are plain dicts (target_field, source_path, transform, required, sf_object,
allow_standard_field) so the store knows nothing about the sync or writeback layers' types;
`allow_standard_field` (false unless given) records a writeback to a standard Salesforce field
chosen on purpose. A tenant's mapping of one entity is replaced as a
whole inside the caller's transaction, so a failed save leaves the previous mapping in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from gtm_pipeline.store.tables import field_mappings

ROW_KEYS = (
    "target_field",
    "source_path",
    "transform",
    "required",
    "sf_object",
    "allow_standard_field",
)


def load_mapping_rows(
    conn: sa.Connection, tenant_id: str, entity: str, direction: str = "sync"
) -> list[dict[str, Any]]:
    """The stored rows of one tenant's entity, ordered by target for a stable result."""
    query = (
        sa.select(*(field_mappings.c[k] for k in ROW_KEYS))
        .where(
            field_mappings.c.tenant_id == tenant_id,
            field_mappings.c.entity == entity,
            field_mappings.c.direction == direction,
        )
        .order_by(field_mappings.c.target_field)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def replace_mapping_rows(
    conn: sa.Connection,
    tenant_id: str,
    entity: str,
    rows: Iterable[Mapping[str, Any]],
    direction: str = "sync",
) -> int:
    """Delete the entity's stored rows and insert `rows` (each target once); returns the count."""
    values = [
        {
            "tenant_id": tenant_id,
            "entity": entity,
            "direction": direction,
            **{k: row.get(k) for k in ROW_KEYS},
            "allow_standard_field": bool(row.get("allow_standard_field", False)),
        }
        for row in rows
    ]
    conn.execute(
        sa.delete(field_mappings).where(
            field_mappings.c.tenant_id == tenant_id,
            field_mappings.c.entity == entity,
            field_mappings.c.direction == direction,
        )
    )
    if values:
        conn.execute(sa.insert(field_mappings), values)
    return len(values)


def mapped_entities(conn: sa.Connection, tenant_id: str, direction: str = "sync") -> list[str]:
    """Entities for which the tenant has stored rows."""
    query = (
        sa.select(field_mappings.c.entity)
        .where(field_mappings.c.tenant_id == tenant_id, field_mappings.c.direction == direction)
        .distinct()
        .order_by(field_mappings.c.entity)
    )
    return list(conn.execute(query).scalars())
