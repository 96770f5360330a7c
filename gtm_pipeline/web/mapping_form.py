"""The mapping page's form, without HTTP: rows to show, and the submitted form back to mappings.

A tenant's stored mapping holds only its overrides: `effective_mappings` lays them over the
entity's defaults. So a row left as its default is not stored (a later change of the default
reaches the tenant), and a column with a default cannot be left unmapped, since the default
would silently come back; the page does not offer that and the form refuses it. Columns without
a default and `custom_fields.<key>` entries can be unmapped, which removes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.metadata import FieldInfo
from gtm_pipeline.sync.entities import Entity, FieldMapping
from gtm_pipeline.sync.mapping import CUSTOM_FIELDS_PREFIX, canonical_targets

KEY_TARGET = "external_id"
CSRF_FIELD = "csrf_token"
SOURCE, TRANSFORM, REQUIRED = "source.", "transform.", "required."
NEW_KEY, NEW_SOURCE, NEW_TRANSFORM = "new_key", "new_source", "new_transform"
MAX_VALUE_CHARS = 255  # the store's source_path / target_field columns
NO_TRANSFORM = "none"


class MappingFormError(GtmError, ValueError):
    """The submitted form is not a mapping this page could have produced; safe to show."""

    retryable = False


@dataclass(frozen=True)
class MappingRow:
    """One line of the form: a target and what fills it ("" = nothing)."""

    target: str
    source: str
    transform: str = NO_TRANSFORM
    required: bool = False
    default: FieldMapping | None = None

    @property
    def custom_key(self) -> str | None:
        if not self.target.startswith(CUSTOM_FIELDS_PREFIX):
            return None
        return self.target.removeprefix(CUSTOM_FIELDS_PREFIX)

    @property
    def fixed(self) -> bool:
        """The record key: always `Id`, shown but not editable."""
        return self.target == KEY_TARGET

    @property
    def may_be_unmapped(self) -> bool:
        return self.default is None

    def as_mapping(self) -> FieldMapping:
        return FieldMapping(self.target, self.source, self.transform, self.required)


@dataclass(frozen=True)
class MappingPage:
    """Everything the template shows besides the operator and the CSRF token."""

    tenant_id: str
    entity: Entity
    rows: list[MappingRow]
    fields: list[FieldInfo]
    transforms: list[str]
    new_row: MappingRow = field(default_factory=lambda: MappingRow("", ""))

    @property
    def standard_fields(self) -> list[FieldInfo]:
        return [f for f in self.fields if not f.custom]

    @property
    def custom_fields(self) -> list[FieldInfo]:
        return [f for f in self.fields if f.custom]

    @property
    def field_names(self) -> set[str]:
        return {f.name for f in self.fields}


def _defaults(entity: Entity) -> dict[str, FieldMapping]:
    return {m.target: m for m in entity.mappings}


def rows_for(entity: Entity, mappings: Sequence[FieldMapping]) -> list[MappingRow]:
    """Rows of an effective mapping: defaulted columns in the entity's order, the other
    canonical columns, then custom fields by key and anything else in mapping order."""
    defaults = _defaults(entity)
    by_target = {m.target: m for m in mappings}
    canonical = [*defaults, *(t for t in canonical_targets(entity) if t not in defaults)]
    custom = sorted(t for t in by_target if t.startswith(CUSTOM_FIELDS_PREFIX))
    rest = [t for t in by_target if t not in canonical and t not in custom]
    rows = []
    for target in [*canonical, *custom, *rest]:
        chosen = by_target.get(target)
        default = defaults.get(target)
        if chosen is None:
            rows.append(MappingRow(target, "", default=default))
        else:
            transform = chosen.transform or NO_TRANSFORM
            rows.append(MappingRow(target, chosen.source, transform, chosen.required, default))
    return rows


def form_text(name: str, value: object, error: type[ValueError]) -> str:
    """A submitted field as stripped text of at most MAX_VALUE_CHARS; `error` otherwise."""
    if not isinstance(value, str):
        raise error(f"the field {name!r} must be text")
    value = value.strip()
    if len(value) > MAX_VALUE_CHARS:
        raise error(f"a value is longer than {MAX_VALUE_CHARS} characters")
    return value


def _text(form: dict[str, object], name: str) -> str:
    return form_text(name, form.get(name, ""), MappingFormError)


def _submitted_targets(items: Sequence[tuple[str, object]]) -> list[str]:
    """Targets named by the form's source fields, in form order; refuses inputs it never shows."""
    singles = {CSRF_FIELD, NEW_KEY, NEW_SOURCE, NEW_TRANSFORM}
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise MappingFormError("the form carried a field twice")
    targets: list[str] = []
    companions: set[str] = set()
    for name in names:
        if name in singles:
            continue
        prefix = next((p for p in (SOURCE, TRANSFORM, REQUIRED) if name.startswith(p)), None)
        if prefix is None or len(name) > len(prefix) + MAX_VALUE_CHARS:
            raise MappingFormError("the form carried a field this page does not have")
        if prefix == SOURCE:
            targets.append(name.removeprefix(prefix))
        else:
            companions.add(name.removeprefix(prefix))
    if not companions <= set(targets):
        raise MappingFormError("the form set a transform or flag for a column it did not send")
    return targets


def parse_form(
    entity: Entity, items: Iterable[tuple[str, object]]
) -> tuple[list[MappingRow], MappingRow]:
    """The rows as submitted (shown again on an error), and the "add a custom field" row."""
    listed = list(items)
    form = dict(listed)
    defaults = _defaults(entity)
    rows = [
        MappingRow(
            target=target,
            source=_text(form, SOURCE + target),
            transform=_text(form, TRANSFORM + target) or NO_TRANSFORM,
            required=bool(_text(form, REQUIRED + target)),
            default=defaults.get(target),
        )
        for target in _submitted_targets(listed)
    ]
    key = _text(form, NEW_KEY)
    new_row = MappingRow(
        target=f"{CUSTOM_FIELDS_PREFIX}{key}" if key else "",
        source=_text(form, NEW_SOURCE),
        transform=_text(form, NEW_TRANSFORM) or NO_TRANSFORM,
    )
    if bool(key) != bool(new_row.source):
        raise MappingFormError(
            "to add a custom field, give it both a key and the Salesforce field that fills it"
        )
    return rows, new_row


def overrides(rows: Sequence[MappingRow], new_row: MappingRow) -> list[FieldMapping]:
    """What to store: every mapped row that differs from its default, in form order.

    An added custom field that reuses an existing key comes last, so it wins (the mapping's
    rule: the last mapping for a target wins) and the save reports the duplicate.
    """
    chosen = []
    for row in [*rows, new_row]:
        if not row.source:
            if row.default is not None:
                raise MappingFormError(
                    f"{row.target} cannot be left unmapped: without a choice its default "
                    f"({row.default.source}) applies, so pick that or another field"
                )
            continue
        mapping = row.as_mapping()
        if mapping != row.default:
            chosen.append(mapping)
    return chosen
