"""What the connectors page and API show per tenant: connection status and the last syncs.

Read-only; it joins the connectors repository with `sync_state`, whose rows exist only once a
sync ran, so "never" is a normal answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gtm_pipeline.store.connections import ConnectorRow, get_connector, list_connectors
from gtm_pipeline.store.tables import sync_state

STATUS_LABELS = {
    "connected": "Connected",
    "reconnect_needed": "Reconnect needed",
    "disconnected": "Disconnected",
    "failed": "Connection failed",
    None: "Not connected yet",
}
# Statuses with tokens at Salesforce that a Disconnect should revoke.
DISCONNECTABLE = frozenset({"connected", "reconnect_needed"})


@dataclass(frozen=True)
class EntitySync:
    """One entity's last successful sync: when, in which mode, and its stats."""

    entity: str
    mode: str | None
    last_succeeded_at: datetime | None
    stats: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "mode": self.mode,
            "last_succeeded_at": _iso(self.last_succeeded_at),
            "stats": dict(self.stats),
        }


@dataclass(frozen=True)
class TenantOverview:
    """A tenant as an operator sees it; `status` is None before any connect attempt."""

    tenant_id: str
    connector_id: str | None = None
    status: str | None = None
    status_detail: str | None = None
    instance_url: str | None = None
    org_id: str | None = None
    connected_at: datetime | None = None
    updated_at: datetime | None = None
    syncs: tuple[EntitySync, ...] = field(default_factory=tuple)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, str(self.status))

    @property
    def can_disconnect(self) -> bool:
        return self.status in DISCONNECTABLE

    @property
    def last_synced_at(self) -> datetime | None:
        stamps = [s.last_succeeded_at for s in self.syncs if s.last_succeeded_at is not None]
        return max(stamps, default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "connector_id": self.connector_id,
            "status": self.status,
            "status_detail": self.status_detail,
            "instance_url": self.instance_url,
            "org_id": self.org_id,
            "connected_at": _iso(self.connected_at),
            "updated_at": _iso(self.updated_at),
            "last_synced_at": _iso(self.last_synced_at),
            "syncs": [s.to_json() for s in self.syncs],
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _syncs_by_tenant(
    conn: sa.Connection, tenant_ids: Iterable[str]
) -> dict[str, tuple[EntitySync, ...]]:
    ids = list(tenant_ids)
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(
            sync_state.c.tenant_id,
            sync_state.c.entity,
            sync_state.c.mode,
            sync_state.c.last_succeeded_at,
            sync_state.c.last_stats,
        )
        .where(sync_state.c.tenant_id.in_(ids))
        .order_by(sync_state.c.tenant_id, sync_state.c.entity)
    )
    found: dict[str, list[EntitySync]] = defaultdict(list)
    for row in rows:
        stats = row.last_stats if isinstance(row.last_stats, Mapping) else {}
        found[row.tenant_id].append(EntitySync(row.entity, row.mode, row.last_succeeded_at, stats))
    return {tenant: tuple(syncs) for tenant, syncs in found.items()}


def _overview(row: ConnectorRow, syncs: tuple[EntitySync, ...]) -> TenantOverview:
    return TenantOverview(
        tenant_id=row.tenant_id,
        connector_id=row.connector_id,
        status=row.status,
        status_detail=row.status_detail,
        instance_url=row.instance_url,
        org_id=row.org_id,
        connected_at=row.connected_at,
        updated_at=row.updated_at,
        syncs=syncs,
    )


def list_overviews(conn: sa.Connection, tenant_ids: list[str] | None) -> list[TenantOverview]:
    """Every tenant in `tenant_ids` (all when None), those never connected included."""
    rows = {row.tenant_id: row for row in list_connectors(conn, tenant_ids)}
    wanted = sorted(rows) if tenant_ids is None else list(tenant_ids)
    syncs = _syncs_by_tenant(conn, wanted)
    return [
        _overview(rows[t], syncs.get(t, ()))
        if t in rows
        else TenantOverview(t, syncs=syncs.get(t, ()))
        for t in wanted
    ]


def tenant_overview(conn: sa.Connection, tenant_id: str) -> TenantOverview | None:
    """One tenant, or None when no connect attempt ever ran for it."""
    row = get_connector(conn, tenant_id)
    if row is None:
        return None
    return _overview(row, _syncs_by_tenant(conn, [tenant_id]).get(tenant_id, ()))
