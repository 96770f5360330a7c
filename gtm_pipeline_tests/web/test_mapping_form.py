"""The mapping form without HTTP: which rows the page shows, and what a submitted form stores."""

from __future__ import annotations

import pytest

from gtm_pipeline.sync.entities import ACCOUNTS, PERSONS, FieldMapping
from gtm_pipeline.sync.mapping import canonical_targets
from gtm_pipeline.web.mapping_form import MappingFormError, overrides, parse_form, rows_for


def test_rows_follow_the_defaults_then_other_columns_then_custom_fields():
    stored = [
        *ACCOUNTS.mappings,
        FieldMapping("custom_fields.zone", "Region__c"),
        FieldMapping("custom_fields.alpha", "Notes__c", "trim"),
    ]
    rows = rows_for(ACCOUNTS, stored)
    targets = [r.target for r in rows]
    defaults = [m.target for m in ACCOUNTS.mappings]
    others = [t for t in canonical_targets(ACCOUNTS) if t not in defaults]
    assert targets == [*defaults, *others, "custom_fields.alpha", "custom_fields.zone"]
    assert "domain" in others  # a canonical column with no default: offered, unmapped
    by_target = {r.target: r for r in rows}
    assert by_target["domain"].source == "" and by_target["domain"].may_be_unmapped
    assert not by_target["name"].may_be_unmapped
    assert by_target["custom_fields.alpha"].custom_key == "alpha"
    assert by_target["external_id"].fixed


def _form(**extra: str) -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = [("csrf_token", "t")]
    for m in PERSONS.mappings[1:]:
        items += [(f"source.{m.target}", m.source), (f"transform.{m.target}", m.transform)]
    return [(k, v) for k, v in items if k not in extra] + list(extra.items())


def test_an_unchanged_form_stores_nothing_and_changes_are_stored_in_form_order():
    assert overrides(*parse_form(PERSONS, _form())) == []
    changed = _form(**{"transform.title": "uppercase", "new_key": "r", "new_source": "Region__c"})
    assert overrides(*parse_form(PERSONS, changed)) == [
        FieldMapping("title", "Title", "uppercase"),
        FieldMapping("custom_fields.r", "Region__c"),
    ]


def test_an_added_custom_field_reusing_a_key_comes_last_so_it_wins():
    items = [
        *_form(),
        ("source.custom_fields.r", "Region__c"),
        ("new_key", "r"),
        ("new_source", "Notes__c"),
    ]
    assert [m.source for m in overrides(*parse_form(PERSONS, items))] == ["Region__c", "Notes__c"]


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        pytest.param([*_form(), ("source.title", "Title")], "twice", id="repeated-field"),
        pytest.param([*_form(), ("sf_object", "User")], "does not have", id="unknown-field"),
        pytest.param([*_form(), ("transform.domain", "trim")], "did not send", id="orphan"),
        pytest.param(_form(**{"source.title": "x" * 256}), "longer than", id="too-long"),
        pytest.param(_form(new_key="r"), "both a key", id="key-without-field"),
        pytest.param(_form(new_source="Region__c"), "both a key", id="field-without-key"),
        pytest.param(_form(**{"source.email": ""}), "email cannot be left", id="unmapped-default"),
    ],
)
def test_forms_the_page_cannot_produce_are_refused(items, reason):
    with pytest.raises(MappingFormError, match=reason):
        overrides(*parse_form(PERSONS, items))
