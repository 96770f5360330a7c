"""`Sforce-Limit-Info` and REQUEST_LIMIT_EXCEEDED messages, in the forms Salesforce documents."""

from __future__ import annotations

import pytest

from gtm_pipeline.salesforce.client import ClientConfig
from gtm_pipeline.salesforce.limits import (
    LimitInfo,
    RequestLimit,
    limit_name,
    over_share,
    parse_limit_info,
    request_limit_kind,
)


@pytest.mark.parametrize(
    ("header", "usage", "bursts", "apps"),
    [
        # The REST API Developer Guide's examples, old and new.
        ("api-usage=18/5000", (18, 5000), None, []),
        ("api-usage=10018/100000", (10018, 100000), None, []),
        ("api-usage=10018/100000; api-bursts=1/750", (10018, 100000), (1, 750), []),
        ("api-usage=110018/100000; api-bursts=1/750", (110018, 100000), (1, 750), []),
        (
            "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)",
            (25, 5000),
            None,
            [("sample-connected-app", 17, 250)],
        ),
        # The same elements in another order: Salesforce promises none.
        (
            "per-app-api-usage=17/250(appName=sample-app); api-bursts=0/750; api-usage=25/5000",
            (25, 5000),
            (0, 750),
            [("sample-app", 17, 250)],
        ),
        ("api-usage=3/10;api-bursts=0/750", (3, 10), (0, 750), []),
    ],
)
def test_every_documented_form_is_read_element_by_element(header, usage, bursts, apps) -> None:
    info = parse_limit_info(header)
    assert info.api_usage == usage
    assert info.api_bursts == bursts
    assert [(a.name, a.used, a.total) for a in info.per_app] == apps


@pytest.mark.parametrize(
    "header",
    [None, "", "api-usage=", "api-usage=12", "api-usage=a/b", "api-usage=-1/5", "garbage;;"],
)
def test_a_header_that_cannot_be_read_gives_no_usage_and_never_raises(header) -> None:
    assert parse_limit_info(header) == LimitInfo()


def test_a_per_app_figure_is_never_taken_for_the_daily_usage() -> None:
    info = parse_limit_info("per-app-api-usage=249/250(appName=busy-app)")
    assert info.api_usage is None
    assert [a.name for a in info.per_app] == ["busy-app"]


def test_the_metadata_form_names_every_element() -> None:
    info = parse_limit_info(
        "api-usage=110018/100000; api-bursts=1/750; per-app-api-usage=17/250(appName=a)"
    )
    assert info.as_dict() == {
        "api_usage": {"used": 110018, "total": 100000},
        "api_bursts": {"used": 1, "total": 750},
        "per_app_api_usage": [{"app": "a", "used": 17, "total": 250}],
    }
    assert LimitInfo().as_dict() == {
        "api_usage": None,
        "api_bursts": None,
        "per_app_api_usage": [],
    }


@pytest.mark.parametrize("share", [0.01, 0.5, 0.8, 1.0])
def test_usage_above_the_limit_is_over_every_share(share) -> None:
    usage = parse_limit_info("api-usage=110018/100000; api-bursts=1/750").api_usage
    assert usage is not None and over_share(usage, share)


def test_a_share_above_one_lets_runs_use_the_overage_salesforce_allows() -> None:
    usage = parse_limit_info("api-usage=110018/100000; api-bursts=1/750").api_usage
    assert usage is not None
    assert not over_share(usage, 1.2)
    assert over_share(usage, 1.1)
    assert ClientConfig(usage_guard_share=1.2).usage_guard_share == 1.2


@pytest.mark.parametrize("share", [0, -0.5])
def test_a_share_of_zero_or_less_is_refused(share) -> None:
    with pytest.raises(ValueError, match="usage_guard_share"):
        ClientConfig(usage_guard_share=share)


def test_usage_below_the_share_is_not_over_it() -> None:
    usage = parse_limit_info("api-usage=10018/100000; api-bursts=1/750").api_usage
    assert usage is not None
    assert not over_share(usage, 0.8)
    assert over_share(usage, 0.1)


@pytest.mark.parametrize(
    ("message", "kind", "name"),
    [
        ("TotalRequests Limit exceeded.", RequestLimit.DAILY, "TotalRequests"),
        (
            "ConcurrentPerOrgLongTxn Limit exceeded.",
            RequestLimit.CONCURRENCY,
            "ConcurrentPerOrgLongTxn",
        ),
        (
            "ConcurrentRequests (Concurrent API Requests) Limit exceeded",
            RequestLimit.CONCURRENCY,
            "ConcurrentRequests",
        ),
        ("SomeNewLimit Limit exceeded.", RequestLimit.UNKNOWN, "SomeNewLimit"),
        ("", RequestLimit.UNKNOWN, ""),
        ("  Totalrequests Limit exceeded.", RequestLimit.UNKNOWN, "Totalrequests"),
    ],
)
def test_the_message_says_which_limit_was_hit(message, kind, name) -> None:
    assert request_limit_kind(message) is kind
    assert limit_name(message) == name
