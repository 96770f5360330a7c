"""Fault injection over the wire: error statuses, dropped connections, latency, session expiry."""

from __future__ import annotations

import time

import pytest
import requests

from gtm_pipeline.emulator.testing import EmulatorControlError
from gtm_pipeline_tests.support.emulator import Api, connect

DESCRIBE = "/sobjects/Account/describe"


def test_status_fault_for_the_next_n_matching_requests(api: Api, emulator) -> None:
    rule = emulator.control.add_fault(kind="status", status=503, path=r"/query/01g", times=2)
    assert rule["times"] == 2 and rule["status"] == 503
    first = api.query("SELECT Id FROM Contact", batch_size=200)
    assert first.status_code == 200  # the pattern only matches query_more
    statuses = [api.more(first.json()["nextRecordsUrl"]).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert emulator.control.faults() == []  # spent rules disappear


def test_status_fault_bodies_follow_the_reference(api: Api, emulator) -> None:
    emulator.control.add_faults(
        [
            {"kind": "status", "status": 503, "times": 1},
            {"kind": "status", "status": 500, "times": 1},
        ]
    )
    unavailable = api.get(DESCRIBE)
    assert unavailable.status_code == 503
    assert unavailable.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert set(unavailable.json()[0]) == {"message", "errorCode"}
    internal = api.get(DESCRIBE)
    assert internal.status_code == 500
    assert internal.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    assert api.get(DESCRIBE).status_code == 200


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        (None, "ConcurrentPerOrgLongTxn Limit exceeded."),
        ("ConcurrentRequests", "ConcurrentRequests (Concurrent API Requests) Limit exceeded"),
    ],
)
def test_a_concurrency_limit_fault_answers_like_salesforce(
    api: Api, emulator, limit, message
) -> None:
    spec = {"kind": "concurrency_limit", "times": 1, **({"limit": limit} if limit else {})}
    rule = emulator.control.add_fault(spec)
    assert (rule["status"], rule["error_code"], rule["message"]) == (
        403,
        "REQUEST_LIMIT_EXCEEDED",
        message,
    )
    refused = api.get(DESCRIBE)
    assert refused.status_code == 403
    assert refused.json() == [{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert api.get(DESCRIBE).status_code == 200  # short-lived: the next call goes through


def test_a_concurrency_limit_fault_takes_only_known_limits(emulator) -> None:
    with pytest.raises(EmulatorControlError, match="limit") as caught:
        emulator.control.add_fault(kind="concurrency_limit", times=1, limit="TotalRequests")
    assert caught.value.status == 400
    with pytest.raises(EmulatorControlError, match="unknown field"):
        emulator.control.add_fault(kind="concurrency_limit", times=1, status=503)


def test_the_org_can_run_over_its_daily_limit_as_the_header_documents(api: Api, emulator) -> None:
    emulator.control.configure(daily_api_limit=2, daily_api_overage=1)
    assert emulator.control.config()["daily_api_overage"] == 1
    headers = [api.get(DESCRIBE).headers["Sforce-Limit-Info"] for _ in range(3)]
    assert headers == [
        "api-usage=1/2; api-bursts=0/750",
        "api-usage=2/2; api-bursts=0/750",
        "api-usage=3/2; api-bursts=1/750",
    ]
    refused = api.get(DESCRIBE)
    assert refused.status_code == 403
    assert refused.json()[0]["message"] == "TotalRequests Limit exceeded."
    emulator.control.configure(daily_api_overage=0, reset_usage=True)
    assert api.get(DESCRIBE).headers["Sforce-Limit-Info"] == "api-usage=1/2"


def test_a_negative_overage_is_refused(emulator) -> None:
    with pytest.raises(EmulatorControlError, match="daily_api_overage"):
        emulator.control.configure(daily_api_overage=-1)


def test_faulted_calls_are_counted_but_not_billed(api: Api, emulator) -> None:
    emulator.control.add_fault(kind="status", status=503, times=1)
    assert api.get(DESCRIBE).status_code == 503
    assert api.get(DESCRIBE).headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    assert emulator.control.stats()["calls"]["describe"] == 2


def test_probability_faults_are_deterministic_with_a_seed(api: Api, emulator) -> None:
    def pattern() -> list[int]:
        emulator.control.clear_faults()
        emulator.control.configure(fault_seed=1234)
        emulator.control.add_fault(kind="status", status=503, probability=0.5)
        return [api.get(DESCRIBE).status_code for _ in range(16)]

    first, second = pattern(), pattern()
    assert first == second
    assert {200, 503} == set(first)


def test_methods_filter(api: Api, emulator) -> None:
    emulator.control.add_fault(kind="status", status=503, methods=["patch"], times=1)
    assert api.get(DESCRIBE).status_code == 200
    assert api.patch("/composite/sobjects", {"records": []}).status_code == 503


def test_faults_can_hit_the_token_endpoint(api: Api, emulator) -> None:
    emulator.control.add_fault(kind="status", status=503, path="^/services/oauth2/token$", times=1)
    response = api.session.post(
        emulator.info["login_url"] + "/services/oauth2/token",
        data={"grant_type": "refresh_token"},
        timeout=10,
    )
    assert response.status_code == 503


def test_dropped_connection_mid_response(api: Api, emulator) -> None:
    emulator.control.add_fault(kind="drop", path=r"/query", times=1)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        api.query("SELECT Id, Email FROM Contact")
    # The connection breaks after the headers went out: a streaming reader sees part of a body.
    emulator.control.add_fault(kind="drop", path=r"/query", times=1)
    response = api.get("/query", params={"q": "SELECT Id FROM Contact"}, stream=True)
    assert response.status_code == 200
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        response.content  # noqa: B018 - reading is the point
    assert api.query("SELECT Id FROM Contact").status_code == 200


def test_drop_of_an_empty_body_still_breaks(api: Api, emulator) -> None:
    emulator.control.add_fault(kind="drop", path="^/services/oauth2/revoke$", times=1)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        api.session.post(
            emulator.info["login_url"] + "/services/oauth2/revoke",
            data={"token": api.access_token},
            timeout=10,
        )


def test_latency(api: Api, emulator) -> None:
    emulator.control.add_fault(kind="latency", seconds=0.3, times=1)
    started = time.perf_counter()
    assert api.get(DESCRIBE).status_code == 200
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    api.get(DESCRIBE)
    assert time.perf_counter() - started < 0.3


def test_expire_sessions_now(api: Api, emulator) -> None:
    assert api.get(DESCRIBE).status_code == 200
    emulator.control.add_fault(kind="expire_sessions")
    assert api.get(DESCRIBE).status_code == 401
    assert connect(emulator).get(DESCRIBE).status_code == 200  # new sessions work


def test_expire_sessions_after_n_calls(api: Api, emulator) -> None:
    emulator.control.add_fault(kind="expire_sessions", after_calls=2)
    statuses = [api.get(DESCRIBE).status_code for _ in range(4)]
    assert statuses == [200, 200, 401, 401]
    assert emulator.control.faults() == []


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"kind": "explode"}, "kind"),
        ({"kind": "status", "status": 503}, "times"),
        ({"kind": "status", "times": 1, "probability": 0.5}, "not both"),
        ({"kind": "status", "times": 0}, "times"),
        ({"kind": "status", "times": 1, "status": 200}, "status"),
        ({"kind": "status", "probability": 1.5}, "probability"),
        ({"kind": "latency", "times": 1, "seconds": -1}, "seconds"),
        ({"kind": "drop", "times": 1, "path": "("}, "regular expression"),
        ({"kind": "drop", "times": 1, "extra": True}, "unknown field"),
        ({"kind": "drop", "times": 1, "methods": "GET"}, "methods"),
    ],
)
def test_bad_fault_rules_are_refused_whole(emulator, rule, message: str) -> None:
    with pytest.raises(EmulatorControlError, match=message) as caught:
        emulator.control.add_faults([{"kind": "drop", "times": 1}, rule])
    assert caught.value.status == 400
    assert emulator.control.faults() == []


def test_clear_faults(api: Api, emulator) -> None:
    emulator.control.add_fault(kind="status", status=503, probability=1.0)
    assert api.get(DESCRIBE).status_code == 503
    assert emulator.control.clear_faults() == 1
    assert api.get(DESCRIBE).status_code == 200
