"""The convergence property: whatever Salesforce does and however the syncs run, after one
incremental sync and one reconciliation per entity the store is exactly Salesforce's state.

Each example is a fresh small org (an emulator per example: the control API has no reset, an
emulator starts in a few hundredths of a second and is stopped in the background, and a fresh
org makes a failing example replay the same way) and a tenant of its own in the test's
database; random rounds of Salesforce changes, each followed by a sync of a random kind; then:

    one incremental sync, `reconcile_entity` per entity (nothing may remain), and
    (a) the oracle (`reconcile.reconcile`) passes for every entity, and
    (b) the store equals a single full sync of the same org into an empty store: a second
        tenant ("fresh-<tenant>") synced from the same emulator into the same database,
        compared table by table (deleted rows on their deletion columns; rows the first tenant
        flagged deleted for records purged from Salesforce are the only extra rows allowed)
        and quarantine entry by entry.

Changes: inserts (clean, dirty, or sharing another record's email in another case), updates,
email twins made and broken up, records turning dirty (LastName and Email gone, a 300-character
Title, an unreadable number or date, a missing account) and clean again, deletes, undeletes,
purges, and late commits stamped within and beyond the 10-minute lookback (only on records the
example has not touched yet: Salesforce never stamps a record's next version older than its
last). Syncs: incremental or full, REST or Bulk (`bulk_threshold=0`), REST pages of 1 to 200
records, `load_batch_rows` 1 to 20,000, Bulk result sets of 1 to 40 records, and runs that stop
after a random number of committed pages (an exception from the runner's `on_page`, raised after
that page's commit, as a kill would leave it) followed by a rerun.

Quick mode runs 100 examples per store, full mode (`--full`) 1,000; the summary line
`CONVERGENCE: N examples on <store>` says how many ran. Examples are derandomized (the same
sequence on every run, no example database); a failure prints the rounds drawn and, as notes,
every change applied with the record ids it resolved to. `--hypothesis-show-statistics` shows
how often runs were stopped, syncs read through Bulk, reconciliation had drift to repair and
email twins were marked.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from gtm_pipeline.emulator.testing import EmulatorHandle, running_emulator
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.metadata import clear_describe_cache
from gtm_pipeline.sync.entities import SYNC_ORDER
from gtm_pipeline.sync.entities_at_once import sync_entities
from gtm_pipeline.sync.reconciliation import ReconcileOptions, reconcile_entity
from gtm_pipeline.sync.runner import PageProgress, SyncOptions, SyncStats
from gtm_pipeline_tests.modes import scaled
from gtm_pipeline_tests.run_summary import figure
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.reconcile import email, judged, reconcile, text
from gtm_pipeline_tests.sync.test_store_follows_salesforce import (
    FAST_POLL,
    store_differences,
    store_of,
    sync_all,
)

COUNTS = {"Account": 10, "Contact": 24, "Lead": 12, "Opportunity": 8, "Task": 12, "Event": 6}
DIRTY_RATIO = 0.1
# 100 examples a store in CI (200 in all; the two longest tests of the suite, started first
# as `heavy`), 1,000 a store in the full mode (`pytest --full`). The org is small (72 records) so
# that REST pages of 1 to 40 records still cross many page boundaries at little cost a sync.
EXAMPLES = scaled(100, 1000)
OBJECTS = ("Account", "Contact", "Lead", "Opportunity", "Task", "Event")
PERSON_OBJECTS = ("Contact", "Lead")
"""Email twins span both."""
LOOKBACK_SECONDS = 600
examples_run: dict[str, int] = {}


# -- what an example is made of ------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One change to the org. `pick` and `other` choose records among the candidates at the
    moment the change is applied (modulo their number), `variant` a flavour of the change."""

    kind: str
    sobject: str
    pick: int = 0
    other: int = 0
    variant: int = 0


@dataclass(frozen=True)
class Sync:
    full: bool
    bulk: bool
    page_size: int
    load_batch_rows: int
    result_set: int
    parallel_reads: int
    min_slice_records: int
    """A full read of at least two slices' worth is read in up to `parallel_reads` slices."""
    stop_after: int | None
    """Committed pages after which the run is stopped (then run again), or None."""
    at_once: bool = False
    """The entities synced at once, as a Dagster run syncs them (`sync/entities_at_once.py`),
    not one after another."""


KINDS = ("insert", "edit", "dirty", "clean", "delete", "undelete", "purge", "late", "late")
"""Late commits twice as often: half of them need reconciliation."""
PERSON_KINDS = ("twin", "untwin", "twin_insert")
LEAD_KINDS = ("convert",)
"""A Lead converted: a new Contact (its email) and the Lead out of the live set."""
ACTIVITY_KINDS = ("archive",)
"""Salesforce archives an old activity: only queryAll returns it, and its stamp may not move."""

changes = st.one_of(
    st.builds(
        Change,
        kind=st.sampled_from(KINDS),
        sobject=st.sampled_from(OBJECTS),
        pick=st.integers(0, 100),
        variant=st.integers(0, 5),
    ),
    st.builds(
        Change,
        kind=st.sampled_from(PERSON_KINDS),
        sobject=st.sampled_from(PERSON_OBJECTS),
        pick=st.integers(0, 100),
        other=st.integers(0, 100),
        variant=st.integers(0, 5),
    ),
    st.builds(
        Change,
        kind=st.sampled_from(LEAD_KINDS),
        sobject=st.just("Lead"),
        pick=st.integers(0, 100),
        variant=st.integers(0, 5),
    ),
    st.builds(
        Change,
        kind=st.sampled_from(ACTIVITY_KINDS),
        sobject=st.sampled_from(("Task", "Event")),
        pick=st.integers(0, 100),
        variant=st.integers(0, 5),
    ),
)
syncs = st.builds(
    Sync,
    full=st.booleans(),
    bulk=st.booleans(),
    page_size=st.one_of(st.just(200), st.integers(1, 40)),
    load_batch_rows=st.one_of(st.integers(1, 20_000), st.integers(1, 30)),
    result_set=st.integers(1, 40),
    parallel_reads=st.sampled_from((1, 3, 8)),
    min_slice_records=st.integers(3, 30),
    stop_after=st.one_of(st.none(), st.integers(1, 8)),
    at_once=st.booleans(),
)
rounds = st.lists(st.tuples(st.lists(changes, max_size=4), syncs), max_size=2)


# -- applying changes ----------------------------------------------------------------------------


class Org:
    """The example's org as the changes see it: the emulator, fresh names, records touched."""

    def __init__(self, emulator: EmulatorHandle) -> None:
        self.emulator = emulator
        self.names = itertools.count(1)
        self.touched: set[str] = set()

    def truth(self, sobject: str) -> list[dict]:
        return sorted(self.emulator.control.truth(sobject), key=lambda r: r["Id"])

    def live(self, sobject: str) -> list[dict]:
        """Records not in the recycle bin; not converted Leads, which refuse every change."""
        return [r for r in self.truth(sobject) if not (r["IsDeleted"] or r.get("IsConverted"))]

    def persons(self) -> list[dict]:
        """Live Contacts and live, unconverted Leads."""
        return [r for sobject in PERSON_OBJECTS for r in self.live(sobject)]

    def mutate(self, *ops: dict) -> list[dict]:
        results = self.emulator.control.mutate(list(ops))
        for op, result in zip(ops, results, strict=True):
            note(f"{op} -> {result.get('id', result.get('ids'))}")
            if "id" in result:
                self.touched.add(result["id"])
        return results

    def unique_email(self) -> str:
        return f"person{next(self.names)}@convergence.example"

    def account_id(self) -> str:
        return self.truth("Account")[0]["Id"]


def _chosen(candidates: list[dict], pick: int) -> dict | None:
    return candidates[pick % len(candidates)] if candidates else None


def clean_fields(org: Org, sobject: str) -> dict:
    n = next(org.names)
    return {
        "Account": {"Name": f"Clean Co {n}", "NumberOfEmployees": 12, "AnnualRevenue": 1000.0},
        "Contact": {"FirstName": "Clean", "LastName": f"Person{n}", "Email": org.unique_email(),
                    "Title": "Fixed"},
        "Lead": {"FirstName": "Clean", "LastName": f"Lead{n}", "Email": org.unique_email(),
                 "Company": f"Prospect {n}", "Status": "Open - Not Contacted"},
        "Opportunity": {"Name": f"Clean deal {n}", "StageName": "Prospecting",
                        "CloseDate": "2025-01-31", "Amount": 10.5, "AccountId": org.account_id()},
        "Task": {"Subject": f"Call {n}", "TaskSubtype": "Call", "Status": "Completed",
                 "ActivityDate": "2024-03-01", "CallDurationInSeconds": 60,
                 "WhatId": org.account_id()},
        "Event": {"Subject": f"Meeting {n}", "Type": "Meeting", "DurationInMinutes": 30,
                  "StartDateTime": "2024-03-01T10:00:00.000+0000",
                  "EndDateTime": "2024-03-01T10:30:00.000+0000", "WhatId": org.account_id()},
    }[sobject]  # fmt: skip


DIRT = {
    "Account": ({"Name": None}, {"NumberOfEmployees": "N/A"}, {"Name": "A" * 300},
                {"AnnualRevenue": "1.200,50"}),
    "Contact": ({"LastName": None, "Email": None}, {"Title": "T" * 300},
                {"Email": None, "FirstName": None}),
    "Lead": ({"Email": None, "FirstName": None}, {"Company": "C" * 300}),
    "Opportunity": ({"CloseDate": "2024-02-30"}, {"Amount": "approx. 500"},
                    {"AccountId": None}, {"Name": "   "}),
    # About nobody (no Who, no What, hence no account); undated.
    "Task": ({"WhoId": None, "WhatId": None}, {"Subject": "S" * 300}),
    "Event": ({"WhoId": None, "WhatId": None}, {"StartDateTime": None, "ActivityDateTime": None}),
}  # fmt: skip


def edit_fields(org: Org, sobject: str) -> dict:
    n = next(org.names)
    return {
        "Account": {"Industry": f"Industry {n}", "NumberOfEmployees": f"{n},000"},
        "Contact": {"Title": f"  Title {n} ", "Phone": f"555-{n:04d}"},
        "Lead": {"Title": f"Head of {n}", "Status": "Working - Contacted"},
        "Opportunity": {"StageName": f"Stage {n}", "Amount": f"${n}k"},
        "Task": {"Subject": f"  Follow-up {n} ", "Status": "In Progress"},
        "Event": {"Subject": f"Demo {n}", "Type": ["Call", "Email", None][n % 3]},
    }[sobject]


def is_valid(sobject: str, record: dict) -> bool:
    entity = {"Account": "accounts", "Contact": "persons", "Lead": "leads",
              "Opportunity": "opportunities", "Task": "tasks", "Event": "events"}  # fmt: skip
    return isinstance(judged(entity[sobject], record), dict)


def twin_groups(org: Org) -> list[dict]:
    """Live persons (Contacts, Leads) sharing their normalised email with another one."""
    live = org.persons()
    counts: dict[str, int] = {}
    for r in live:
        if email(r["Email"]):
            counts[email(r["Email"])] = counts.get(email(r["Email"]), 0) + 1
    return [r for r in live if email(r["Email"]) and counts[email(r["Email"])] > 1]


def respelled(address: str, variant: int) -> str:
    """The same address in another case, sometimes padded."""
    swapped = address.swapcase() if variant % 2 else address.upper()
    return f"  {swapped} " if variant % 3 == 0 else swapped


def apply(org: Org, change: Change) -> None:
    """Apply one change; a change with no candidate record does nothing."""
    APPLY[change.kind](org, change)


def _insert(org: Org, change: Change) -> None:
    fields = clean_fields(org, change.sobject)
    if change.variant % 3 == 1:
        dirt = DIRT[change.sobject]
        fields |= dirt[change.variant % len(dirt)]
    org.mutate({"op": "insert", "object": change.sobject, "fields": fields})


def _edit(org: Org, change: Change) -> None:
    record = _chosen(org.live(change.sobject), change.pick)
    if record:
        org.mutate({"op": "update", "object": change.sobject, "id": record["Id"],
                    "fields": edit_fields(org, change.sobject)})  # fmt: skip


def _dirty(org: Org, change: Change) -> None:
    record = _chosen(org.live(change.sobject), change.pick)
    if record:
        dirt = DIRT[change.sobject]
        org.mutate({"op": "update", "object": change.sobject, "id": record["Id"],
                    "fields": dirt[change.variant % len(dirt)]})  # fmt: skip


def _clean(org: Org, change: Change) -> None:
    invalid = [r for r in org.live(change.sobject) if not is_valid(change.sobject, r)]
    record = _chosen(invalid, change.pick)
    if record:
        org.mutate({"op": "update", "object": change.sobject, "id": record["Id"],
                    "fields": clean_fields(org, change.sobject)})  # fmt: skip


def _delete(org: Org, change: Change) -> None:
    record = _chosen(org.live(change.sobject), change.pick)
    if record:
        org.mutate({"op": "delete", "object": change.sobject, "id": record["Id"]})


def _undelete(org: Org, change: Change) -> None:
    binned = [r for r in org.truth(change.sobject) if r["IsDeleted"]]
    record = _chosen(binned, change.pick)
    if record:
        org.mutate({"op": "undelete", "object": change.sobject, "id": record["Id"]})


def _purge(org: Org, change: Change) -> None:
    """From the recycle bin (variant even, when it holds any) or deleted and purged at once."""
    binned = [r for r in org.truth(change.sobject) if r["IsDeleted"]]
    if binned and change.variant % 2 == 0:
        record = _chosen(binned, change.pick)
        org.mutate({"op": "purge", "object": change.sobject, "id": record["Id"]})
        return
    record = _chosen(org.live(change.sobject), change.pick)
    if record:
        org.mutate(
            {"op": "delete", "object": change.sobject, "id": record["Id"]},
            {"op": "purge", "object": change.sobject, "id": record["Id"]},
        )


def _late(org: Org, change: Change) -> None:
    """A commit visible late: stamped 1-5 minutes ago (inside the lookback) for even variants,
    15-60 minutes ago (beyond it) for odd ones; an insert when variant is 4 or 5."""
    age = (60 + 60 * change.pick % 240) if change.variant % 2 == 0 else (900 + 30 * change.pick)
    op = {"op": "late_commit", "object": change.sobject, "age_seconds": age,
          "fields": edit_fields(org, change.sobject)}  # fmt: skip
    if change.variant >= 4:
        op["fields"] = clean_fields(org, change.sobject)
        org.mutate(op)
        return
    untouched = [r for r in org.live(change.sobject) if r["Id"] not in org.touched]
    record = _chosen(untouched, change.pick)
    if record:
        org.mutate({**op, "id": record["Id"]})


def _archive(org: Org, change: Change) -> None:
    current = [r for r in org.live(change.sobject) if not r["IsArchived"]]
    record = _chosen(current, change.pick)
    if record:
        org.mutate({"op": "archive", "object": change.sobject, "id": record["Id"]})


def _twin(org: Org, change: Change) -> None:
    """`pick` (of `sobject`) takes the email of `other` (another live person with one, Contact
    or Lead), in another case."""
    record = _chosen(org.live(change.sobject), change.pick)
    others = [r for r in org.persons() if record and r["Id"] != record["Id"] and email(r["Email"])]
    other = _chosen(others, change.other)
    if record and other:
        shared = respelled(other["Email"].strip(), change.variant)
        org.mutate({"op": "update", "object": change.sobject, "id": record["Id"],
                    "fields": {"Email": shared}})  # fmt: skip


def _untwin(org: Org, change: Change) -> None:
    record = _chosen(twin_groups(org), change.pick)
    if record:
        sobject = "Lead" if record["Id"].startswith("00Q") else "Contact"
        org.mutate({"op": "update", "object": sobject, "id": record["Id"],
                    "fields": {"Email": org.unique_email()}})  # fmt: skip


def _twin_insert(org: Org, change: Change) -> None:
    """A new Contact or Lead with a live person's email: smaller or larger id than the original
    is whatever the Id sequence gives (always larger here), so twins come from updates too."""
    other = _chosen([r for r in org.persons() if email(r["Email"])], change.other)
    if other:
        shared = respelled(other["Email"].strip(), change.variant)
        fields = clean_fields(org, change.sobject) | {"Email": shared}
        org.mutate({"op": "insert", "object": change.sobject, "fields": fields})


def _convert(org: Org, change: Change) -> None:
    """Convert a live Lead: at an existing Account (odd variants) or at one made from its
    Company (even variants, when it has one)."""
    lead = _chosen(org.live("Lead"), change.pick)
    accounts = org.live("Account")
    if not lead or not (accounts or text(lead.get("Company"))):
        return
    op = {"op": "convert", "object": "Lead", "id": lead["Id"]}
    if accounts and (change.variant % 2 or not text(lead.get("Company"))):
        op["account_id"] = accounts[0]["Id"]
    org.mutate(op)


APPLY: dict[str, Callable[[Org, Change], None]] = {
    "insert": _insert,
    "edit": _edit,
    "dirty": _dirty,
    "clean": _clean,
    "delete": _delete,
    "undelete": _undelete,
    "purge": _purge,
    "late": _late,
    "twin": _twin,
    "untwin": _untwin,
    "twin_insert": _twin_insert,
    "archive": _archive,
    "convert": _convert,
}


# -- running syncs -------------------------------------------------------------------------------


class Stopped(Exception):
    """Raised from on_page after a committed page: the run ends there, as a kill would."""


def stop_after(pages: int) -> Callable[[PageProgress], None]:
    seen = itertools.count(1)

    def on_page(progress: PageProgress) -> None:
        if next(seen) == pages:
            raise Stopped(f"stopped after {pages} committed page(s), last {progress}")

    return on_page


def run(client: SalesforceClient, engine: sa.Engine, org: Org, tenant: str, sync: Sync) -> None:
    org.emulator.control.configure(page_size=sync.page_size)
    options = {
        "full": sync.full,
        "load_batch_rows": sync.load_batch_rows,
        "bulk_max_records": sync.result_set,
        "bulk_threshold": 0 if sync.bulk else 10**9,
        "parallel_reads": sync.parallel_reads,
        "min_slice_records": sync.min_slice_records,
    }
    sync_each = sync_at_once if sync.at_once else sync_all
    if sync.stop_after is not None:
        try:
            sync_each(client, engine, tenant, on_page=stop_after(sync.stop_after), **options)
        except Stopped as stopped:
            note(str(stopped))
            event("a run stopped part way")
    stats = sync_each(client, engine, tenant, **options)
    if sync.at_once:
        event("the entities were synced at once")
    if any(s.extraction == "bulk" for s in stats.values()):
        event("a sync read through Bulk")
    if any(s.slices > 1 for s in stats.values()):
        event("a full read ran in parallel slices")


def sync_at_once(
    client: SalesforceClient,
    engine: sa.Engine,
    tenant: str,
    on_page: Callable[[PageProgress], None] | None = None,
    **options,
) -> dict[str, SyncStats]:
    """`sync_all`, the entities synced at once; `on_page` sees every committed batch, and what
    it raises closes the run (each lane stops after its next committed batch) and is raised."""
    options.setdefault("bulk_poll", FAST_POLL)
    events = sync_entities(client, engine, tenant, SYNC_ORDER, SyncOptions(**options))
    stats: dict[str, SyncStats] = {}
    with closing(events):
        for item in events:
            if isinstance(item, PageProgress):
                if on_page is not None:
                    on_page(item)
            elif item.stats is None:
                raise AssertionError(f"{item.entity.name}: {item.error or item.skipped}")
            else:
                stats[item.entity.name] = item.stats
    return stats


def converge(client: SalesforceClient, engine: sa.Engine, tenant: str, bulk_listing: bool) -> None:
    """One incremental sync, then one reconciliation per entity, which must leave nothing."""
    sync_all(client, engine, tenant)
    options = ReconcileOptions(bulk_threshold=0 if bulk_listing else 10**9, bulk_poll=FAST_POLL)
    for entity in SYNC_ORDER:
        result = reconcile_entity(client, engine, tenant, entity, options=options)
        note(f"reconcile {entity.name}: {result.as_dict()}")
        for drift in ("missing", "stale", "ghosts", "purged", "wrongly_deleted"):
            if getattr(result.before, drift):
                event(f"reconciliation repaired {drift}")
        assert result.stopped is None and result.after.total == 0, result.as_dict()


# -- the property --------------------------------------------------------------------------------


STOPPING: list[threading.Thread] = []


@contextmanager
def fresh_org(path: Path, seed: int) -> Iterator[EmulatorHandle]:
    """A new emulator serving a newly generated org. It is stopped on a background thread: a
    stop waits about a tenth of a second for the server's shutdown poll, which the next example
    need not spend."""
    clear_describe_cache()
    serving = running_emulator(path, counts=COUNTS, seed=seed, dirty_ratio=DIRTY_RATIO)
    emulator = serving.__enter__()
    try:
        emulator.control.configure(bulk_job_polls=1)
        yield emulator
    finally:
        stopping = threading.Thread(target=serving.__exit__, args=(None, None, None))
        stopping.start()
        STOPPING.append(stopping)


@pytest.fixture(scope="module", autouse=True)
def _stop_and_count():
    yield
    for stopping in STOPPING:
        stopping.join()
    for store, count in sorted(examples_run.items()):
        figure(f"CONVERGENCE: {count} examples on {store}")


def assert_converged(engine: sa.Engine, emulator: EmulatorHandle, client, tenant: str) -> None:
    """(a) the oracle passes; (b) the store equals a full sync into an empty store."""
    for entity in SYNC_ORDER:
        reconcile(engine, tenant, emulator, entity)
    fresh = f"fresh-{tenant}"
    sync_all(client, engine, fresh, full=True)
    truth = {r["Id"] for o in OBJECTS for r in emulator.control.truth(o)}
    ours, theirs = store_of(engine, tenant), store_of(engine, fresh)
    purged = {i for e in SYNC_ORDER for i in ours[e.name] if i not in truth}
    twins = [r for e in ("persons", "leads") for r in ours[e].values() if r["duplicate_of"]]
    event(f"email twins marked: {min(len(twins), 3)}{'+' if len(twins) >= 3 else ''}")
    assert store_differences(ours, theirs, purged_allowed=purged) == []


@pytest.mark.heavy
@pytest.mark.timeout(scaled(900, 6 * 3600))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(seed=st.integers(1, 10_000), rounds=rounds, tail=st.lists(changes, max_size=4),
       bulk_listing=st.booleans())  # fmt: skip
def test_the_store_converges_to_salesforce(engine, tmp_path, seed, rounds, tail, bulk_listing):
    store = engine.dialect.name
    n = examples_run[store] = examples_run.get(store, 0) + 1
    tenant = f"t{n}"
    with fresh_org(tmp_path / f"emulator-{n}", seed) as emulator:
        client = client_for(emulator)
        org = Org(emulator)
        for changes_before, sync in rounds:
            for change in changes_before:
                apply(org, change)
            run(client, engine, org, tenant, sync)
        for change in tail:
            apply(org, change)
        emulator.control.configure(page_size=200)
        converge(client, engine, tenant, bulk_listing)
        assert_converged(engine, emulator, client, tenant)
