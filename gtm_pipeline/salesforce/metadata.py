"""Metadata discovery: what fields an org really has on an object, from its describe document.

Mappings are checked against this before any name reaches SOQL, the mapping page offers its
fields to pick from, and the writeback rule (`writeback/mapping.py`) decides from it which fields
a score may overwrite. Every field attribute those decisions need is read from the describe's
`fields[]`: type, length, precision, scale, custom, updateable, calculated (formula), autoNumber,
unique, externalId and compoundFieldName.

Compound fields are recognised by what the describe says, never by their names: the compound
itself has type `address` or `location` (Contact `MailingAddress`, Lead `Address`, a custom
geolocation `Loc__c`) and is listed like any other field, so a caller can tell an address from a
plain field; its components (`MailingCity`, `MailingLatitude`, `Loc__Latitude__s`) and the parts
of a person's `Name` (`FirstName`, `LastName`) carry the compound's name in `compound_parent`.

Describe documents rarely change and cost an API call each, so they are cached per process for a
TTL (15 minutes by default), keyed by (org id, object): two orgs reached through one instance URL
(a sandbox refreshed in place, a My Domain moved between orgs) never share an entry. A client
that cannot name its org gets no caching at all rather than a guess. `refresh=True` or
`clear_describe_cache()` forces a new read, for example after an admin adds a custom field.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gtm_pipeline.errors import GtmError

DEFAULT_TTL_SECONDS = 15 * 60
COMPOUND_TYPES = frozenset({"address", "location"})
ORG_ID_KEY_LENGTH = 15
"""Org ids are compared on their 15-character case-sensitive form (the 18-character form only
adds a checksum suffix), so the two spellings of one org share a cache entry."""


class DescribeClient(Protocol):
    """What discovery needs from a client (the real `SalesforceClient` satisfies it)."""

    @property
    def org_id(self) -> str | None: ...

    def describe(self, sobject: str) -> dict[str, Any]: ...


class MetadataError(GtmError, ValueError):
    """A describe document that cannot be read as a list of fields."""


@dataclass(frozen=True)
class FieldInfo:
    """One field of an sObject as its describe reports it."""

    name: str
    label: str
    type: str
    updateable: bool
    custom: bool
    compound_parent: str | None
    """The describe's `compoundFieldName`: the compound this field is a part of, or None."""
    length: int
    nillable: bool
    relationship_name: str | None = None
    """For a reference field, the name used in dot paths (`AccountId` → `Account`)."""
    reference_to: tuple[str, ...] = ()
    """For a reference field, the sObjects it can point to."""
    precision: int = 0
    """Digits a number field holds in all (0 for non-numbers and for `int`, which has digits)."""
    scale: int = 0
    """Digits after the decimal point: Salesforce rounds what is sent to this many places."""
    calculated: bool = False
    """A formula field: read-only, its value computed by Salesforce."""
    auto_number: bool = False
    unique: bool = False
    external_id: bool = False

    @property
    def is_compound(self) -> bool:
        """An `address` or `location` compound: read-only, written through its components."""
        return self.type in COMPOUND_TYPES


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


def _count(raw: dict[str, Any], key: str) -> int:
    return int(raw.get(key) or 0)


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
            length=_count(raw, "length"),
            nillable=bool(raw.get("nillable", True)),
            relationship_name=raw.get("relationshipName") or None,
            reference_to=tuple(str(r) for r in reference_to),
            precision=_count(raw, "precision"),
            scale=_count(raw, "scale"),
            calculated=bool(raw.get("calculated", False)),
            auto_number=bool(raw.get("autoNumber", False)),
            unique=bool(raw.get("unique", False)),
            external_id=bool(raw.get("externalId", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MetadataError(f"describe returned a field without name or type: {exc}") from None


def parse_describe(document: dict[str, Any]) -> list[FieldInfo]:
    """Every field of a describe document, compounds included: standard then custom, by label."""
    fields = document.get("fields") if isinstance(document, dict) else None
    if not isinstance(fields, list):
        raise MetadataError("the describe document has no field list")
    infos = [_field_info(f) for f in fields if isinstance(f, dict)]
    return sorted(infos, key=lambda f: (f.custom, f.label.casefold(), f.name))


def _cache_key(client: DescribeClient, name: str) -> tuple[str, str] | None:
    """(org, object), or None when the client cannot say which org it talks to."""
    org_id = getattr(client, "org_id", None)
    if not isinstance(org_id, str) or not org_id:
        return None
    return org_id[:ORG_ID_KEY_LENGTH], name.lower()


def describe_object(
    client: DescribeClient,
    name: str,
    *,
    refresh: bool = False,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
) -> list[FieldInfo]:
    """Every field of `name` in the client's org, from the cache while it is fresh."""
    key = _cache_key(client, name)
    if key is None:
        return parse_describe(client.describe(name))
    now = clock()
    with _lock:
        entry = _cache.get(key)
    if entry is not None and not refresh and now - entry.read_at < ttl_seconds:
        return list(entry.fields)
    fields = tuple(parse_describe(client.describe(name)))
    with _lock:
        _cache[key] = _Entry(fields, clock())
    return list(fields)


def field_named(fields: list[FieldInfo], name: str) -> FieldInfo | None:
    """The field called `name`, matched case-insensitively as Salesforce matches field names."""
    lowered = name.lower()
    return next((f for f in fields if f.name.lower() == lowered), None)
