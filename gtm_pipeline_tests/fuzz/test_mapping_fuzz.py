"""Properties of field mapping (sync/mapping.py).

- Whatever a mapping holds, `check_mappings` (the check every save and every run makes) lets it
  through only when each source is a plain Salesforce path, each custom key a plain identifier and
  each transform a known one, and then the SOQL built from those sources is read back by the
  emulator's parser as exactly those fields: nothing a mapping holds can change the query.
- Valid mappings applied to arbitrary records (any column names, any cases, any values: text,
  huge numbers, NaN, nested objects, bytes) never raise anything but MappingError for a missing
  required field, and keep one output row per input row.

Extends sync/test_mapping.py::test_apply_never_raises_anything_but_mapping_error, which draws
arbitrary mapping names over a fixed set of columns; here the records are arbitrary too.
"""

from __future__ import annotations

import re

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtm_pipeline.emulator.soql_syntax import KEYWORDS, parse
from gtm_pipeline.sync.entities import ACCOUNTS, OPPORTUNITIES, PERSONS, FieldMapping
from gtm_pipeline.sync.mapping import (
    CUSTOM_FIELDS_PREFIX,
    MappingError,
    apply_field_mappings,
    canonical_targets,
    check_mappings,
    source_fields,
    transform_names,
)
from gtm_pipeline.sync.prepare import gate_page
from gtm_pipeline.sync.soql import modified_query, select_fields
from gtm_pipeline_tests.fuzz.examples import ran
from gtm_pipeline_tests.fuzz.settings import fuzz
from gtm_pipeline_tests.modes import scaled

IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")
PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}(?:\.[A-Za-z][A-Za-z0-9_]{0,79}){0,4}")
ENTITIES = [ACCOUNTS, PERSONS, OPPORTUNITIES]

hostile = st.sampled_from(
    ["Title FROM User", "Title, (SELECT Id FROM User)", "x') OR 1=1", "Name--", "Name\n",
     "Ñame", "a" * 81, "", " Title", "Account..Name", "A.B.C.D.E.F", "Title\u200b", "1Name"]
)  # fmt: skip
plain = st.sampled_from(["Title", "Name", "Email", "Account.Industry", "Region__c",
                         "MailingAddress", "Id", "Notes__c", "From", "order"])  # fmt: skip
texts = st.one_of(hostile, plain, st.text(max_size=20))


@st.composite
def mapping_lists(draw) -> tuple:
    entity = draw(st.sampled_from(ENTITIES))
    targets = st.one_of(
        st.sampled_from(canonical_targets(entity)),
        texts.map(lambda key: CUSTOM_FIELDS_PREFIX + key),
        texts,
    )
    transforms = st.one_of(st.sampled_from(transform_names()), texts, texts.map("custom:".__add__))
    mappings = draw(
        st.lists(
            st.builds(FieldMapping, target=targets, source=texts, transform=transforms,
                      required=st.booleans()),
            max_size=6,
        )
    )  # fmt: skip
    return entity, mappings


@fuzz
@given(case=mapping_lists())
def test_accepted_mappings_hold_only_plain_names_and_cannot_change_the_query(case):
    ran("mapping: accepted names are plain")
    entity, mappings = case
    try:
        check_mappings(entity, mappings, tenant_id="t")
    except MappingError:
        return
    for mapping in mappings:
        assert PATH.fullmatch(mapping.source), mapping
        assert mapping.transform in transform_names(), mapping
        if mapping.target.startswith(CUSTOM_FIELDS_PREFIX):
            assert IDENTIFIER.fullmatch(mapping.target.removeprefix(CUSTOM_FIELDS_PREFIX))
        else:
            assert mapping.target in canonical_targets(entity) or mapping.source.lower().endswith(
                "address"
            )
    sources = source_fields(mappings)
    if any(part.upper() in KEYWORDS for s in sources for part in s.split(".")):
        return  # a reserved word is no field of any org: describe validation refuses it
    query = parse(modified_query(entity.sf_object, sources, None))
    assert query.sobject == entity.sf_object and query.where is None
    assert [p.text for p in query.select] == select_fields(sources)


column_names = st.one_of(
    plain,
    plain.map(str.upper),
    plain.map(str.lower),
    st.sampled_from(["MailingAddress.city", "MailingAddress.street", "Account.Name",
                     "SystemModstamp", "attributes.type"]),
    st.text(max_size=12),
)  # fmt: skip
# What a JSON answer can hold (Python's json also reads NaN and Infinity).
values = st.one_of(
    st.none(),
    st.text(max_size=60),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
    st.lists(st.integers(), max_size=3),
)


@st.composite
def records_and_mappings(draw) -> tuple:
    entity = draw(st.sampled_from(ENTITIES))
    extra = draw(
        st.lists(
            st.builds(
                FieldMapping,
                target=st.sampled_from(["custom_fields.a", "custom_fields.b", "custom_fields.a"]),
                source=plain.filter(lambda s: s.upper() not in KEYWORDS),
                transform=st.sampled_from(transform_names()),
                required=st.just(False),
            ),
            max_size=3,
        )
    )
    overrides = draw(
        st.lists(
            st.builds(
                FieldMapping,
                target=st.sampled_from(canonical_targets(entity)).filter(
                    lambda t: t != "external_id"
                ),
                source=plain.filter(lambda s: s.upper() not in KEYWORDS and s != "MailingAddress"),
                transform=st.sampled_from(transform_names()),
                required=st.booleans(),
            ),
            max_size=2,
        )
    )
    columns = draw(st.lists(column_names, min_size=0, max_size=8, unique=True))
    columns = [c for c in columns if c not in ("Id", "SystemModstamp")]
    # Salesforce always returns the two columns the query selects, as text or null; numbers
    # there (a broken proxy) must be quarantined by the raw contract check, not crash it.
    ids = st.one_of(st.sampled_from(["001000000000001AAA", "003000000000002AAA", "x"]),
                    st.none(), st.text(max_size=20), st.integers())  # fmt: skip
    stamps = st.one_of(st.sampled_from(["2024-01-01T00:00:00.000+0000", "2024-02-30"]),
                       st.none(), st.text(max_size=30))  # fmt: skip
    fixed = {"Id": ids, "SystemModstamp": stamps}
    rows = draw(st.lists(st.fixed_dictionaries({**fixed, **{c: values for c in columns}}),
                         min_size=1, max_size=8))  # fmt: skip
    columns = ["Id", "SystemModstamp", *columns]
    raw = pd.DataFrame(rows, columns=columns, dtype=object)
    return entity, [*entity.mappings, *overrides, *extra], raw


@fuzz
@given(case=records_and_mappings())
def test_valid_mappings_never_crash_on_arbitrary_records(case):
    ran("mapping: apply on arbitrary records")
    entity, mappings, raw = case
    try:
        mapped, warnings = apply_field_mappings(entity, raw, mappings, tenant_id="t")
    except MappingError as exc:
        assert "required source field" in str(exc)
        return
    assert len(mapped) == len(raw) and list(mapped.index) == list(raw.index)
    assert all(isinstance(v, dict) or v is None for v in mapped["custom_fields"])
    assert isinstance(warnings, list)


# Pandera's raw-contract and gate schemas take about 0.1 s a page, so this property runs fewer
# examples than the others (quick 30, full 1000).
@settings(max_examples=scaled(30, 1_000), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(case=records_and_mappings())
def test_a_whole_page_step_on_arbitrary_records_accounts_for_every_record(case):
    ran("mapping: gate_page on arbitrary records")
    entity, mappings, raw = case
    try:
        page = gate_page(entity, raw, mappings, tenant_id="t")
    except MappingError as exc:
        assert "required source field" in str(exc)
        return
    assert page.raw_rejected + page.result.stats.input == len(raw)
    stats = page.result.stats
    assert stats.passed + stats.failed + stats.duplicates_removed == stats.input
