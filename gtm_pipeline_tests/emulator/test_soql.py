"""The SOQL engine: operators, precedence, relationships, literals, ordering, errors.

Filters are checked against the ground truth computed independently in Python, so a wrong
predicate cannot agree with itself.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtm_pipeline.emulator.org import EmulatorError, Org
from gtm_pipeline.emulator.soql import parse
from gtm_pipeline.emulator.soql_syntax import Query


@pytest.fixture(scope="module")
def org() -> Org:
    return Org.generate(seed=7, counts={"Account": 120, "Contact": 600, "Opportunity": 300})


def run(org: Org, soql: str, *, include_deleted: bool = False) -> list[dict]:
    result = org.execute_query(soql, include_deleted=include_deleted)
    records = result.page(0, result.total_size)
    assert len(records) == result.total_size
    return records


def ordered(org: Org, soql: str) -> list[dict]:
    """Served order minus the deliberate repeats (a repeat comes later, out of order)."""
    seen: set[str] = set()
    out = []
    for record in run(org, soql):
        if record["Id"] not in seen:
            seen.add(record["Id"])
            out.append(record)
    return out


def ids_of(records: list[dict]) -> set[str]:
    return {r["Id"] for r in records}


def truth_ids(org: Org, sobject: str, keep) -> set[str]:
    return {r["Id"] for r in org.truth(sobject) if not r["IsDeleted"] and keep(r)}


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def error_of(org: Org, soql: str) -> EmulatorError:
    with pytest.raises(EmulatorError) as caught:
        org.execute_query(soql, include_deleted=False)
    return caught.value


# --- operators -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "check"),
    [
        ("=", lambda v, p: is_number(v) and v == p),
        ("<", lambda v, p: is_number(v) and v < p),
        ("<=", lambda v, p: is_number(v) and v <= p),
        (">", lambda v, p: is_number(v) and v > p),
        (">=", lambda v, p: is_number(v) and v >= p),
        ("!=", lambda v, p: v != p),
        ("<>", lambda v, p: v != p),
    ],
)
def test_numeric_comparisons_match_truth(org: Org, op: str, check) -> None:
    numbers = sorted(
        r["NumberOfEmployees"] for r in org.truth("Account") if is_number(r["NumberOfEmployees"])
    )
    pivot = numbers[len(numbers) // 2]  # a value that exists, with data on both sides
    got = ids_of(run(org, f"SELECT Id FROM Account WHERE NumberOfEmployees {op} {pivot}"))  # noqa: S608
    expected = truth_ids(org, "Account", lambda r: check(r["NumberOfEmployees"], pivot))
    assert got == expected
    assert expected  # the data exercises the operator


def test_text_equality_is_case_insensitive(org: Org) -> None:
    upper = ids_of(run(org, "SELECT Id FROM Account WHERE Industry = 'TECHNOLOGY'"))
    lower = ids_of(run(org, "SELECT Id FROM Account WHERE Industry = 'technology'"))
    assert upper == lower == truth_ids(org, "Account", lambda r: r["Industry"] == "Technology")
    assert upper


def test_in_and_not_in(org: Org) -> None:
    wanted = {"Energy", "Retail", "Banking"}
    got = ids_of(
        run(org, "SELECT Id FROM Account WHERE Industry IN ('energy', 'Retail', 'BANKING')")
    )
    assert got == truth_ids(org, "Account", lambda r: r["Industry"] in wanted)
    rest = ids_of(
        run(org, "SELECT Id FROM Account WHERE Industry NOT IN ('Energy','Retail','Banking')")
    )
    assert rest == truth_ids(org, "Account", lambda r: r["Industry"] not in wanted)
    assert got and rest and not got & rest


def test_like_wildcards_and_escapes(org: Org) -> None:
    got = ids_of(run(org, "SELECT Id FROM Contact WHERE Email LIKE '%@GMAIL.com'"))
    assert got == truth_ids(
        org, "Contact", lambda r: (r["Email"] or "").lower().endswith("@gmail.com")
    )
    assert got
    one_char = ids_of(run(org, "SELECT Id FROM Contact WHERE FirstName LIKE 'J_hn'"))
    assert one_char == truth_ids(org, "Contact", lambda r: r["FirstName"] == "John")
    org2 = Org.generate(counts={"Account": 0, "Contact": 0, "Opportunity": 0})
    org2.mutate({"op": "insert", "object": "Account", "fields": {"Name": "100% Pure"}})
    org2.mutate({"op": "insert", "object": "Account", "fields": {"Name": "1000 Pure"}})
    literal = run(org2, r"SELECT Name FROM Account WHERE Name LIKE '100\% P%'")
    assert [r["Name"] for r in literal] == ["100% Pure"]
    assert len(run(org2, "SELECT Name FROM Account WHERE Name LIKE '100% P%'")) == 2


def test_null_comparisons(org: Org) -> None:
    missing = ids_of(run(org, "SELECT Id FROM Contact WHERE AccountId = null"))
    present = ids_of(run(org, "SELECT Id FROM Contact WHERE AccountId != null"))
    assert missing == truth_ids(org, "Contact", lambda r: r["AccountId"] is None)
    assert present == truth_ids(org, "Contact", lambda r: r["AccountId"] is not None)
    assert missing and present


def test_boolean_literals(org: Org) -> None:
    assert len(run(org, "SELECT Id FROM Account WHERE IsDeleted = false")) == len(
        run(org, "SELECT Id FROM Account")
    )
    assert run(org, "SELECT Id FROM Account WHERE IsDeleted = TRUE") == []


# --- logic and precedence -----------------------------------------------------------------------


def test_parentheses_decide_grouping(org: Org) -> None:
    def energy(r):
        return r["Industry"] == "Energy"

    def big(r):
        return is_number(r["NumberOfEmployees"]) and r["NumberOfEmployees"] > 100

    def amer(r):
        return r["Region__c"] == "AMER"

    left = ids_of(
        run(
            org,
            "SELECT Id FROM Account WHERE (Industry = 'Energy' AND "
            "NumberOfEmployees > 100) OR Region__c = 'AMER'",
        )
    )
    right = ids_of(
        run(
            org,
            "SELECT Id FROM Account WHERE Industry = 'Energy' AND "
            "(NumberOfEmployees > 100 OR Region__c = 'AMER')",
        )
    )
    assert left == truth_ids(org, "Account", lambda r: (energy(r) and big(r)) or amer(r))
    assert right == truth_ids(org, "Account", lambda r: energy(r) and (big(r) or amer(r)))
    assert left != right


def test_mixing_and_or_without_parentheses_is_rejected(org: Org) -> None:
    err = error_of(
        org,
        "SELECT Id FROM Account WHERE Industry = 'Energy' AND Phone != null OR Region__c = 'AMER'",
    )
    assert (err.status, err.error_code) == (400, "MALFORMED_QUERY")
    assert "OR" in err.message


def test_not_negates_the_following_condition(org: Org) -> None:
    got = ids_of(
        run(
            org,
            "SELECT Id FROM Account WHERE NOT Industry = 'Energy' AND "
            "NOT (Region__c = 'EMEA' OR Region__c = 'APAC')",
        )
    )
    expected = truth_ids(
        org,
        "Account",
        lambda r: r["Industry"] != "Energy" and r["Region__c"] not in ("EMEA", "APAC"),
    )
    assert got == expected and got


# --- relationships ----------------------------------------------------------------------------


def test_relationship_paths_nest_and_null_parents_are_null(org: Org) -> None:
    records = run(org, "SELECT Id, account.industry, Account.Name, Email FROM Contact")
    accounts = {a["Id"]: a for a in org.truth("Account")}
    contacts = {c["Id"]: c for c in org.truth("Contact")}
    nulls = 0
    for record in records:
        assert list(record) == ["attributes", "Id", "Account", "Email"]
        parent_id = contacts[record["Id"]]["AccountId"]
        if parent_id is None:
            assert record["Account"] is None
            nulls += 1
            continue
        parent = accounts[parent_id]
        assert record["Account"] == {
            "attributes": {
                "type": "Account",
                "url": f"/services/data/v59.0/sobjects/Account/{parent_id}",
            },
            "Industry": parent["Industry"],
            "Name": parent["Name"],
        }
    assert nulls > 0


def test_filter_and_order_on_relationship_path(org: Org) -> None:
    got = run(
        org,
        "SELECT Id, Account.Industry FROM Opportunity WHERE Account.Industry = "
        "'Energy' ORDER BY Account.Name DESC, Id",
    )
    assert got and all(r["Account"]["Industry"] == "Energy" for r in got)
    accounts = {a["Id"]: a for a in org.truth("Account")}
    expected = truth_ids(
        org,
        "Opportunity",
        lambda r: r["AccountId"] is not None and accounts[r["AccountId"]]["Industry"] == "Energy",
    )
    assert ids_of(got) == expected


# --- literals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal",
    [
        "2023-06-01T00:00:00Z",
        "2023-06-01T00:00:00.000+00:00",
        "2023-06-01T02:00:00+02:00",
        "2023-05-31T19:00:00.000-05:00",
        "2023-06-01T05:30:00+0530",
    ],
)
def test_datetime_literals_with_offsets_mean_the_same_instant(org: Org, literal: str) -> None:
    got = ids_of(run(org, f"SELECT Id FROM Contact WHERE SystemModstamp >= {literal}"))  # noqa: S608
    expected = truth_ids(
        org, "Contact", lambda r: r["SystemModstamp"] >= "2023-06-01T00:00:00.000+0000"
    )
    assert got == expected and got


def test_date_literals_and_value_formats(org: Org) -> None:
    records = run(
        org,
        "SELECT Id, CloseDate, CreatedDate, Amount FROM Opportunity WHERE CloseDate < 2023-01-01",
    )
    assert ids_of(records) == truth_ids(org, "Opportunity", lambda r: r["CloseDate"] < "2023-01-01")
    for record in records:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["CloseDate"])
        assert re.fullmatch(
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000", record["CreatedDate"]
        )


def test_string_escapes(org: Org) -> None:
    org2 = Org.generate(counts={"Account": 0, "Contact": 0, "Opportunity": 0})
    org2.mutate({"op": "insert", "object": "Account", "fields": {"Name": "O'Brien \\ Sons"}})
    got = run(org2, r"SELECT Name FROM Account WHERE Name = 'o\'brien \\ sons'")
    assert [r["Name"] for r in got] == ["O'Brien \\ Sons"]


# --- ordering, limit, offset -------------------------------------------------------------------


def _sort_key(value, nulls_first: bool):
    return (0 if nulls_first else 2,) if value is None else (1, value)


def test_order_by_several_keys_with_nulls(org: Org) -> None:
    records = ordered(
        org,
        "SELECT Id, Title, LastName FROM Contact "
        "ORDER BY Title DESC NULLS LAST, LastName ASC NULLS FIRST, Id",
    )
    titles = [r["Title"] for r in records]
    assert titles[-1] is None and titles[0] is not None
    expected = sorted(
        (r for r in org.truth("Contact") if not r["IsDeleted"]),
        key=lambda r: _sort_key(r["LastName"] and r["LastName"].casefold(), True),
    )
    # Descending with nulls last: under reverse=True the null key must be the smallest.
    expected.sort(key=lambda r: _sort_key(r["Title"] and r["Title"].casefold(), True), reverse=True)

    def full_key(r):
        return (
            _sort_key(r["Title"] and r["Title"].casefold(), True),
            _sort_key(r["LastName"] and r["LastName"].casefold(), True),
        )

    assert [full_key(r) for r in expected] == [
        full_key(r) for r in (org.record("Contact", rec["Id"]) for rec in records)
    ]
    nulls_first = ordered(org, "SELECT Id, Title FROM Contact ORDER BY Title NULLS FIRST, Id")
    assert nulls_first[0]["Title"] is None and nulls_first[-1]["Title"] is not None


def test_order_by_numbers_puts_dirty_strings_after_numbers() -> None:
    org = Org.generate(counts={"Account": 0, "Contact": 0, "Opportunity": 0})
    for value in (5, None, "1,200", 3, "N/A"):
        org.mutate(
            {
                "op": "insert",
                "object": "Account",
                "fields": {"Name": "x", "NumberOfEmployees": value},
            }
        )
    soql = "SELECT NumberOfEmployees FROM Account ORDER BY NumberOfEmployees"
    ascending = [r["NumberOfEmployees"] for r in run(org, soql + " NULLS LAST")]
    assert ascending == [3, 5, "1,200", "N/A", None]
    descending = [r["NumberOfEmployees"] for r in run(org, soql + " DESC NULLS FIRST")]
    assert descending == [None, "N/A", "1,200", 5, 3]
    assert [r["NumberOfEmployees"] for r in run(org, soql)][0] is None  # nulls first by default


def test_limit_and_offset(org: Org) -> None:
    full = [r["Id"] for r in run(org, "SELECT Id FROM Contact ORDER BY Id")]
    window = [r["Id"] for r in run(org, "SELECT Id FROM Contact ORDER BY Id LIMIT 25 OFFSET 40")]
    assert window == full[40:65]  # the window is taken over the served sequence, repeats included
    assert len(run(org, "SELECT Id FROM Contact LIMIT 3")) == 3
    err = error_of(org, "SELECT Id FROM Contact ORDER BY Id LIMIT 5 OFFSET 2001")
    assert err.error_code == "NUMBER_OUTSIDE_VALID_RANGE"


def test_keywords_and_names_are_case_insensitive_and_results_canonical(org: Org) -> None:
    shouty = run(
        org,
        "select ID, NAME, numberofemployees from ACCOUNT where INDUSTRY = 'energy' "
        "order by NAME asc nulls last limit 5",
    )
    assert shouty
    for record in shouty:
        assert list(record) == ["attributes", "Id", "Name", "NumberOfEmployees"]
        assert record["attributes"]["type"] == "Account"


def test_ties_come_back_in_no_id_order(org: Org) -> None:
    records = ordered(org, "SELECT Id, SystemModstamp FROM Contact ORDER BY SystemModstamp")
    stamps = [r["SystemModstamp"] for r in records]
    assert stamps == sorted(stamps)
    stamp, size = Counter(stamps).most_common(1)[0]
    assert size >= 200
    tied = [r["Id"] for r in records if r["SystemModstamp"] == stamp]
    assert tied != sorted(tied)
    with_id = [
        r["Id"]
        for r in ordered(org, "SELECT Id, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id")
        if r["SystemModstamp"] == stamp
    ]
    assert with_id == sorted(tied)


def test_api_version_shapes_attribute_urls(org: Org) -> None:
    result = org.execute_query(
        "SELECT Id FROM Account LIMIT 1", include_deleted=False, api_version="61.0"
    )
    record = result.page(0, 1)[0]
    assert record["attributes"]["url"] == f"/services/data/v61.0/sobjects/Account/{record['Id']}"


# --- COUNT() ----------------------------------------------------------------------------------

JANUARY = "SystemModstamp >= 2024-01-01T00:00:00Z AND SystemModstamp < 2024-02-01T00:00:00Z"


def count(org: Org, soql: str, *, include_deleted: bool = False) -> int:
    result = org.execute_query(soql, include_deleted=include_deleted)
    assert result.served_size == 0 and result.page(0, 2000) == []
    return result.total_size


def test_count_alone_parses_to_a_count_query() -> None:
    assert parse("SELECT COUNT() FROM Contact") == Query(
        (), "Contact", None, (), None, None, is_count=True
    )
    spaced = parse("select count ( ) from contact where IsDeleted = false limit 5")
    assert spaced.is_count and spaced.select == () and spaced.limit == 5
    assert not parse("SELECT Id FROM Contact").is_count


def test_count_is_the_number_of_matching_records(org: Org) -> None:
    got = count(org, "SELECT COUNT() FROM Contact")
    assert got == len(truth_ids(org, "Contact", lambda r: True))
    # a record query serves the `duplicate_id` rows twice; a count counts each record once
    served = run(org, "SELECT Id FROM Contact")
    assert got == len(ids_of(served)) < len(served)


@pytest.mark.parametrize(
    ("where", "keep"),
    [
        (JANUARY, lambda r: "2024-01-01T" <= r["SystemModstamp"] < "2024-02-01T"),
        ("IsDeleted = false", lambda r: True),
        ("Account.Industry = 'energy'", None),
    ],
)
def test_count_applies_the_where_clause_of_a_record_query(org: Org, where: str, keep) -> None:
    got = count(org, f"SELECT COUNT() FROM Contact WHERE {where}")  # noqa: S608
    records = ids_of(run(org, f"SELECT Id FROM Contact WHERE {where}"))  # noqa: S608
    assert got == len(records)
    if keep is not None:
        assert records == truth_ids(org, "Contact", keep)
    assert got  # the data exercises the filter


def test_count_is_capped_by_limit(org: Org) -> None:
    total = count(org, "SELECT COUNT() FROM Contact")
    assert count(org, "SELECT COUNT() FROM Contact LIMIT 7") == 7
    assert count(org, f"SELECT COUNT() FROM Contact WHERE {JANUARY} LIMIT 1") == 1  # noqa: S608
    assert count(org, f"SELECT COUNT() FROM Contact LIMIT {total + 10}") == total  # noqa: S608
    assert count(org, "SELECT COUNT() FROM Contact LIMIT 0") == 0


def test_count_with_include_deleted_counts_the_recycle_bin() -> None:
    org = Org.generate(counts={"Account": 5, "Contact": 30, "Opportunity": 0}, dirty_ratio=0)
    victim = next(iter(org.truth("Contact")))["Id"]
    org.mutate({"op": "delete", "object": "Contact", "id": victim})
    assert count(org, "SELECT COUNT() FROM Contact") == 29
    assert count(org, "SELECT COUNT() FROM Contact", include_deleted=True) == 30
    deleted = "SELECT COUNT() FROM Contact WHERE IsDeleted = true"
    assert count(org, deleted, include_deleted=True) == 1
    assert count(org, deleted) == 0


@pytest.mark.parametrize(
    ("soql", "message"),
    [
        (
            "SELECT COUNT() FROM Contact ORDER BY Id",
            "COUNT() and ORDER BY may not be used together.",
        ),
        ("SELECT COUNT(), Id FROM Contact", "COUNT() must be the only element in the SELECT list"),
        ("SELECT Id, COUNT() FROM Contact", "COUNT() must be the only element in the SELECT list"),
        (
            "SELECT COUNT(), COUNT() FROM Contact",
            "COUNT() must be the only element in the SELECT list",
        ),
        ("SELECT COUNT(Id) FROM Contact", "unexpected token: ("),  # unsupported, as before
        ("SELECT MAX(CreatedDate) FROM Contact", "unexpected token: ("),
    ],
)
def test_count_rules_and_other_aggregates_are_malformed(org: Org, soql: str, message: str) -> None:
    err = error_of(org, soql)
    assert (err.status, err.error_code, err.message) == (400, "MALFORMED_QUERY", message)


# --- errors -----------------------------------------------------------------------------------


def test_malformed_query(org: Org) -> None:
    err = error_of(org, "SELECT Id FORM Contact")
    assert (err.status, err.error_code, err.message) == (
        400,
        "MALFORMED_QUERY",
        "unexpected token: FORM",
    )
    assert err.body() == [{"message": "unexpected token: FORM", "errorCode": "MALFORMED_QUERY"}]
    for bad in [
        "SELECT Id FROM Contact WHERE Name = 'open",
        "SELECT FROM Contact",
        "SELECT Id, Id FROM Contact",
        "SELECT Id FROM Contact WHERE",
        "SELECT Id FROM Contact LIMIT -1",
        "SELECT Id FROM Contact WHERE CreatedDate > 2024-13-01T00:00:00Z",
    ]:
        assert error_of(org, bad).error_code == "MALFORMED_QUERY", bad


def test_unknown_field(org: Org) -> None:
    err = error_of(org, "SELECT Id, Bogus__c FROM Contact")
    assert (err.status, err.error_code) == (400, "INVALID_FIELD")
    assert err.message.startswith(
        "No such column 'Bogus__c' on entity 'Contact'. If you are attempting to use a custom "
        "field, be sure to append the '__c' after the custom field name."
    )
    assert error_of(org, "SELECT Id FROM Contact WHERE Account.Nope = 'x'").message.startswith(
        "No such column 'Nope' on entity 'Account'"
    )
    assert error_of(org, "SELECT Owner.Name FROM Contact").error_code == "INVALID_FIELD"


def test_unknown_object(org: Org) -> None:
    err = error_of(org, "SELECT Id FROM Foo")
    assert (err.status, err.error_code, err.message) == (
        400,
        "INVALID_TYPE",
        "sObject type 'Foo' is not supported.",
    )


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM Contact WHERE CreatedDate > '2024-01-01T00:00:00Z'", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE LastName = 5", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE CloseDate > 2024-01-01T00:00:00Z", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE MailingAddress = null", "INVALID_FIELD"),
        ("SELECT Id FROM Contact ORDER BY MailingAddress", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Account WHERE NumberOfEmployees LIKE '1%'", "INVALID_FIELD"),
    ],
)
def test_type_errors(org: Org, soql: str, code: str) -> None:
    err = error_of(org, soql)
    assert (err.status, err.error_code) == (400, code)


def test_ids_filter_in_15_and_18_character_forms(org: Org) -> None:
    contact = next(iter(org.truth("Contact")))
    for form in (contact["Id"], contact["Id"][:15]):
        got = run(org, f"SELECT Id FROM Contact WHERE Id = '{form}'")  # noqa: S608
        assert [r["Id"] for r in got] == [contact["Id"]]


# --- robustness ---------------------------------------------------------------------------------

_SOQL_WORDS = st.sampled_from(
    [
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "ORDER",
        "BY",
        "DESC",
        "NULLS",
        "LAST",
        "LIMIT",
        "OFFSET",
        "COUNT()",
        "COUNT",
        "null",
        "true",
        "Id",
        "Name",
        "Account.Name",
        "Contact",
        "Account",
        "Email",
        "(",
        ")",
        ",",
        "=",
        "!=",
        "<",
        ">=",
        "'x%'",
        "'a\\'b'",
        "5",
        "-1.5",
        "2024-01-01",
        "2024-01-01T00:00:00Z",
        "2024-02-30",
        "'",
        "\\",
        "Bogus__c",
        "Foo.Bar.Baz",
        "99999999999",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.lists(_SOQL_WORDS, max_size=25).map(" ".join)))
def test_parser_raises_only_emulator_errors(text: str) -> None:
    try:
        parse(text)
    except EmulatorError as exc:
        assert exc.status == 400 and exc.body()[0]["errorCode"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_SOQL_WORDS, min_size=3, max_size=25).map(lambda w: "SELECT Id FROM " + " ".join(w))  # noqa: S608
)
def test_whole_query_path_raises_only_emulator_errors(text: str) -> None:
    org = _small_org()
    try:
        org.execute_query(text, include_deleted=True).page(0, 5)
    except EmulatorError as exc:
        assert exc.status == 400


_SMALL: list[Org] = []


def _small_org() -> Org:
    if not _SMALL:
        _SMALL.append(Org.generate(counts={"Account": 20, "Contact": 40, "Opportunity": 20}))
    return _SMALL[0]


def test_deeply_nested_parentheses_are_malformed_not_a_crash(org: Org) -> None:
    deep = "SELECT Id FROM Account WHERE " + "(" * 500 + "Name = 'x'" + ")" * 500
    assert error_of(org, deep).error_code == "MALFORMED_QUERY"
    nots = "SELECT Id FROM Account WHERE " + "NOT " * 500 + "Name = 'x'"
    assert error_of(org, nots).error_code == "MALFORMED_QUERY"
