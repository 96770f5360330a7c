"""The generated org: deterministic, realistic, tied stamps, and every kind of dirt."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import date

import pytest

from gtm_pipeline.emulator import ids
from gtm_pipeline.emulator.generate import DIRTY_KINDS, DUPLICATE_ID, HISTORY_END
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.schema import OBJECTS

COUNTS = {"Account": 200, "Contact": 1000, "Opportunity": 400}


@pytest.fixture(scope="module")
def org() -> Org:
    return Org.generate(seed=42, counts=COUNTS, dirty_ratio=0.05)


def everything(org: Org) -> dict[str, list[dict]]:
    return {name: list(org.truth(name)) for name in org.object_names()}


def test_same_seed_same_records_different_seed_different_records(org: Org) -> None:
    again = Org.generate(seed=42, counts=COUNTS, dirty_ratio=0.05)
    assert everything(again) == everything(org)
    assert (again.org_id, again.user_id) == (org.org_id, org.user_id)
    other = Org.generate(seed=43, counts=COUNTS, dirty_ratio=0.05)
    assert everything(other)["Contact"] != everything(org)["Contact"]
    assert {r["Id"] for r in other.truth("Account")}.isdisjoint(
        r["Id"] for r in org.truth("Account")
    )


def test_counts_ids_and_prefixes(org: Org) -> None:
    data = everything(org)
    for name, expected in COUNTS.items():
        records = data[name]
        assert len(records) == expected
        prefix = ids.KEY_PREFIXES[name]
        assert all(r["Id"].startswith(prefix) and len(r["Id"]) == 18 for r in records)
        assert all(r["Id"][15:] == ids.checksum(r["Id"][:15]) for r in records)
        assert len({r["Id"] for r in records}) == expected
        assert not any(r["IsDeleted"] for r in records)
    assert org.org_id.startswith("00D") and ids.is_valid_id(org.org_id)
    assert org.user_id.startswith("005") and ids.is_valid_id(org.user_id)


def test_timestamps_are_fixed_in_the_past_and_ordered(org: Org) -> None:
    ceiling = date.fromtimestamp(HISTORY_END).isoformat()
    for records in everything(org).values():
        for r in records:
            assert r["CreatedDate"] <= r["LastModifiedDate"] <= r["SystemModstamp"]
            assert r["SystemModstamp"] < ceiling
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000", r["SystemModstamp"])


def test_records_look_real(org: Org) -> None:
    clean = [r for r in org.truth("Contact") if "_dirty" not in r]
    assert all(re.fullmatch(r"[a-z.]+\d*@[a-z0-9.]+\.[a-z.]+", r["Email"]) for r in clean)
    assert all(r["Name"] == f"{r['FirstName']} {r['LastName']}" for r in clean)
    accounts = [r for r in org.truth("Account") if "_dirty" not in r]
    assert all(r["Website"].split("www.", 1)[1] for r in accounts)
    assert len({r["Industry"] for r in accounts}) > 15
    assert all(isinstance(r["NumberOfEmployees"], int) for r in accounts)
    opportunities = [r for r in org.truth("Opportunity") if "_dirty" not in r]
    assert len({r["StageName"] for r in opportunities}) == 10
    assert all(date.fromisoformat(r["CloseDate"]) for r in opportunities)
    scored = [r for r in clean if r["Fit_Score__c"] is not None]
    assert 0 < len(scored) < len(clean) / 4  # some earlier scores for writeback to diff against


def test_every_dirty_kind_present_at_the_ratio(org: Org) -> None:
    data = everything(org)
    for name in DIRTY_KINDS:
        records = data[name]
        kinds = Counter(r["_dirty"] for r in records if "_dirty" in r)
        assert set(kinds) == set(DIRTY_KINDS[name]) | {DUPLICATE_ID}, name
        share = sum(kinds.values()) / len(records)
        assert 0.04 <= share <= 0.06, (name, share)


def test_dirty_records_carry_their_dirt(org: Org) -> None:
    data = everything(org)
    by_kind: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for name, records in data.items():
        for r in records:
            if "_dirty" in r:
                by_kind[name, r["_dirty"]].append(r)
    assert all(r["Name"] is None for r in by_kind["Account", "missing_required"])
    assert all(
        r["LastName"] is None and r["Email"] is None for r in by_kind["Contact", "missing_required"]
    )
    assert all(r["AccountId"] is None for r in by_kind["Opportunity", "missing_required"])
    for r in by_kind["Account", "numeric_string"]:
        assert isinstance(r["NumberOfEmployees"], str) or isinstance(r["AnnualRevenue"], str)
    for r in by_kind["Opportunity", "numeric_string"]:
        assert isinstance(r["Amount"], str) or isinstance(r["Probability"], str)
    for r in by_kind["Opportunity", "impossible_date"]:
        with pytest.raises(ValueError):
            date.fromisoformat(r["CloseDate"])
    clean_emails = {r["Email"] for r in data["Contact"] if "_dirty" not in r and r["Email"]}
    for r in by_kind["Contact", "duplicate_email"]:
        assert r["Email"] not in clean_emails
        assert r["Email"].strip().lower() in clean_emails
    for name in DIRTY_KINDS:
        for r in by_kind[name, "padded_string"]:
            assert any(isinstance(v, str) and v != v.strip() for v in r.values())
        fields = {f.name: f for f in OBJECTS[name].fields}
        for r in by_kind[name, "long_string"]:
            assert any(
                isinstance(v, str) and len(v) > fields[k].length > 0
                for k, v in r.items()
                if k in fields
            )
        for r in by_kind[name, "non_latin"]:
            assert any(isinstance(v, str) and not v.isascii() for v in r.values())


def test_dirty_ratio_zero_means_clean() -> None:
    clean = Org.generate(counts={"Account": 50, "Contact": 200, "Opportunity": 50}, dirty_ratio=0)
    assert not any("_dirty" in r for name in clean.object_names() for r in clean.truth(name))


def test_duplicates_are_served_again_later_but_truth_has_them_once(org: Org) -> None:
    result = org.execute_query(
        "SELECT Id FROM Contact ORDER BY SystemModstamp, Id", include_deleted=False
    )
    served = [r["Id"] for r in result.page(0, result.total_size)]
    dup_ids = {r["Id"] for r in org.truth("Contact") if r.get("_dirty") == DUPLICATE_ID}
    assert dup_ids
    assert result.total_size == COUNTS["Contact"] + len(dup_ids)
    for record_id in dup_ids:
        first = served.index(record_id)
        second = served.index(record_id, first + 1)
        assert second - first > 200  # the repeat lands on a later page
    assert all(served.count(i) == 1 for i in set(served) - dup_ids)


def test_tied_stamps_cross_page_boundaries(org: Org) -> None:
    result = org.execute_query(
        "SELECT Id, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id", include_deleted=False
    )
    stamps = [r["SystemModstamp"] for r in result.page(0, result.total_size)]
    crossing = [b for b in range(200, len(stamps), 200) if stamps[b - 1] == stamps[b]]
    assert crossing, "some stamp must continue across a 200-record page boundary"
    assert max(Counter(stamps).values()) >= 250


def test_bad_generation_arguments() -> None:
    with pytest.raises(ValueError, match="unknown object 'Case'"):
        Org.generate(counts={"Case": 5})
    with pytest.raises(ValueError, match="non-negative integer"):
        Org.generate(counts={"Contact": -1})
    with pytest.raises(ValueError, match="dirty_ratio"):
        Org.generate(dirty_ratio=1.5)
