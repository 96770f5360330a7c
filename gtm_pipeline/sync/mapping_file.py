"""Mapping files: parse, suggest, render, and check them against an org (`gtm-pipeline mapping`).

The mapping file is YAML: entity name (`accounts`, `persons` or `contacts`, `opportunities`: any
name `sync.entities.entity_for` knows) → list of `{target, source, transform, required}`. `set`
validates every entity of the file against the org's describe first and saves them all in one
transaction, or nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from gtm_pipeline.salesforce.metadata import DescribeClient, FieldInfo, describe_object
from gtm_pipeline.sync.entities import Entity, FieldMapping, entity_for
from gtm_pipeline.sync.mapping import (
    CUSTOM_FIELDS_PREFIX,
    MappingError,
    canonical_targets,
    related_describes,
    save_mappings,
    validate_mappings,
)

MAX_FILE_BYTES = 1_000_000
MAPPING_KEYS = frozenset({"target", "source", "transform", "required"})


def _mapping_from(entry: Any, where: str) -> FieldMapping:
    if not isinstance(entry, dict):
        raise MappingError(f"{where}: each mapping must be a mapping with target and source")
    unknown = set(map(str, entry)) - MAPPING_KEYS
    if unknown:
        raise MappingError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    if "target" not in entry or "source" not in entry:
        raise MappingError(f"{where}: target and source are required")
    required = entry.get("required", False)
    if not isinstance(required, bool):
        raise MappingError(f"{where}: required must be true or false")
    return FieldMapping(
        target=_text(entry, "target", where),
        source=_text(entry, "source", where),
        transform=_text(entry, "transform", where, default="none"),
        required=required,
    )


def _text(entry: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str):
        raise MappingError(f"{where}: {key} must be text")
    return value


def parse_mapping_file(text: str) -> dict[str, list[FieldMapping]]:
    """Entity name → its mappings, from the YAML text of a mapping file."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"the mapping file is not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not document:
        raise MappingError("the mapping file must map entity names to lists of mappings")
    parsed: dict[str, list[FieldMapping]] = {}
    for name, entries in document.items():
        ent = entity_for(str(name))
        if not isinstance(entries, list):
            raise MappingError(f"{ent.name}: expected a list of mappings")
        parsed[ent.name] = [
            _mapping_from(entry, f"{ent.name} mapping {i + 1}") for i, entry in enumerate(entries)
        ]
    return parsed


def validate_against_org(
    client: DescribeClient, tenant_id: str, entity_name: str, mappings: list[FieldMapping]
) -> list[str]:
    """Warnings for `mappings`; raises MappingError for anything the org does not have."""
    ent = entity_for(entity_name)
    fields = describe_object(client, ent.sf_object)
    related = related_describes(client, fields, mappings)
    return validate_mappings(ent, mappings, fields, tenant_id=tenant_id, related=related)


def set_mappings_from_file(
    engine: sa.Engine, client: DescribeClient, tenant_id: str, text: str
) -> dict[str, list[str]]:
    """Validate every entity of the file against describe, then save all of them or none."""
    parsed = parse_mapping_file(text)
    warnings = {
        name: validate_against_org(client, tenant_id, name, mappings)
        for name, mappings in parsed.items()
    }
    with engine.begin() as conn:
        for name, mappings in parsed.items():
            save_mappings(conn, tenant_id, name, mappings)
    return warnings


def _key(name: str) -> str:
    """`Annual_Contract_Value__c` → `annual_contract_value`."""
    return re.sub(r"_+", "_", name.removesuffix("__c")).strip("_").lower()


def _squashed(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def suggest_mappings(ent: Entity, fields: list[FieldInfo]) -> list[FieldMapping]:
    """A mapping for each custom field: the canonical column its name or label matches, else
    a `custom_fields` key named after it."""
    targets = {_squashed(t): t for t in canonical_targets(ent) if t != "external_id"}
    suggested = []
    for f in fields:
        if not f.custom or f.is_compound:  # a custom geolocation: its parts are suggested
            continue
        match = targets.get(_squashed(_key(f.name))) or targets.get(_squashed(f.label))
        target = match or f"{CUSTOM_FIELDS_PREFIX}{_key(f.name)}"
        suggested.append(FieldMapping(target=target, source=f.name))
    return suggested


def render_yaml(by_entity: Mapping[str, list[FieldMapping]]) -> str:
    document = {
        name: [
            {
                "target": m.target,
                "source": m.source,
                "transform": m.transform,
                "required": m.required,
            }  # fmt: skip
            for m in mappings
        ]
        for name, mappings in by_entity.items()
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def show_table(rows: list[tuple[str, FieldMapping, str]]) -> str:
    header = ("entity", "target", "source", "transform", "required", "origin")
    cells = [header] + [
        (name, m.target, m.source, m.transform, "yes" if m.required else "no", origin)
        for name, m, origin in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)  # fmt: skip


def read_mapping_file(path: str) -> str:
    """The text of a mapping file, refusing one larger than MAX_FILE_BYTES."""
    file = Path(path)
    if file.stat().st_size > MAX_FILE_BYTES:
        raise MappingError(f"{path}: a mapping file larger than {MAX_FILE_BYTES} bytes")
    return file.read_text(encoding="utf-8")
