"""The SystemModstamp index narrows what a query reads and never changes what it returns.

Oracle: the same condition written so that the index cannot serve it (an OR at the top with a
condition no row meets) is a plain scan of the table; both must give the same records in the
same order, and COUNT() the same number, after any sequence of changes to the org.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.schema import build_objects
from gtm_pipeline.emulator.soql import Schema
from gtm_pipeline.emulator.soql_syntax import parse
from gtm_pipeline.emulator.stamp_index import StampIndex, Table, stamp_bounds

COUNTS = {"Account": 5, "Contact": 30, "Opportunity": 5}
NEVER = "Id = null"


def served(org: Org, soql: str, *, include_deleted: bool = False) -> list[dict]:
    result = org.execute_query(soql, include_deleted=include_deleted)
    return result.page(0, result.total_size)


def counted(org: Org, soql: str) -> int:
    return org.execute_query(soql, include_deleted=False).total_size


def stamps(org: Org) -> list[str]:
    return sorted({r["SystemModstamp"] for r in org.truth("Contact")})


def apply(org: Org, change: tuple[str, int, int]) -> None:
    kind, pick, age = change
    live = [r["Id"] for r in org.truth("Contact") if not r["IsDeleted"]]
    binned = [r["Id"] for r in org.truth("Contact") if r["IsDeleted"]]
    target = live[pick % len(live)] if live else None
    if kind == "insert":
        org.mutate({"op": "insert", "object": "Contact", "fields": {"LastName": f"New {pick}"}})
    elif kind == "update" and target:
        org.mutate({"op": "update", "object": "Contact", "id": target, "fields": {"Title": "T"}})
    elif kind == "delete" and target:
        org.mutate({"op": "delete", "object": "Contact", "id": target})
    elif kind == "undelete" and binned:
        org.mutate({"op": "undelete", "object": "Contact", "id": binned[pick % len(binned)]})
    elif kind == "purge" and target:
        org.mutate({"op": "delete", "object": "Contact", "id": target})
        org.mutate({"op": "purge", "object": "Contact", "id": target})
    elif kind == "late" and target:
        org.mutate({"op": "late_commit", "object": "Contact", "id": target,
                    "age_seconds": 60 + age, "fields": {"Title": "Late"}})  # fmt: skip


changes = st.tuples(
    st.sampled_from(("insert", "update", "delete", "undelete", "purge", "late")),
    st.integers(0, 100),
    st.integers(0, 3600),
)
conditions = st.lists(
    st.tuples(st.sampled_from((">=", ">", "<", "<=", "=")), st.integers(0, 10_000)),
    min_size=1,
    max_size=3,
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(1, 1000),
    rounds=st.lists(st.tuples(st.lists(changes, max_size=5), conditions), min_size=1, max_size=4),
    # Ids last: rows that tie on every ORDER BY key come in a random order by design.
    order_by=st.sampled_from(("", " ORDER BY SystemModstamp, Id", " ORDER BY LastName, Id")),
    include_deleted=st.booleans(),
)
def test_a_query_through_the_index_returns_what_a_scan_returns(
    seed, rounds, order_by, include_deleted
):
    org = Org.generate(seed=seed, counts=COUNTS, dirty_ratio=0.1)
    for round_changes, condition in rounds:
        for change in round_changes:
            apply(org, change)
        known = stamps(org)
        where = " AND ".join(
            f"SystemModstamp {op} {known[at % len(known)]}" for op, at in condition
        )
        where += " AND LastName != null"
        fields = "SELECT Id, SystemModstamp, LastName FROM Contact"
        indexed = f"{fields} WHERE {where}{order_by}"
        scanned = f"{fields} WHERE ({where}) OR {NEVER}{order_by}"
        assert served(org, indexed, include_deleted=include_deleted) == served(
            org, scanned, include_deleted=include_deleted
        )
        count = "SELECT COUNT() FROM Contact"
        assert counted(org, f"{count} WHERE {where}") == counted(
            org, f"{count} WHERE ({where}) OR {NEVER}"
        )


def test_bounds_come_only_from_the_stamp_conditions_anded_at_the_top():
    schema = Schema(build_objects(), {})
    contact = schema.object("Contact")

    def bounds(where: str):
        return stamp_bounds(parse("SELECT Id FROM Contact WHERE " + where), schema, contact)  # noqa: S608

    a, b = "2024-01-01T00:00:00.000+0000", "2024-06-01T00:00:00.000+0000"
    c = "2024-09-01T00:00:00Z"
    assert bounds(f"SystemModstamp >= {a} AND SystemModstamp < {b}") == (a, b)
    assert bounds(f"SystemModstamp > {a} AND SystemModstamp >= {b}") == (b, None)
    assert bounds(f"SystemModstamp = {b}") == (b, b)
    assert bounds(f"SystemModstamp <= {c}") == (None, "2024-09-01T00:00:00.000+0000")
    assert bounds(f"SystemModstamp >= {a} OR SystemModstamp < {b}") is None
    assert bounds(f"LastModifiedDate >= {a}") is None
    assert bounds(f"SystemModstamp != {a}") is None
    assert bounds(f"Account.SystemModstamp >= {a}") is None


def test_the_index_is_rebuilt_after_any_change_to_its_table():
    table = Table({"a": ("a", "2024-01-02"), "b": ("b", "2024-01-01")})
    index = StampIndex.build(table, 1)
    assert index.rows_between(("2024-01-01", "2024-01-01")) == [("b", "2024-01-01")]
    assert index.rows_between((None, None)) == [("a", "2024-01-02"), ("b", "2024-01-01")]
    for change in (
        lambda t: t.__setitem__("c", ("c", "2024-01-03")),
        lambda t: t.__delitem__("a"),
        lambda t: t.pop("b"),
        lambda t: t.update({"d": ("d", None)}),
        lambda t: t.setdefault("e", ("e", "2024-01-05")),
        lambda t: t.clear(),
    ):
        before = table.version
        change(table)
        assert table.version > before
