"""Properties of SOQL building (sync/soql.py) and of the emulator's SOQL parser.

- Every query the builder makes, from any valid identifiers and any cursor time, is read back by
  the emulator's parser as exactly that object, field list, window and order.
- The builder accepts a name only when it is a plain identifier (or a dot path of them); any
  other text is refused.
- The parser, fed the builder's queries with random edits, hostile tokens spliced in, raises
  nothing but its own 400 (and so does running them against an org).

Extends emulator/test_soql.py::test_parser_raises_only_emulator_errors and
test_whole_query_path_raises_only_emulator_errors (random text and keyword soups) with mutations
of real queries, which reach deeper into the grammar; the fixed injection list lives in
sync/test_soql.py.
"""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gtm_pipeline.emulator.errors import EmulatorError
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.soql_syntax import KEYWORDS, parse
from gtm_pipeline.sync.soql import (
    ORDER,
    SoqlBuildError,
    check_path,
    datetime_literal,
    deleted_query,
    modified_query,
    select_fields,
)
from gtm_pipeline_tests.fuzz.examples import ran
from gtm_pipeline_tests.fuzz.settings import fuzz

STRICT_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}(?:\.[A-Za-z][A-Za-z0-9_]{0,79}){0,4}")

# SOQL reserved words are not field or object names; the emulator tokenizes them as keywords.
LETTERS = string.ascii_letters
identifiers = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(LETTERS),
    st.text(alphabet=LETTERS + string.digits + "_", max_size=79),
).filter(lambda name: name.upper() not in KEYWORDS)
paths = st.lists(identifiers, min_size=1, max_size=5).map(".".join)
moments = st.builds(
    lambda naive, minutes: naive.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(-14 * 60, 14 * 60),
)


def _floored_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


@fuzz
@given(sobject=identifiers, fields=st.lists(paths, max_size=12), since=st.none() | moments)
def test_every_built_query_parses_back_to_what_was_built(sobject, fields, since):
    ran("soql: built queries parse back")
    query = parse(modified_query(sobject, fields, since))
    assert query.sobject == sobject
    assert [p.text for p in query.select] == select_fields(fields)
    assert [(o.path.text, o.descending) for o in query.order_by] == [
        ("SystemModstamp", False),
        ("Id", False),
    ]
    assert query.limit is None and query.offset is None
    if since is None:
        assert query.where is None
    else:
        assert (query.where.path.text, query.where.op) == ("SystemModstamp", ">=")
        literal = query.where.literal
        assert literal.kind == "datetime" and literal.text == datetime_literal(since)
        floored = _floored_utc(since)
        assert literal.value == f"{floored.year:04d}-{floored:%m-%dT%H:%M:%S}.000+0000"
    deleted = parse(deleted_query(sobject, since))
    assert deleted.sobject == sobject and [p.text for p in deleted.select] == [
        "Id", "SystemModstamp", "IsDeleted",
    ]  # fmt: skip


names = st.one_of(
    st.text(max_size=90),
    paths,
    st.builds(lambda a, b, c: a + b + c, paths, st.sampled_from(list(" ,;'\"()\n\t.-*=%")), paths),
    st.sampled_from(["Id FROM Account", "Name--", "a" * 81, "Ñame", "Name\u200b", "Name\n"]),
)


@fuzz
@given(name=names)
def test_the_builder_accepts_only_plain_paths(name):
    ran("soql: builder accepts only plain paths")
    try:
        built = check_path(name)
    except SoqlBuildError:
        assert not STRICT_PATH.fullmatch(name)
        with pytest.raises(SoqlBuildError):
            modified_query("Contact", [name], None)
        return
    assert built == name and STRICT_PATH.fullmatch(name)


HOSTILE_TOKENS = [
    "'", "\\", "(", ")", ",", " OR ", " AND ", "NOT ", " WHERE ", " FROM ", " LIMIT ", "--",
    ";", "'x'", "null", "2024-02-30", "2024-01-01T00:00:00Z", "99999999999999999999", "-", ".",
    " IN (", "LIKE '%'", "\x00", "é", "\n", " ORDER BY ", "Account.Name", "(SELECT Id FROM User)",
]  # fmt: skip


@st.composite
def mutated_queries(draw) -> str:
    """A query the builder made, then edited at random places: deletions, insertions, swaps."""
    fields = draw(st.lists(st.sampled_from(["Name", "Email", "Account.Name", "Title"]), max_size=4))
    since = draw(st.none() | st.just(datetime(2024, 1, 1, tzinfo=UTC)))
    if draw(st.booleans()):
        text = modified_query("Contact", fields, since)
    else:
        text = deleted_query("Contact", since)
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from(HOSTILE_TOKENS) | st.text(max_size=3))
        if action == "insert":
            text = text[:position] + piece + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 12)) :]
        else:
            text = text[:position] + piece + text[position + len(piece) :]
    return text


@fuzz
@given(text=mutated_queries())
def test_the_parser_raises_only_its_own_400_on_edited_queries(text):
    ran("soql: parser on edited queries")
    try:
        parse(text)
    except EmulatorError as exc:
        assert exc.status == 400 and exc.body()[0]["errorCode"]


_ORG: list[Org] = []


def _org() -> Org:
    if not _ORG:
        _ORG.append(Org.generate(counts={"Account": 10, "Contact": 20, "Opportunity": 10}))
    return _ORG[0]


@fuzz
@given(text=mutated_queries())
def test_running_edited_queries_raises_only_emulator_errors(text):
    ran("soql: org runs edited queries")
    try:
        _org().execute_query(text, include_deleted=True).page(0, 5)
    except EmulatorError as exc:
        assert exc.status == 400


def test_order_constant_is_the_cursor_order():
    assert ORDER == "ORDER BY SystemModstamp ASC, Id ASC"
