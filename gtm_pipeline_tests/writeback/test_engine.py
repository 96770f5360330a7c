"""The writeback engine against the emulator over HTTPS, with the store on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from gtm_pipeline.emulator.ids import make_id
from gtm_pipeline.emulator.testing import (
    EmulatorHandle,
    TokenRefresher,
    emulator_client,
    obtain_tokens,
    running_emulator,
)
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.errors import (
    ApiLimitExceeded,
    SalesforceApiError,
    SalesforceUnavailable,
)
from gtm_pipeline.store.tables import writeback_state
from gtm_pipeline.writeback.engine import backoff_seconds, blamed_fields, write_back

COUNTS = {"Account": 40, "Contact": 1000, "Opportunity": 40}
FIELD_MAP = {
    "fit_score": "Fit_Score__c",
    "engagement_score": "Engagement_Score__c",
    "combined_score": "Combined_Score__c",
    "tier": "Tier__c",
    "scored_at": "Scored_At__c",
}
TENANT = "acme"
SCORED_AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.fixture()
def emulator(tmp_path) -> Iterator[EmulatorHandle]:
    with running_emulator(tmp_path / "emulator", counts=COUNTS, seed=7, dirty_ratio=0.0) as h:
        yield h


def _client(emulator: EmulatorHandle, refresh: Any = None) -> tuple[SalesforceClient, dict]:
    tokens = obtain_tokens(emulator.info)
    client = emulator_client(
        emulator.info, tokens["access_token"], refresh=refresh, sleep=lambda _s: None
    )
    return client, tokens


@pytest.fixture()
def client(emulator) -> SalesforceClient:
    return _client(emulator)[0]


def _live_ids(emulator: EmulatorHandle, sobject: str = "Contact") -> list[str]:
    return sorted(r["Id"] for r in emulator.control.truth(sobject) if not r["IsDeleted"])


def _scores(ids: Sequence[str], entity_type: str = "person", bump: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity_type": entity_type,
            "external_id": list(ids),
            "fit_score": [round(i % 97 + 0.25 + bump, 2) for i in range(len(ids))],
            "engagement_score": [float(i % 50) for i in range(len(ids))],
            "combined_score": [round(i % 89 + 0.5, 2) for i in range(len(ids))],
            "tier": ["ABCD"[i % 4] for i in range(len(ids))],
            "scored_at": SCORED_AT,
        }
    )


def _truth(emulator: EmulatorHandle, sobject: str = "Contact") -> dict[str, dict]:
    return {r["Id"]: r for r in emulator.control.truth(sobject)}


def _assert_landed(emulator: EmulatorHandle, df: pd.DataFrame, sobject: str = "Contact") -> None:
    truth = _truth(emulator, sobject)
    for row in df.itertuples(index=False):
        written = truth[row.external_id]
        assert math.isclose(written["Fit_Score__c"], row.fit_score), row.external_id
        assert math.isclose(written["Engagement_Score__c"], row.engagement_score)
        assert math.isclose(written["Combined_Score__c"], row.combined_score)
        assert written["Tier__c"] == row.tier
        assert written["Scored_At__c"] == "2024-05-06T07:08:09.000+0000"


def _state(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.external_id: r for r in conn.execute(sa.select(writeback_state))}


def test_scores_land_then_unchanged_costs_nothing_and_ten_changes_cost_one_request(
    emulator, client, engine
) -> None:
    ids = _live_ids(emulator)
    df = _scores(ids)
    first = write_back(client, engine, TENANT, "person", df, FIELD_MAP)
    assert (first.total, first.success, first.failed, first.skipped_unchanged) == (
        len(ids),
        len(ids),
        0,
        0,
    )
    assert first.requests == math.ceil(len(ids) / 200) == client.calls_made
    _assert_landed(emulator, df)
    assert {r.last_status for r in _state(engine).values()} == {"success"}

    calls = client.calls_made
    second = write_back(client, engine, TENANT, "person", df, FIELD_MAP)
    assert (second.requests, second.success, second.skipped_unchanged) == (0, 0, len(ids))
    assert client.calls_made == calls

    changed = df.copy()
    changed.loc[changed.index[::100][:10], "fit_score"] += 1.0
    third = write_back(client, engine, TENANT, "person", changed, FIELD_MAP)
    assert (third.requests, third.success, third.skipped_unchanged) == (1, 10, len(ids) - 10)
    assert client.calls_made == calls + 1
    _assert_landed(emulator, changed)


def test_per_record_failures_are_reported_and_the_rest_of_the_batch_is_written(
    emulator, client, engine
) -> None:
    ids = _live_ids(emulator)[:200]
    deleted, clears, stuck = ids[10], ids[20], ids[30]
    missing = make_id("003", 900_000)  # well formed, no such record
    batch = [*ids[:199], missing]
    emulator.control.mutate(
        [
            {"op": "delete", "object": "Contact", "id": deleted},
            {"op": "lock", "object": "Contact", "id": clears, "attempts": 2},
            {"op": "lock", "object": "Contact", "id": stuck, "attempts": 50},
        ]
    )
    sleeps: list[float] = []
    df = _scores(batch)
    result = write_back(client, engine, TENANT, "person", df, FIELD_MAP, sleep=sleeps.append)

    codes = {error["entity_id"]: error["code"] for error in result.errors}
    assert codes == {
        deleted: "ENTITY_IS_DELETED",
        missing: "INVALID_CROSS_REFERENCE_KEY",
        stuck: "UNABLE_TO_LOCK_ROW",
    }
    assert all(e["error"].startswith(e["code"] + ": ") for e in result.errors)
    assert (result.success, result.failed) == (197, 3)
    assert result.requests == 3  # the batch, then two retries of the locked rows
    assert sleeps == [backoff_seconds(1), backoff_seconds(2)]
    _assert_landed(emulator, df[~df["external_id"].isin([deleted, missing, stuck])])

    state = _state(engine)
    assert state[clears].last_status == "success"
    assert (state[deleted].last_status, state[deleted].last_error_code) == (
        "failed",
        "ENTITY_IS_DELETED",
    )
    assert (state[stuck].last_status, state[stuck].attempts) == ("transient", 1)

    # Unchanged permanent failures are not retried; the transient one is, and now succeeds.
    emulator.control.mutate({"op": "lock", "object": "Contact", "id": stuck, "attempts": 0})
    again = write_back(client, engine, TENANT, "person", df, FIELD_MAP, sleep=sleeps.append)
    assert (again.requests, again.success, again.failed) == (1, 1, 0)
    assert _state(engine)[stuck].last_status == "success"

    # A changed value for the deleted record is tried again (and fails again, counted).
    bumped = df.copy()
    bumped.loc[bumped["external_id"] == deleted, "fit_score"] += 1.0
    third = write_back(client, engine, TENANT, "person", bumped, FIELD_MAP)
    assert (third.requests, third.failed, third.errors[0]["entity_id"]) == (1, 1, deleted)
    assert _state(engine)[deleted].attempts == 2


def test_bad_values_and_a_malformed_id_fail_alone_with_their_codes(
    emulator, client, engine
) -> None:
    ids = _live_ids(emulator)[:199]
    df = _scores([*ids, "003NOT_AN_ID"])
    too_long, out_of_range = ids[5], ids[6]
    df.loc[df["external_id"] == too_long, "tier"] = "T" * 25  # Tier__c holds 20 characters
    df.loc[df["external_id"] == out_of_range, "fit_score"] = 1e17  # number(18, 2)
    result = write_back(client, engine, TENANT, "person", df, FIELD_MAP)
    codes = {error["entity_id"]: error["code"] for error in result.errors}
    assert codes == {
        "003NOT_AN_ID": "MALFORMED_ID",
        too_long: "STRING_TOO_LONG",
        out_of_range: "NUMBER_OUTSIDE_VALID_RANGE",
    }
    assert (result.requests, result.success, result.failed) == (1, 197, 3)
    _assert_landed(emulator, df[~df["external_id"].isin(codes)])


@pytest.mark.parametrize(
    ("field_map", "code"),
    [
        ({"fit_score": "Days_Since_Activity__c"}, "INVALID_FIELD_FOR_INSERT_UPDATE"),  # a formula
        ({"tier": "Fit_Score__c"}, "INVALID_TYPE_ON_FIELD_IN_RECORD"),  # text into a number
    ],
)
def test_a_field_that_cannot_take_the_value_fails_every_record_with_its_code(
    emulator, client, engine, field_map, code
) -> None:
    ids = _live_ids(emulator, "Account")
    result = write_back(client, engine, TENANT, "account", _scores(ids, "account"), field_map)
    assert result.failed == len(ids) and result.success == 0
    assert {e["code"] for e in result.errors} == {code}
    assert (
        write_back(client, engine, TENANT, "account", _scores(ids, "account"), field_map).requests
        == 0
    )


def test_a_missing_field_fails_permanently_until_the_mapping_changes(
    emulator, client, engine
) -> None:
    ids = _live_ids(emulator, "Account")
    df = _scores(ids, "account")
    broken = {"fit_score": "Gone_Score__c"}
    first = write_back(client, engine, TENANT, "account", df, broken)
    assert first.failed == len(ids) and {e["code"] for e in first.errors} == {"INVALID_FIELD"}
    assert write_back(client, engine, TENANT, "account", df, broken).requests == 0

    fixed = write_back(client, engine, TENANT, "account", df, FIELD_MAP)
    assert (fixed.requests, fixed.success) == (1, len(ids))
    _assert_landed(emulator, df, "Account")


class _RejectingClient:
    """Rejects, as a whole, any request carrying the poisoned record (as Salesforce does with a
    body it cannot parse); passes everything else to the real client."""

    def __init__(self, client: SalesforceClient, poisoned: str) -> None:
        self.client = client
        self.poisoned = poisoned
        self.sizes: list[int] = []

    def update_collection(
        self, records: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[dict[str, Any]]:
        self.sizes.append(len(records))
        if any(r["id"] == self.poisoned for r in records):
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance")
        return self.client.update_collection(records, all_or_none=all_or_none)


def test_a_batch_rejected_as_a_whole_is_split_to_isolate_the_bad_record(
    emulator, client, engine
) -> None:
    ids = _live_ids(emulator)[:200]
    rejecting = _RejectingClient(client, ids[137])
    df = _scores(ids)
    result = write_back(rejecting, engine, TENANT, "person", df, FIELD_MAP)
    assert result.errors == [
        {
            "entity_id": ids[137],
            "code": "JSON_PARSER_ERROR",
            "error": "JSON_PARSER_ERROR: Cannot deserialize instance",
            "fields": [],
        }
    ]
    assert (result.success, result.failed) == (199, 1)
    assert result.requests == len(rejecting.sizes) <= 1 + 2 * math.ceil(math.log2(200))
    assert 1 in rejecting.sizes  # the poisoned record ended up alone
    _assert_landed(emulator, df[df["external_id"] != ids[137]])


def test_a_400_from_the_wire_splits_the_batch_and_every_record_lands(
    emulator, client, engine
) -> None:
    ids = _live_ids(emulator)[:200]
    emulator.control.add_fault(
        kind="status", status=400, error_code="JSON_PARSER_ERROR", times=1, methods=["PATCH"]
    )
    df = _scores(ids)
    result = write_back(client, engine, TENANT, "person", df, FIELD_MAP)
    assert (result.success, result.failed, result.requests) == (200, 0, 3)
    _assert_landed(emulator, df)


class _CrashingClient:
    """Passes requests through until `crash_on`, then fails like a 5xx storm would."""

    def __init__(self, client: SalesforceClient, crash_on: int) -> None:
        self.client = client
        self.crash_on = crash_on
        self.sent: list[str] = []

    def update_collection(
        self, records: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[dict[str, Any]]:
        if len(self.sent) // 200 + 1 >= self.crash_on:
            raise SalesforceUnavailable("Salesforce stayed unavailable after 5 attempts")
        self.sent.extend(r["id"] for r in records)
        return self.client.update_collection(records, all_or_none=all_or_none)

    def query_records(self, soql: str) -> Iterator[dict[str, Any]]:
        return self.client.query_records(soql)


def test_a_rerun_after_a_crash_sends_only_what_was_not_confirmed(emulator, client, engine) -> None:
    ids = _live_ids(emulator)
    df = _scores(ids, bump=0.5)
    crashing = _CrashingClient(client, crash_on=3)
    with pytest.raises(SalesforceUnavailable):
        write_back(crashing, engine, TENANT, "person", df, FIELD_MAP)
    state = _state(engine).values()
    assert sum(r.last_status == "success" for r in state) == 400  # two batches confirmed
    assert sum(r.sending_values is not None for r in state) == 200  # the third, in flight

    rerun = _CrashingClient(client, crash_on=10**6)
    result = write_back(rerun, engine, TENANT, "person", df, FIELD_MAP)
    assert (result.skipped_unchanged, result.success) == (400, len(ids) - 400)
    assert result.recovered == 0  # the failed batch never reached Salesforce: read back, resent
    assert sorted(crashing.sent + rerun.sent) == sorted(ids)  # each record sent once
    assert all(r.sending_values is None for r in _state(engine).values())
    _assert_landed(emulator, df)


class _DyingAfterApply:
    """Salesforce applies the batch, then the process 'dies' before the outcomes are stored."""

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    def update_collection(
        self, records: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[dict[str, Any]]:
        self.client.update_collection(records, all_or_none=all_or_none)
        raise KeyboardInterrupt  # stands in for SIGKILL between the answer and the commit

    def query_records(self, soql: str) -> Iterator[dict[str, Any]]:
        return self.client.query_records(soql)


def test_a_batch_applied_before_a_crash_is_read_back_not_written_twice(
    emulator, client, engine
) -> None:
    ids = _live_ids(emulator)[:450]
    df = _scores(ids, bump=0.25)
    with pytest.raises(KeyboardInterrupt):
        write_back(_DyingAfterApply(client), engine, TENANT, "person", df, FIELD_MAP)
    before = emulator.control.update_counts("Contact")
    assert sum(before.get(i, 0) for i in ids) == 200  # the first batch landed

    queries = emulator.control.stats()["calls"]["query"]
    result = write_back(client, engine, TENANT, "person", df, FIELD_MAP)
    assert result.recovered == 200 and result.success == 250 and result.requests == 2
    assert emulator.control.stats()["calls"]["query"] - queries == 1  # one read-back query
    after = emulator.control.update_counts("Contact")
    assert all(after.get(i, 0) == 1 for i in ids)  # every record written exactly once
    _assert_landed(emulator, df)
    assert all(r.last_status == "success" and r.sending_values is None
               for r in _state(engine).values())  # fmt: skip


def test_an_in_flight_record_changed_in_salesforce_since_is_sent_again(
    emulator, client, engine
) -> None:
    ids = _live_ids(emulator)[:10]
    df = _scores(ids)
    with pytest.raises(KeyboardInterrupt):
        write_back(_DyingAfterApply(client), engine, TENANT, "person", df, FIELD_MAP)
    overwritten = ids[3]
    emulator.control.mutate(
        {"op": "update", "object": "Contact", "id": overwritten, "fields": {"Tier__c": "Z"}}
    )
    result = write_back(client, engine, TENANT, "person", df, FIELD_MAP)
    assert (result.recovered, result.success, result.requests) == (9, 1, 1)
    _assert_landed(emulator, df)


def test_a_spent_api_budget_stops_the_run_and_records_nothing(emulator, client, engine) -> None:
    emulator.control.add_fault(
        kind="status",
        status=403,
        error_code="REQUEST_LIMIT_EXCEEDED",
        message="TotalRequests Limit exceeded.",
        times=1,
        methods=["PATCH"],
    )
    with pytest.raises(ApiLimitExceeded):
        write_back(client, engine, TENANT, "person", _scores(_live_ids(emulator)), FIELD_MAP)
    state = _state(engine).values()
    assert all(r.last_status is None and r.last_written_values is None for r in state)


def test_a_concurrency_limit_is_waited_out_and_every_record_is_written_once(
    emulator, client, engine
) -> None:
    ids = _live_ids(emulator)[:200]
    df = _scores(ids, bump=0.25)
    before = emulator.control.update_counts("Contact")
    emulator.control.add_fault(kind="concurrency_limit", times=2, methods=["PATCH"])
    result = write_back(client, engine, TENANT, "person", df, FIELD_MAP)
    assert (result.success, result.failed, result.recovered) == (200, 0, 0)
    assert client.calls_made == 3  # two refusals, then the update; no read-back was needed
    after = emulator.control.update_counts("Contact")
    assert all(after.get(i, 0) - before.get(i, 0) == 1 for i in ids)
    _assert_landed(emulator, df)


def test_session_expiry_mid_writeback_refreshes_once_and_finishes(emulator, engine) -> None:
    tokens = obtain_tokens(emulator.info)
    refresher = TokenRefresher(emulator.info, tokens["refresh_token"])
    client, _ = _client(emulator, refresh=refresher)
    emulator.control.add_fault(kind="expire_sessions", after_calls=2)
    ids = _live_ids(emulator)
    df = _scores(ids)
    result = write_back(client, engine, TENANT, "person", df, FIELD_MAP)
    assert (result.success, result.failed) == (len(ids), 0)
    assert refresher.calls == 1
    _assert_landed(emulator, df)


def test_bad_arguments_are_refused_before_any_call(client, engine) -> None:
    df = _scores(["003000000000001AAA"])
    with pytest.raises(ValueError, match="max_attempts"):
        write_back(client, engine, TENANT, "person", df, FIELD_MAP, max_attempts=0)
    with pytest.raises(ValueError, match="unknown entity type"):
        write_back(client, engine, TENANT, "campaign", df, FIELD_MAP)
    assert client.calls_made == 0


@pytest.mark.parametrize(
    ("fault", "applied_before_the_loss"),
    [
        ({"kind": "drop"}, True),  # handled, then the answer is cut off mid-body
        ({"kind": "status", "status": 503, "error_code": "SERVER_UNAVAILABLE"}, False),
    ],
)
def test_a_lost_answer_is_resolved_by_reading_back_so_each_record_is_written_once(
    emulator, client, engine, fault, applied_before_the_loss
) -> None:
    ids = _live_ids(emulator)[:200]
    df = _scores(ids, bump=0.75)
    before = emulator.control.update_counts("Contact")
    emulator.control.add_fault(**fault, times=1, methods=["PATCH"])
    queries = emulator.control.stats()["calls"]["query"]
    result = write_back(client, engine, TENANT, "person", df, FIELD_MAP, sleep=lambda _s: None)
    assert (result.success, result.failed) == (200, 0)
    assert result.requests == (1 if applied_before_the_loss else 2)
    assert emulator.control.stats()["calls"]["query"] - queries == 1  # one read-back
    after = emulator.control.update_counts("Contact")
    assert all(after.get(i, 0) - before.get(i, 0) == 1 for i in ids)
    _assert_landed(emulator, df)


def test_a_field_gone_since_the_crash_does_not_block_the_next_run(emulator, client, engine):
    ids = _live_ids(emulator)[:5]
    with pytest.raises(KeyboardInterrupt):
        write_back(_DyingAfterApply(client), engine, TENANT, "person", _scores(ids), FIELD_MAP)
    with engine.begin() as conn:  # the in-flight values name a field the org no longer has
        conn.execute(sa.update(writeback_state).values(sending_values={"Gone_Field__c": 1.0}))
    result = write_back(client, engine, TENANT, "person", _scores(ids), FIELD_MAP)
    assert result.recovered == 0 and result.success == 5


def test_a_second_writeback_of_the_tenant_at_once_is_refused_before_any_call(
    emulator, client, engine
) -> None:
    from gtm_pipeline.store.locks import TenantBusy, tenant_lock

    df = _scores(_live_ids(emulator)[:10])
    composite = emulator.control.stats()["calls"]["composite"]
    with tenant_lock(engine, "writeback of person scores", TENANT):  # another run holds it
        with pytest.raises(TenantBusy, match="writeback of person scores of tenant acme"):
            write_back(client, engine, TENANT, "person", df, FIELD_MAP)
        other = write_back(client, engine, "globex", "person", df, FIELD_MAP)  # not blocked
    assert other.success == 10
    assert emulator.control.stats()["calls"]["composite"] - composite == 1
    assert write_back(client, engine, TENANT, "person", df, FIELD_MAP).success == 10


def test_failed_records_keep_the_fields_salesforce_blamed_until_they_succeed(
    emulator, client, engine
) -> None:
    ids = _live_ids(emulator)[:20]
    df = _scores(ids)
    too_long = ids[3]
    df.loc[df["external_id"] == too_long, "tier"] = "T" * 25  # Tier__c holds 20 characters
    result = write_back(client, engine, TENANT, "person", df, FIELD_MAP)
    assert [(e["entity_id"], e["code"], e["fields"]) for e in result.errors] == [
        (too_long, "STRING_TOO_LONG", ["Tier__c"])
    ]
    assert result.as_dict()["errors"][0]["fields"] == ["Tier__c"]
    state = _state(engine)
    assert state[too_long].last_error_fields == ["Tier__c"]
    assert {state[i].last_error_fields for i in ids if i != too_long} == {None}

    fixed = df.copy()
    fixed.loc[fixed["external_id"] == too_long, "tier"] = "A"
    assert write_back(client, engine, TENANT, "person", fixed, FIELD_MAP).success == 1
    assert _state(engine)[too_long].last_error_fields is None


def test_a_mapped_field_the_org_lacks_is_named_on_every_refused_record(
    emulator, client, engine
) -> None:
    ids = _live_ids(emulator, "Account")
    broken = {"fit_score": "Gone_Score__c", "tier": "Tier__c"}
    result = write_back(client, engine, TENANT, "account", _scores(ids, "account"), broken)
    assert {tuple(e["fields"]) for e in result.errors} == {("Gone_Score__c",)}
    assert {r.last_error_fields[0] for r in _state(engine).values()} == {"Gone_Score__c"}


class _RejectingWithFields(_RejectingClient):
    """Rejects the poisoned record's request as a whole, naming the field it could not read."""

    def update_collection(
        self, records: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[dict[str, Any]]:
        if any(r["id"] == self.poisoned for r in records):
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", "Cannot deserialize", fields=("Fit_Score__c",)
            )
        return self.client.update_collection(records, all_or_none=all_or_none)


def test_a_record_isolated_by_splitting_keeps_the_fields_of_the_rejection(
    emulator, client, engine
) -> None:
    ids = _live_ids(emulator)[:8]
    result = write_back(
        _RejectingWithFields(client, ids[5]), engine, TENANT, "person", _scores(ids), FIELD_MAP
    )
    assert [(e["entity_id"], e["fields"]) for e in result.errors] == [(ids[5], ["Fit_Score__c"])]
    assert _state(engine)[ids[5]].last_error_fields == ["Fit_Score__c"]


def test_blamed_fields_are_every_errors_fields_once_in_order() -> None:
    errors = [
        {"statusCode": "INVALID_FIELD", "message": "a", "fields": ["B__c", "A__c"]},
        {"statusCode": "STRING_TOO_LONG", "message": "b", "fields": ["A__c", "C__c"]},
        {"statusCode": "UNKNOWN_EXCEPTION", "message": "c"},  # no fields key at all
        {"statusCode": "UNKNOWN_EXCEPTION", "message": "d", "fields": None},
    ]
    assert blamed_fields(errors) == ("B__c", "A__c", "C__c")
    assert blamed_fields([]) == ()
