"""Field mapping: which Salesforce field fills which canonical column, for one tenant and entity.

This module is the one place a mapping is checked and applied; `transform.to_canonical` calls
`apply_field_mappings`. The rules:

- **Sources** are Salesforce field paths: plain identifiers joined by dots (`Account.Industry`
  follows the `Account` relationship; a null parent gives null). Any other text is refused, so
  nothing in a mapping can change the SOQL it is put into. `validate_mappings` also checks every
  source against the org's describe before the sync ever queries it.
- **Targets** are the entity's canonical columns (`first_name`, `industry`, ...) or
  `custom_fields.<key>`, a key of the record's `custom_fields` JSON. `external_id` always comes
  from `Id`.
- **Compound fields.** A person's `first_name` or `last_name` mapped from the compound `Name`
  takes its part of the split full name (last word → last name, the words before it → first
  name; one word is a last name only), for orgs whose FirstName/LastName are not what they map.
  An address compound (`MailingAddress`, `BillingAddress`, a Lead's `Address`: a field of
  describe type `address`, see `is_address_compound`) mapped to target `P` fills
  `P_street`, `P_city`, `P_state`, `P_postal_code` and `P_country` from the flattened
  `MailingAddress.city`-style columns (for example `P = custom_fields.mailing`).
- **Transforms**: `none`, `trim`, `lowercase`, `uppercase` and `custom:<name>` for a vectorized
  Series→Series function registered with `register_transform`. Text columns are trimmed (blanks
  become missing) before the transform; numeric and date columns and custom-field values keep
  their raw values under `none` so the coercion gate can report what does not parse.
- **Required**: a required source that is absent from the data raises `MappingError` naming the
  tenant, the entity and the field.
- **Duplicate targets**: when two mappings fill the same target, **the last mapping for a target
  wins**; every duplicate is reported as a warning (run logs and materialization metadata).
  Stored mappings replace the default of the same target in place (that is an override, not a
  duplicate) and new targets follow the defaults in the order given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.metadata import DescribeClient, FieldInfo, describe_object
from gtm_pipeline.store.mappings import load_mapping_rows, replace_mapping_rows
from gtm_pipeline.store.tables import entity_rows
from gtm_pipeline.sync.entities import SYNC_ORDER, Entity, FieldMapping
from gtm_pipeline.sync.entities import entity as entity_named
from gtm_pipeline.sync.soql import SoqlBuildError, check_identifier, check_path
from gtm_pipeline.sync.text import clean_text

Transform = Callable[[pd.Series], pd.Series]

BUILTIN_TRANSFORMS: dict[str, Transform] = {
    "none": lambda s: s,
    "trim": lambda s: s.str.strip(),
    "lowercase": lambda s: s.str.lower(),
    "uppercase": lambda s: s.str.upper(),
}
CUSTOM_TRANSFORM_PREFIX = "custom:"
CUSTOM_FIELDS_PREFIX = "custom_fields."
DIRECTIONS = ("sync", "writeback")
ADDRESS_PARTS = (
    ("street", "street"),
    ("city", "city"),
    ("state", "state"),
    ("postalCode", "postal_code"),
    ("country", "country"),
)
NAME_PARTS = ("first_name", "last_name")
_NOT_CANONICAL = {"tenant_id", "system_modstamp", "is_deleted", "deleted_at", "custom_fields"}
_NOT_CANONICAL |= {"synced_at", "deleted_reason", "duplicate_of"}
# The full name's last word is the last name; everything before it the first name.
_FULL_NAME = re.compile(r"(?s)^(?:(?P<first_name>.*\S)\s+)?(?P<last_name>\S+)$")

_custom_transforms: dict[str, Transform] = {}


class MappingError(GtmError, ValueError):
    """A mapping that cannot be saved or applied; the message says which field and why."""

    retryable = False


# --- transforms -----------------------------------------------------------------------------


def register_transform(name: str, fn: Transform) -> None:
    """Make `custom:<name>` available to mappings (a deployment's own vectorized function)."""
    try:
        check_identifier(name)
    except SoqlBuildError:
        raise MappingError(f"a transform name must be a plain identifier, not {name!r}") from None
    if not callable(fn):
        raise MappingError(f"transform {name!r} must be a callable taking and returning a Series")
    _custom_transforms[name] = fn


def unregister_transform(name: str) -> None:
    """Remove a custom transform (deployments reloading their registry, tests)."""
    _custom_transforms.pop(name, None)


def transform_names() -> list[str]:
    """Every transform a mapping may name: the built-ins, then `custom:<name>` alphabetically."""
    custom = [f"{CUSTOM_TRANSFORM_PREFIX}{n}" for n in sorted(_custom_transforms)]
    return [*BUILTIN_TRANSFORMS, *custom]


def _transform_function(name: str) -> Transform | None:
    if name in BUILTIN_TRANSFORMS:
        return BUILTIN_TRANSFORMS[name]
    if name.startswith(CUSTOM_TRANSFORM_PREFIX):
        return _custom_transforms.get(name.removeprefix(CUSTOM_TRANSFORM_PREFIX))
    return None


# --- checks that need no describe --------------------------------------------------------------


def _entity(entity: Entity | str) -> Entity:
    if isinstance(entity, Entity):
        return entity
    try:
        return entity_named(entity)
    except ValueError as exc:
        raise MappingError(str(exc)) from None


def canonical_targets(entity: Entity | str) -> list[str]:
    """The canonical columns a mapping may fill (besides `custom_fields.<key>`): not those fixed
    rules fill, the entity's own or, in a shared table, another entity's that this one's default
    mapping leaves alone (a Contact may not fill a Lead's `is_converted`)."""
    ent = _entity(entity)
    rows = entity_rows(ent.name)
    not_mapped = _NOT_CANONICAL | set(rows.owner_values) | _fixed_columns(ent, rows.table)
    return [c.name for c in rows.table.columns if c.name not in not_mapped]


def _fixed_columns(ent: Entity, table: sa.Table) -> set[str]:
    defaults = {m.target for m in ent.mappings}
    sharing = [e for e in SYNC_ORDER if entity_rows(e.name).table is table]
    others = {d.target for e in sharing if e is not ent for d in e.derived} - defaults
    return {d.target for d in ent.derived} | others


def _where(entity: Entity, tenant_id: str | None) -> str:
    tenant = f"tenant {tenant_id!r}, " if tenant_id else ""
    return f"{tenant}{entity.display_name}"


def _show(value: object) -> str:
    return repr(str(value)[:80])


def is_address_compound(source: str, fields: Sequence[FieldInfo] | None = None) -> bool:
    """Whether `source` is an address compound (`MailingAddress`, a Lead's `Address`).

    With the object's describe at hand (`fields`), the describe decides: a field of type
    `address`. Without one (applying a mapping to a page of records, checking a mapping's
    targets) the fallback is the name: a plain name ending in `Address`. The two cannot
    disagree on a mapping a sync uses, because `validate_mappings` refuses a source whose
    describe type contradicts its name (a custom address field not named `...Address`, an
    email field such as `FromAddress`), and every stored mapping is validated before use.
    """
    if "." in source:
        return False
    if fields is not None:
        field = _by_name(fields).get(source.lower())
        return field is not None and field.type == "address"
    return source.lower().endswith("address")


def _compound_mismatch(where: str, source: str, fields: Sequence[FieldInfo]) -> str | None:
    """Why the describe and the name fallback disagree about `source`, or None if they agree."""
    by_describe = is_address_compound(source, fields)
    if by_describe == is_address_compound(source):
        return None
    if by_describe:
        return (
            f"{where}: {source!r} is an address compound field whose name does not end in "
            "'Address', so its parts cannot be told apart in the data; map its components "
            "(street, city, ...) one by one instead"
        )
    return f"{where}: {source!r} is not an address compound field"


def is_name_split(mapping: FieldMapping) -> bool:
    return mapping.source.lower() == "name" and mapping.target in NAME_PARTS


def _check_one(mapping: object, where: str, targets: set[str]) -> FieldMapping:
    if not isinstance(mapping, FieldMapping):
        raise MappingError(
            f"{where}: a mapping must be a FieldMapping, not {type(mapping).__name__}"
        )
    for attr in ("target", "source", "transform"):
        if not isinstance(getattr(mapping, attr), str):
            raise MappingError(
                f"{where}: mapping {attr} must be text, got {getattr(mapping, attr)!r}"
            )
    try:
        check_path(mapping.source)
    except SoqlBuildError:
        raise MappingError(
            f"{where}: source {_show(mapping.source)} for {_show(mapping.target)} is not a "
            "Salesforce field path (identifiers joined by dots, like Account.Industry)"
        ) from None
    if _transform_function(mapping.transform) is None:
        raise MappingError(
            f"{where}: unknown transform {_show(mapping.transform)} for {_show(mapping.target)}; "
            f"expected one of {', '.join(transform_names())}"
        )
    for target in _targets_of(mapping):
        _check_target(target, where, targets)
    if mapping.target == "external_id" and mapping.source != "Id":
        raise MappingError(
            f"{where}: external_id always comes from Id, not {_show(mapping.source)}"
        )
    return mapping


def _check_target(target: str, where: str, targets: set[str]) -> None:
    if target in targets:
        return
    if target.startswith(CUSTOM_FIELDS_PREFIX):
        try:
            check_identifier(target.removeprefix(CUSTOM_FIELDS_PREFIX))
            return
        except SoqlBuildError:
            pass
    raise MappingError(
        f"{where}: unknown target {_show(target)}; expected one of {', '.join(sorted(targets))} "
        "or custom_fields.<key> (a plain identifier)"
    )


def _targets_of(mapping: FieldMapping) -> list[str]:
    if is_address_compound(mapping.source):
        return [f"{mapping.target}_{suffix}" for _, suffix in ADDRESS_PARTS]
    return [mapping.target]


def check_mappings(
    entity: Entity | str, mappings: Sequence[FieldMapping], *, tenant_id: str | None = None
) -> list[str]:
    """Syntax, targets and transforms of every mapping (no describe); duplicate-target warnings."""
    ent = _entity(entity)
    where = _where(ent, tenant_id)
    if isinstance(mappings, str | bytes) or not isinstance(mappings, Iterable):
        raise MappingError(f"{where}: mappings must be a list of FieldMapping")
    targets = set(canonical_targets(ent))
    sources: dict[str, list[str]] = {}
    for mapping in mappings:
        _check_one(mapping, where, targets)
        for target in _targets_of(mapping):
            sources.setdefault(target, []).append(mapping.source)
    return [
        f"{where}: target {target!r} is mapped from {', '.join(map(repr, froms))}; "
        f"the last one ({froms[-1]!r}) wins"
        for target, froms in sources.items()
        if len(froms) > 1
    ]


# --- checks against describe -------------------------------------------------------------------


def _by_name(fields: Sequence[FieldInfo]) -> dict[str, FieldInfo]:
    return {f.name.lower(): f for f in fields}


def _relationship(fields: Sequence[FieldInfo], name: str) -> FieldInfo | None:
    lowered = name.lower()
    return next(
        (f for f in fields if f.relationship_name and f.relationship_name.lower() == lowered),
        None,
    )


def _path_error(
    path: str, fields: Sequence[FieldInfo], related: dict[str, list[FieldInfo]]
) -> str | None:
    """Why `path` does not exist in describe, or None when it does (as far as is described)."""
    *hops, last = path.split(".")
    current: Sequence[FieldInfo] | None = fields
    for hop in hops:
        assert current is not None
        ref = _relationship(current, hop)
        if ref is None:
            return f"relationship {hop!r} does not exist"
        target = ref.reference_to[0] if ref.reference_to else None
        current = related.get(target) if target else None
        if current is None:
            return None  # the related object was not described; the relationship is real
    assert current is not None
    if last.lower() in _by_name(current):
        return None
    parents = {f.compound_parent.lower() for f in current if f.compound_parent}
    if last.lower() in parents:
        return None
    return f"field {last!r} does not exist"


def validate_mappings(
    entity_name: Entity | str,
    mappings: Sequence[FieldMapping],
    fields: Sequence[FieldInfo],
    *,
    tenant_id: str | None,
    related: dict[str, list[FieldInfo]] | None = None,
) -> list[str]:
    """Every source checked against describe (`related`: describes of objects reached by dot
    paths, by sObject name); raises MappingError, returns duplicate-target warnings."""
    ent = _entity(entity_name)
    warnings = check_mappings(ent, mappings, tenant_id=tenant_id)
    where = _where(ent, tenant_id)
    for mapping in mappings:
        problem = _path_error(mapping.source, fields, related or {})
        if problem:
            raise MappingError(
                f"{where}: source {mapping.source!r} for {mapping.target!r}: {problem} in the "
                f"org's {ent.sf_object} describe (see `gtm-pipeline mapping suggest`)"
            )
        mismatch = _compound_mismatch(where, mapping.source, fields)
        if mismatch:
            raise MappingError(mismatch)
    return warnings


# --- applying -------------------------------------------------------------------------------


def source_column(raw: pd.DataFrame, source: str) -> pd.Series | None:
    """The raw column for a source path, matched case-insensitively as SOQL names are."""
    if source in raw.columns:
        return raw[source]
    lowered = {str(c).lower(): c for c in raw.columns}
    name = lowered.get(source.lower())
    return None if name is None else raw[name]


def _has_parent(raw: pd.DataFrame, path: str) -> bool:
    """A dot path whose relationship (or compound) column is present: its parents were null."""
    parts = path.split(".")
    return any(source_column(raw, ".".join(parts[:i])) is not None for i in range(1, len(parts)))


def _nulls(raw: pd.DataFrame) -> pd.Series:
    return pd.Series(pd.NA, index=raw.index, dtype="object")


def _source_values(raw: pd.DataFrame, mapping: FieldMapping, source: str, where: str) -> pd.Series:
    series = source_column(raw, source)
    if series is not None:
        return series
    if "." in source and _has_parent(raw, source):
        return _nulls(raw)
    if mapping.required:
        raise MappingError(
            f"{where}: required source field {mapping.source!r} (for {mapping.target!r}) is "
            "missing from the Salesforce data"
        )
    return _nulls(raw)


def _run_transform(mapping: FieldMapping, values: pd.Series, where: str) -> pd.Series:
    fn = _transform_function(mapping.transform)
    assert fn is not None  # checked before
    try:
        result = fn(values)
    except Exception as exc:  # a deployment's function failing on data is a mapping failure
        raise MappingError(
            f"{where}: transform {mapping.transform!r} failed on {mapping.target!r}: "
            f"{type(exc).__name__}"
        ) from exc
    if not isinstance(result, pd.Series) or len(result) != len(values):
        raise MappingError(
            f"{where}: transform {mapping.transform!r} must return a Series of the same length"
        )
    return result.set_axis(values.index)


def _expanded(
    ent: Entity, raw: pd.DataFrame, mapping: FieldMapping, where: str
) -> dict[str, pd.Series]:
    """Target → source values for one mapping, compounds expanded."""
    if is_address_compound(mapping.source):
        return {
            f"{mapping.target}_{suffix}": _source_values(
                raw, mapping, f"{mapping.source}.{key}", where
            )
            for key, suffix in ADDRESS_PARTS
        }
    values = _source_values(raw, mapping, mapping.source, where)
    if is_name_split(mapping):
        parts = clean_text(values).str.extract(_FULL_NAME)
        return {mapping.target: parts[mapping.target].astype("object")}
    return {mapping.target: values}


def _typed(ent: Entity, target: str) -> bool:
    return target in ent.integer_columns + ent.number_columns + ent.date_columns or (
        target.startswith(CUSTOM_FIELDS_PREFIX)
    )


def _finished(
    ent: Entity, mapping: FieldMapping, target: str, values: pd.Series, where: str
) -> pd.Series:
    """Text cleaned then transformed; typed and custom values kept raw under `none`."""
    if _typed(ent, target) and mapping.transform == "none":
        return values.astype("object").where(values.notna(), None)
    return _run_transform(mapping, clean_text(values), where)


def _custom_json(columns: dict[str, pd.Series], index: pd.Index) -> pd.Series:
    if not columns:
        return pd.Series([None] * len(index), index=index, dtype="object")
    frame = pd.DataFrame(columns, index=index).astype("object")
    frame = frame.where(frame.notna(), None)
    return pd.Series(frame.to_dict("records"), index=index, dtype="object")


def apply_field_mappings(
    entity: Entity | str,
    raw_df: pd.DataFrame,
    mappings: Sequence[FieldMapping],
    *,
    tenant_id: str | None,
) -> tuple[pd.DataFrame, list[str]]:
    """Mapped canonical columns plus `custom_fields` (dict or None) per row, and the warnings."""
    ent = _entity(entity)
    warnings = check_mappings(ent, mappings, tenant_id=tenant_id)
    if not isinstance(raw_df, pd.DataFrame):
        raise MappingError(f"{_where(ent, tenant_id)}: the data must be a DataFrame")
    where = _where(ent, tenant_id)
    chosen: dict[str, tuple[FieldMapping, pd.Series]] = {}
    for mapping in mappings:
        for target, values in _expanded(ent, raw_df, mapping, where).items():
            chosen.pop(target, None)  # the last mapping for a target wins
            chosen[target] = (mapping, values)
    columns: dict[str, pd.Series] = {}
    custom: dict[str, pd.Series] = {}
    for target, (mapping, values) in chosen.items():
        finished = _finished(ent, mapping, target, values, where)
        if target.startswith(CUSTOM_FIELDS_PREFIX):
            custom[target.removeprefix(CUSTOM_FIELDS_PREFIX)] = finished
        else:
            columns[target] = finished
    columns["custom_fields"] = _custom_json(custom, raw_df.index)
    return pd.DataFrame(columns, index=raw_df.index), warnings


def source_fields(mappings: Sequence[FieldMapping]) -> list[str]:
    """The Salesforce fields to select for `mappings`, each once (compounds by their name)."""
    seen: dict[str, str] = {}
    for mapping in mappings:
        seen.setdefault(mapping.source.lower(), mapping.source)
    return list(seen.values())


def selected_fields(entity: Entity, mappings: Sequence[FieldMapping]) -> list[str]:
    """Every Salesforce field a read of `entity` selects: the mapped ones, then those its
    derived columns read, each once."""
    seen = {f.lower(): f for f in source_fields(mappings)}
    for field in entity.derived_fields():
        seen.setdefault(field.lower(), field)
    return list(seen.values())


# --- the store -------------------------------------------------------------------------------


def _direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise MappingError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    return direction


def load_mappings(
    conn: sa.Connection, tenant_id: str, entity_name: str, direction: str = "sync"
) -> list[FieldMapping]:
    """The tenant's own stored mappings of an entity (not merged with the defaults)."""
    ent = _entity(entity_name)
    rows = load_mapping_rows(conn, tenant_id, ent.name, _direction(direction))
    return [
        FieldMapping(
            target=row["target_field"],
            source=row["source_path"],
            transform=row["transform"] or "none",
            required=bool(row["required"]),
        )
        for row in rows
    ]


def save_mappings(
    conn: sa.Connection,
    tenant_id: str,
    entity_name: str,
    mappings: Sequence[FieldMapping],
    direction: str = "sync",
) -> list[str]:
    """Replace the tenant's mappings of an entity (one per target, the last wins); returns the
    warnings. Checked first, so nothing is written when any mapping is refused."""
    ent = _entity(entity_name)
    warnings = check_mappings(ent, mappings, tenant_id=tenant_id)
    last: dict[str, FieldMapping] = {}
    for mapping in mappings:
        last.pop(mapping.target, None)
        last[mapping.target] = mapping
    rows = [
        {
            "target_field": m.target,
            "source_path": m.source,
            "transform": m.transform,
            "required": m.required,
            "sf_object": ent.sf_object,
        }
        for m in last.values()
    ]
    replace_mapping_rows(conn, tenant_id, ent.name, rows, _direction(direction))
    return warnings


def merge_mappings(
    defaults: Sequence[FieldMapping], overrides: Sequence[FieldMapping]
) -> list[FieldMapping]:
    """Defaults with each overridden target replaced in place, then the new targets in order."""
    by_target = {m.target: m for m in overrides}
    merged = [by_target.pop(m.target, m) for m in defaults]
    return merged + [m for m in overrides if by_target.get(m.target) is m]


def effective_mappings(
    conn: sa.Connection, tenant_id: str, entity_name: str, direction: str = "sync"
) -> list[FieldMapping]:
    """What a sync applies: the entity's defaults merged with the tenant's stored mappings."""
    ent = _entity(entity_name)
    defaults = ent.mappings if direction == "sync" else ()
    return merge_mappings(defaults, load_mappings(conn, tenant_id, ent.name, direction))


# --- one run's mappings -------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedMappings:
    mappings: tuple[FieldMapping, ...]
    warnings: tuple[str, ...]


def related_describes(
    client: DescribeClient, fields: Sequence[FieldInfo], mappings: Sequence[FieldMapping]
) -> dict[str, list[FieldInfo]]:
    """Describes of the objects that dot-path sources reach (cached like any describe)."""
    related: dict[str, list[FieldInfo]] = {}
    for mapping in mappings:
        current: Sequence[FieldInfo] = fields
        for hop in mapping.source.split(".")[:-1]:
            ref = _relationship(current, hop)
            if ref is None or not ref.reference_to:
                break
            name = ref.reference_to[0]
            try:
                check_identifier(name)  # describe output is input too: it becomes a URL path
            except SoqlBuildError:
                raise MappingError(
                    f"relationship {hop!r} of {mapping.source!r} points to {_show(name)}, "
                    "which is not a Salesforce object name"
                ) from None
            if name not in related:
                related[name] = describe_object(client, name)
            current = related[name]
    return related


def resolve_mappings(
    client: DescribeClient,
    conn: sa.Connection,
    tenant_id: str,
    entity: Entity,
    mappings: Sequence[FieldMapping] | None = None,
) -> ResolvedMappings:
    """The mappings a run applies (the tenant's effective ones unless given), validated.

    The defaults are trusted and need no describe; anything else is checked against the
    org's (cached) describe before its names can reach SOQL.
    """
    chosen = tuple(
        effective_mappings(conn, tenant_id, entity.name) if mappings is None else mappings
    )
    if chosen == entity.mappings:
        return ResolvedMappings(chosen, ())
    check_mappings(entity, chosen, tenant_id=tenant_id)  # names checked before any API call
    fields = describe_object(client, entity.sf_object)
    related = related_describes(client, fields, chosen)
    warnings = validate_mappings(entity, chosen, fields, tenant_id=tenant_id, related=related)
    return ResolvedMappings(chosen, tuple(warnings))
