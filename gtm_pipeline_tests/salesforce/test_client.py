"""The Salesforce client against the emulator over HTTPS, REQUESTS_CA_BUNDLE left set."""

from __future__ import annotations

import math
import os
import threading

import pytest
import requests

from gtm_pipeline.emulator.testing import EmulatorHandle, TokenRefresher
from gtm_pipeline.salesforce.client import ClientConfig, Credentials, SalesforceClient
from gtm_pipeline.salesforce.errors import (
    ApiLimitExceeded,
    ApiUsageGuardTripped,
    ConcurrencyLimitExceeded,
    SalesforceApiError,
    SalesforceUnavailable,
    SessionInvalid,
    TlsVerificationFailed,
)

CONTACT_SOQL = "SELECT Id, Email, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id"


def no_sleep(_seconds: float) -> None:
    """Backoff waits are skipped in tests; the retry count is what is checked."""


def live_contact_ids(emulator: EmulatorHandle) -> list[str]:
    return [r["Id"] for r in emulator.control.truth("Contact") if not r["IsDeleted"]]


def make_client(
    emulator: EmulatorHandle, tokens: dict[str, str], refresh=None, sleep=no_sleep, **config
) -> SalesforceClient:
    config.setdefault("ca_bundle", emulator.info["ca_bundle"])
    config.setdefault("api_version", emulator.info["api_version"])
    return SalesforceClient(
        Credentials(tokens["instance_url"], tokens["access_token"]),
        config=ClientConfig(**config),
        refresh=refresh,
        sleep=sleep,
    )


def test_requests_ca_bundle_is_set_so_the_pinned_ca_is_really_tested():
    assert os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


def test_pages_follow_next_records_url_and_return_every_live_record_once(emulator, tokens):
    client = make_client(emulator, tokens, batch_size=200)
    pages = list(client.query_pages(CONTACT_SOQL))
    ids = [r["Id"] for p in pages for r in p.records]
    expected = live_contact_ids(emulator)
    assert sorted(set(ids)) == sorted(expected)
    assert len(pages) == math.ceil(pages[0].total_size / 200)
    assert [p.page_number for p in pages] == list(range(1, len(pages) + 1))
    assert pages[-1].done and not any(p.done for p in pages[:-1])
    assert client.calls_made == len(pages)
    stats = emulator.control.stats()
    assert stats["calls"]["query"] == 1 and stats["calls"]["query_more"] == len(pages) - 1
    assert stats["api_usage"]["used"] == len(pages)


def test_records_are_plain_dicts_with_the_fields_in_query_order(emulator, tokens):
    """Parsed on json's C fast path: simple-salesforce's default OrderedDict hook is not used."""
    client = make_client(emulator, tokens, batch_size=200)
    page = next(client.query_pages("SELECT Id, LastName, MailingAddress FROM Contact"))
    record = page.records[0]
    assert type(record) is dict
    assert list(record)[1:] == ["Id", "LastName", "MailingAddress"]  # after "attributes"
    address = next(r["MailingAddress"] for r in page.records if r["MailingAddress"])
    assert type(address) is dict


def test_query_pages_are_parsed_by_orjson(emulator, tokens, monkeypatch):
    from gtm_pipeline.salesforce import client as client_module

    real_loads = client_module.orjson.loads
    parsed = []

    def counting_loads(body):
        parsed.append(len(body))
        return real_loads(body)

    monkeypatch.setattr(client_module.orjson, "loads", counting_loads)
    client = make_client(emulator, tokens, batch_size=200)
    pages = list(client.query_pages(CONTACT_SOQL))
    assert len(parsed) == len(pages) > 1
    assert all(type(r) is dict for p in pages for r in p.records)


def _parsed(body: bytes, encoding: str = "utf-8"):
    from gtm_pipeline.salesforce.client import _OrjsonSalesforce

    response = requests.Response()
    response._content = body
    response.encoding = encoding
    sf = _OrjsonSalesforce(instance_url="https://example.invalid", session_id="x")
    return sf.parse_result_to_json(response)


def test_the_largest_salesforce_numbers_stay_exact():
    """Salesforce number fields hold at most 18 digits: integers orjson keeps exact."""
    body = b'{"records": [{"Amount": 999999999999999999, "Rate": 1.5}]}'
    assert _parsed(body) == {"records": [{"Amount": 999999999999999999, "Rate": 1.5}]}


def test_a_body_that_is_not_utf8_is_decoded_by_its_declared_encoding():
    body = '{"records": [{"Name": "Caf\u00e9"}]}'.encode("latin-1")
    assert _parsed(body, encoding="latin-1") == {"records": [{"Name": "Café"}]}


def test_default_batch_size_2000_makes_ten_times_fewer_calls_than_200(emulator, tokens):
    small = make_client(emulator, tokens, batch_size=200)
    large = make_client(emulator, tokens)
    assert large.config.batch_size == 2000
    small_records = sum(1 for _ in small.query_records(CONTACT_SOQL))
    large_records = sum(1 for _ in large.query_records(CONTACT_SOQL))
    assert small_records == large_records > 1000
    assert large.calls_made == 1
    assert small.calls_made == math.ceil(small_records / 200)


def test_smaller_pages_than_asked_still_yield_everything(emulator, tokens):
    emulator.control.configure(page_size={"mode": "random", "minimum": 37, "seed": 3})
    client = make_client(emulator, tokens, batch_size=200)
    pages = list(client.query_pages(CONTACT_SOQL))
    assert len(pages) >= math.ceil(pages[0].total_size / 200)
    assert all(len(p.records) <= 200 for p in pages)
    assert any(len(p.records) < 200 for p in pages[:-1])
    ids = [r["Id"] for p in pages for r in p.records]
    assert sorted(set(ids)) == sorted(live_contact_ids(emulator))


def test_query_all_returns_deleted_rows_that_query_does_not(emulator, tokens):
    victim = live_contact_ids(emulator)[0]
    emulator.control.mutate({"op": "delete", "object": "Contact", "id": victim})
    try:
        client = make_client(emulator, tokens)
        soql = f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{victim}'"  # noqa: S608
        assert list(client.query_records(soql)) == []
        [row] = list(client.query_records(soql, include_deleted=True))
        assert row["Id"] == victim and row["IsDeleted"] is True
    finally:
        emulator.control.mutate({"op": "undelete", "object": "Contact", "id": victim})


def test_refresh_in_the_middle_of_pagination_retries_once_and_loses_nothing(emulator, tokens):
    refresher = TokenRefresher(emulator.info, tokens["refresh_token"])
    client = make_client(emulator, tokens, refresh=refresher, batch_size=200)
    emulator.control.add_fault(kind="expire_sessions", after_calls=2)
    pages = list(client.query_pages(CONTACT_SOQL))
    ids = [r["Id"] for p in pages for r in p.records]
    assert refresher.calls == 1
    assert len(ids) == pages[0].total_size
    assert sorted(set(ids)) == sorted(live_contact_ids(emulator))
    # One call was refused with 401 and sent again with the new token.
    assert client.calls_made == len(pages) + 1


def test_expired_session_without_refresh_hook_is_a_clear_error(emulator, tokens):
    client = make_client(emulator, tokens)
    emulator.control.add_fault(kind="expire_sessions")
    with pytest.raises(SessionInvalid, match="reconnect"):
        client.describe("Contact")


def test_refresh_that_returns_a_refused_token_fails_after_one_retry(emulator, tokens):
    stale = Credentials(tokens["instance_url"], "00Dbogus!token")
    calls = []

    def refresh(refused: Credentials) -> Credentials:
        calls.append(refused)
        return stale

    client = make_client(emulator, tokens, refresh=refresh)
    emulator.control.add_fault(kind="expire_sessions")
    with pytest.raises(SessionInvalid):
        client.describe("Contact")
    assert len(calls) == 1
    assert client.calls_made == 2


def test_concurrent_calls_on_an_expired_session_refresh_once(emulator, tokens):
    refresher = TokenRefresher(emulator.info, tokens["refresh_token"])
    client = make_client(emulator, tokens, refresh=refresher)
    emulator.control.add_fault(kind="expire_sessions")
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work() -> None:
        start.wait()
        try:
            client.describe("Account")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert refresher.calls == 1


def test_counting_views_count_their_own_calls_and_share_one_refresh(emulator, tokens):
    refresher = TokenRefresher(emulator.info, tokens["refresh_token"])
    client = make_client(emulator, tokens, refresh=refresher, batch_size=200)
    first, second = client.counting_view(), client.counting_view()
    emulator.control.add_fault(kind="status", status=503, times=1, path=r"/sobjects/Account")
    first.describe("Account")  # refused once, then sent again: two requests
    pages = list(second.query_pages(CONTACT_SOQL))
    assert (first.calls_made, second.calls_made) == (2, len(pages))
    assert client.calls_made == 2 + len(pages)  # the client counts every view's calls
    emulator.control.add_fault(kind="expire_sessions")
    first.describe("Contact")  # refused with 401: refreshed, sent again
    second.describe("Contact")  # uses the refreshed token at once
    assert refresher.calls == 1
    assert (first.calls_made, second.calls_made) == (4, len(pages) + 1)
    assert "access_token" not in repr(first) and tokens["access_token"] not in repr(first)


def test_503_is_retried_with_backoff_and_then_succeeds(emulator, tokens):
    waits: list[float] = []
    client = make_client(emulator, tokens, sleep=waits.append)
    emulator.control.add_fault(kind="status", status=503, times=2)
    describe = client.describe("Contact")
    assert describe["name"] == "Contact"
    assert client.calls_made == 3
    assert len(waits) == 2 and all(0 <= w <= client.config.backoff_max_seconds for w in waits)


def test_503_mid_pagination_resumes_from_the_same_locator(emulator, tokens):
    client = make_client(emulator, tokens, batch_size=200)
    emulator.control.add_fault(kind="status", status=503, times=1, path=r"/query/01g")
    ids = [r["Id"] for r in client.query_records(CONTACT_SOQL)]
    assert sorted(set(ids)) == sorted(live_contact_ids(emulator))


def test_dropped_connection_is_retried(emulator, tokens):
    client = make_client(emulator, tokens, batch_size=200)
    emulator.control.add_fault(kind="drop", times=1, path=r"/query")
    ids = [r["Id"] for r in client.query_records(CONTACT_SOQL)]
    assert sorted(set(ids)) == sorted(live_contact_ids(emulator))
    assert client.calls_made == math.ceil(len(ids) / 200) + 1


def test_retries_are_bounded(emulator, tokens):
    client = make_client(emulator, tokens, max_attempts=3)
    emulator.control.add_fault(kind="status", status=500, times=10)
    with pytest.raises(SalesforceUnavailable, match=r"after 3 attempt\(s\): HTTP 500"):
        client.describe("Contact")
    assert client.calls_made == 3


def test_request_limit_exceeded_is_typed_and_never_retried(emulator, tokens):
    client = make_client(emulator, tokens, usage_guard_share=1.0)
    other_tool = make_client(emulator, tokens)
    emulator.control.configure(daily_api_limit=2)
    client.describe("Account")
    other_tool.describe("Contact")  # spends the budget behind the client's back
    with pytest.raises(ApiLimitExceeded, match="REQUEST_LIMIT_EXCEEDED"):
        client.describe("Opportunity")
    assert client.calls_made == 2


def test_a_concurrency_limit_is_backed_off_and_retried_within_the_call(emulator, tokens):
    waits: list[float] = []
    client = make_client(emulator, tokens, sleep=waits.append)
    emulator.control.add_fault(kind="concurrency_limit", times=3)
    assert client.describe("Contact")["name"] == "Contact"
    assert client.calls_made == 4
    cap = client.config.concurrency_backoff_max_seconds
    assert len(waits) == 3 and all(0 <= w <= cap for w in waits)


def test_a_concurrency_limit_that_outlasts_the_backoff_is_a_retryable_error(emulator, tokens):
    client = make_client(emulator, tokens, concurrency_max_attempts=4)
    emulator.control.add_fault(kind="concurrency_limit", limit="ConcurrentRequests", times=10)
    with pytest.raises(ConcurrencyLimitExceeded) as info:
        client.describe("Contact")
    assert not isinstance(info.value, ApiLimitExceeded)  # not "the daily budget is spent"
    assert (info.value.limit, info.value.attempts) == ("ConcurrentRequests", 4)
    assert "ConcurrentRequests" in str(info.value) and "daily" not in str(info.value)
    assert client.calls_made == 4


def test_a_collections_update_refused_for_concurrency_is_sent_again(emulator, tokens):
    client = make_client(emulator, tokens)
    [record_id] = live_contact_ids(emulator)[:1]
    before = emulator.control.update_counts("Contact").get(record_id, 0)
    emulator.control.add_fault(kind="concurrency_limit", times=1, methods=["PATCH"])
    [result] = client.update_collection(
        [{"attributes": {"type": "Contact"}, "id": record_id, "Fit_Score__c": 42.5}]
    )
    assert result["success"] is True
    assert client.calls_made == 2
    assert emulator.control.update_counts("Contact")[record_id] - before == 1


def test_a_transient_failure_after_a_concurrency_refusal_keeps_its_own_cap(emulator, tokens):
    client = make_client(emulator, tokens, max_attempts=2)
    emulator.control.add_faults(
        [
            {"kind": "concurrency_limit", "times": 1},
            {"kind": "status", "status": 503, "times": 5},
        ]
    )
    with pytest.raises(SalesforceUnavailable, match=r"after 2 attempt\(s\): HTTP 503"):
        client.describe("Contact")
    assert client.calls_made == 2


def test_an_unrecognised_request_limit_stops_at_once_and_quotes_the_limit(emulator, tokens):
    client = make_client(emulator, tokens)
    emulator.control.add_fault(
        kind="status",
        status=403,
        error_code="REQUEST_LIMIT_EXCEEDED",
        message="SomeNewLimit Limit exceeded.",
        times=3,
    )
    with pytest.raises(ApiLimitExceeded, match="SomeNewLimit") as info:
        client.describe("Contact")
    assert "daily" not in str(info.value)
    assert client.calls_made == 1


def test_usage_over_the_limit_trips_the_guard_whatever_the_share(emulator, tokens):
    emulator.control.configure(daily_api_limit=4, daily_api_overage=5)
    try:
        for _ in range(5):  # other tools, with no guard, run the org past its limit (5/4)
            make_client(emulator, tokens).describe("Account")
        client = make_client(emulator, tokens, usage_guard_share=1.0)
        client.describe("Contact")  # the first call learns the usage: 6/4
        assert client.limit_info.api_usage == (6, 4)
        assert client.limit_info.api_bursts == (1, 750)  # reported, not counted in the share
        with pytest.raises(ApiUsageGuardTripped, match="6 of its 4 daily API calls") as info:
            client.describe("Contact")
        assert "Stopped before passing" not in str(info.value)
        assert client.calls_made == 1
    finally:
        emulator.control.configure(daily_api_overage=0)


def test_api_bursts_do_not_change_the_daily_share(emulator, tokens):
    emulator.control.configure(daily_api_limit=10, daily_api_overage=5)
    try:
        client = make_client(emulator, tokens, usage_guard_share=0.5)
        for _ in range(4):
            client.describe("Account")
        assert client.limit_info.api_bursts == (0, 750)
        client.describe("Account")  # 4 + 1 = 5 calls, still within half of 10
        with pytest.raises(ApiUsageGuardTripped, match="50%"):
            client.describe("Account")
    finally:
        emulator.control.configure(daily_api_overage=0)


def test_the_usage_read_survives_a_token_refresh(emulator, tokens):
    refresher = TokenRefresher(emulator.info, tokens["refresh_token"])
    emulator.control.configure(daily_api_limit=10)
    client = make_client(emulator, tokens, refresh=refresher, usage_guard_share=0.5)
    for _ in range(4):
        client.describe("Account")
    emulator.control.add_fault(kind="expire_sessions")
    with pytest.raises(ApiUsageGuardTripped):  # 401 refused (not billed), refresh, call 5: stop
        for _ in range(3):
            client.describe("Account")
    assert refresher.calls == 1
    assert client.api_usage == (5, 10)


def test_usage_guard_stops_before_the_share_is_passed(emulator, tokens):
    emulator.control.configure(daily_api_limit=10)
    client = make_client(emulator, tokens, usage_guard_share=0.5)
    for _ in range(5):
        client.describe("Account")
    assert client.api_usage.used == 5 and client.api_usage.total == 10
    with pytest.raises(ApiUsageGuardTripped, match="50%"):
        client.describe("Account")
    assert client.calls_made == 5


def test_api_usage_is_read_from_sforce_limit_info(emulator, tokens):
    emulator.control.configure(daily_api_limit=1234)
    client = make_client(emulator, tokens)
    assert client.api_usage is None
    client.describe("Account")
    client.describe("Contact")
    assert (client.api_usage.used, client.api_usage.total) == (2, 1234)


def test_describe_and_bad_names(emulator, tokens):
    client = make_client(emulator, tokens)
    fields = {f["name"]: f for f in client.describe("Contact")["fields"]}
    assert fields["Fit_Score__c"]["updateable"] is True
    assert fields["MailingAddress"]["type"] == "address"
    with pytest.raises(ValueError, match="not a Salesforce API name"):
        client.describe("Contact/../Account")
    with pytest.raises(SalesforceApiError) as info:
        client.describe("NoSuchObject")
    assert info.value.status == 404 and info.value.error_code == "NOT_FOUND"
    assert client.calls_made == 2


def test_malformed_query_is_a_typed_error_with_the_code(emulator, tokens):
    client = make_client(emulator, tokens)
    with pytest.raises(SalesforceApiError) as info:
        list(client.query_records("SELECT Id, Bogus__c FROM Contact"))
    assert info.value.error_code == "INVALID_FIELD"
    assert client.calls_made == 1


def test_update_collection_reports_per_record_results_in_order(emulator, tokens):
    client = make_client(emulator, tokens)
    good, deleted = live_contact_ids(emulator)[:2]
    emulator.control.mutate({"op": "delete", "object": "Contact", "id": deleted})
    try:
        results = client.update_collection(
            [
                {"attributes": {"type": "Contact"}, "id": good, "Fit_Score__c": 81.5},
                {"attributes": {"type": "Contact"}, "id": deleted, "Fit_Score__c": 12.0},
            ]
        )
    finally:
        emulator.control.mutate({"op": "undelete", "object": "Contact", "id": deleted})
    assert results[0]["success"] is True and results[0]["id"] == good
    assert results[1]["success"] is False
    assert results[1]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    truth = {r["Id"]: r for r in emulator.control.truth("Contact")}
    assert truth[good]["Fit_Score__c"] == 81.5


def test_update_collection_refuses_more_than_200_records_without_calling(emulator, tokens):
    client = make_client(emulator, tokens)
    records = [{"attributes": {"type": "Contact"}, "id": f"003{i:015d}"} for i in range(201)]
    with pytest.raises(ValueError, match="at most 200"):
        client.update_collection(records)
    with pytest.raises(ValueError, match="attributes.type"):
        client.update_collection([{"id": "003000000000000AAA"}])
    assert client.calls_made == 0


def test_without_the_emulator_ca_tls_fails_clearly_and_is_not_retried(emulator, tokens):
    client = make_client(emulator, tokens, ca_bundle=None)
    with pytest.raises(TlsVerificationFailed, match="SALESFORCE_CA_BUNDLE"):
        client.describe("Account")
    assert client.calls_made == 1


def test_tokens_never_appear_in_reprs_or_errors(emulator, tokens):
    client = make_client(emulator, tokens)
    creds = Credentials(tokens["instance_url"], tokens["access_token"])
    assert tokens["access_token"] not in repr(client)
    assert tokens["access_token"] not in repr(creds)
    emulator.control.add_fault(kind="expire_sessions")
    with pytest.raises(SessionInvalid) as info:
        client.describe("Contact")
    assert tokens["access_token"] not in str(info.value)


def test_batch_size_is_validated():
    with pytest.raises(ValueError, match="between 200 and 2000"):
        ClientConfig(batch_size=100)


def test_simple_salesforce_session_subclass_is_a_requests_session():
    from gtm_pipeline.salesforce.http import PinnedSession

    assert isinstance(PinnedSession("/nonexistent"), requests.Session)
