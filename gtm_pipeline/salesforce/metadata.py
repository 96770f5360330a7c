"""Metadata discovery: what fields an org really has on an object, from its describe document.

Mappings are checked against this before any name reaches SOQL, and the mapping page offers its
fields to pick from. Describe documents rarely change and cost an API call each, so they are
cached per process, keyed by (instance URL, object), for a TTL (15 minutes by default);
`refresh=True` or `clear_describe_cache()` forces a new read, for example after an admin adds a
custom field.

Compound fields of type `address` or `location` are left out: they cannot be written, and their
components (`MailingCity`, ...) are listed on their own with `compound_parent` naming the compound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

DEFAULT_TTL_SECONDS = 15 * 60
COMPOUND_TYPES = frozenset({"address", "location"})


class DescribeClient(Protocol):
    """What discovery needs from a client (the real `SalesforceClient` satisfies it)."""

    @property
    def instance_url(self) -> str: ...

    def describe(self, sobject: str) -> dict[str, Any]: ...


class MetadataError(ValueError):
    """A describe document that cannot be read as a list of fields."""


@dataclass(frozen=True)
class FieldInfo:
    """One field of an sObject as discovery reports it."""

    name: str
    label: str
    type: str
    updateable: bool
    custom: bool
    compound_parent: str | None
    length: int
    nillable: bool
    relationship_name: str | None = None
    """For a reference field, the name used in dot paths (`AccountId` → `Account`)."""
    reference_to: tuple[str, ...] = ()
    """For a reference field, the sObjects it can point to."""


@dataclass(frozen=True)
class _Entry:
    fields: tuple[FieldInfo, ...]
    read_at: float


_cache: dict[tuple[str, str], _Entry] = {}
_lock = threading.Lock()
clock: Callable[[], float] = time.monotonic
"""The cache's time source; tests replace it to expire entries without waiting."""


def clear_describe_cache() -> None:
    """Forget every cached describe (all orgs, all objects)."""
    with _lock:
        _cache.clear()


def _field_info(raw: dict[str, Any]) -> FieldInfo:
    try:
        reference_to = raw.get("referenceTo") or ()
        return FieldInfo(
            name=str(raw["name"]),
            label=str(raw.get("label") or raw["name"]),
            type=str(raw["type"]),
            updateable=bool(raw.get("updateable", False)),
            custom=bool(raw.get("custom", False)),
            compound_parent=raw.get("compoundFieldName") or None,
            length=int(raw.get("length") or 0),
            nillable=bool(raw.get("nillable", True)),
            relationship_name=raw.get("relationshipName") or None,
            reference_to=tuple(str(r) for r in reference_to),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MetadataError(f"describe returned a field without name or type: {exc}") from None


def parse_describe(document: dict[str, Any]) -> list[FieldInfo]:
    """Fields of a describe document: compounds left out, standard then custom, by label."""
    fields = document.get("fields") if isinstance(document, dict) else None
    if not isinstance(fields, list):
        raise MetadataError("the describe document has no field list")
    infos = [_field_info(f) for f in fields if isinstance(f, dict)]
    kept = [f for f in infos if f.type not in COMPOUND_TYPES]
    return sorted(kept, key=lambda f: (f.custom, f.label.casefold(), f.name))


def describe_object(
    client: DescribeClient,
    name: str,
    *,
    refresh: bool = False,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
) -> list[FieldInfo]:
    """Every field of `name` in the client's org, from the cache while it is fresh."""
    key = (client.instance_url, name.lower())
    now = clock()
    with _lock:
        entry = _cache.get(key)
    if entry is not None and not refresh and now - entry.read_at < ttl_seconds:
        return list(entry.fields)
    fields = tuple(parse_describe(client.describe(name)))
    with _lock:
        _cache[key] = _Entry(fields, clock())
    return list(fields)


def get_writeable_fields(
    client: DescribeClient, name: str, *, refresh: bool = False
) -> list[FieldInfo]:
    """Fields the integration user may update (writeback targets), in describe_object order."""
    return [f for f in describe_object(client, name, refresh=refresh) if f.updateable]


def compound_parents(fields: list[FieldInfo]) -> dict[str, list[FieldInfo]]:
    """Compound field name (`MailingAddress`, `Name`) → its component fields."""
    parents: dict[str, list[FieldInfo]] = {}
    for f in fields:
        if f.compound_parent:
            parents.setdefault(f.compound_parent, []).append(f)
    return parents
