"""Latency profiles as data: the presets' numbers, delays by body size, Bulk job durations, and
the control API's JSON form with its refusals."""

from __future__ import annotations

import gzip
import math

import pytest

from gtm_pipeline.emulator.latency import (
    NO_LATENCY,
    PROFILE_NAMES,
    PROFILES,
    LatencyProfile,
    LatencyProfileError,
    parse_profile,
    profile_named,
)

REALISTIC = PROFILES["realistic"]


def test_none_is_the_default_and_does_nothing() -> None:
    assert LatencyProfile() == NO_LATENCY == profile_named("none")
    assert not NO_LATENCY.delays_responses and not NO_LATENCY.times_bulk_jobs
    assert NO_LATENCY.response_delay(5_000_000, "application/json") == 0.0
    assert PROFILE_NAMES == ("none", "realistic")


def test_realistic_numbers() -> None:
    assert REALISTIC.to_json() == {
        "name": "realistic",
        "call_ms": 100.0,
        "json_ms_per_kb": 0.6,
        "csv_ms_per_kb": 0.05,
        "bulk_base_seconds": 10.0,
        "bulk_seconds_per_100k_rows": 2.0,
    }
    # a 2,000-record page of about 0.9 MB: 0.1 s + 0.6 ms x 900 KB
    json_page = REALISTIC.response_delay(900 * 1024, "application/json;charset=UTF-8")
    assert math.isclose(json_page, 0.64)
    assert math.isclose(REALISTIC.response_delay(10_000 * 1024, "text/csv; charset=UTF-8"), 0.6)
    assert REALISTIC.bulk_job_duration(0) == 10.0
    assert REALISTIC.bulk_job_duration(100_000) == 12.0
    assert REALISTIC.bulk_job_duration(1_000_000) == 30.0


def test_a_count_answer_costs_about_the_call_alone() -> None:
    body = b'{"totalSize":1000000,"done":true,"records":[]}'  # SELECT COUNT(), whatever it counts
    delay = REALISTIC.response_delay(len(body), "application/json;charset=UTF-8")
    assert REALISTIC.call_ms / 1000 < delay < (REALISTIC.call_ms + 0.1) / 1000


def test_a_gzip_body_counts_at_its_uncompressed_size() -> None:
    csv_body = b'"Id","Email"\n' + b'"003000000000001AAA","a@example.com"\n' * 30_000
    packed = gzip.compress(csv_body, 5)
    assert len(packed) < len(csv_body) / 10
    profile = LatencyProfile(csv_ms_per_kb=1.0)
    gzipped = {"content-type": "text/csv; charset=UTF-8", "content-encoding": "gzip"}
    plain = {"content-type": "text/csv; charset=UTF-8"}
    expected = profile.response_delay(len(csv_body), "text/csv")
    assert profile.body_delay(packed[-4:], len(packed), gzipped) == expected
    assert profile.body_delay(csv_body[-4:], len(csv_body), plain) == expected


def test_chosen_numbers_start_from_zero_or_change_a_preset() -> None:
    small = parse_profile({"call_ms": 20, "bulk_base_seconds": 0.5})
    assert small == LatencyProfile(name="custom", call_ms=20.0, bulk_base_seconds=0.5)
    assert small.delays_responses and small.times_bulk_jobs
    changed = parse_profile({"profile": "realistic", "bulk_base_seconds": 1})
    assert changed.name == "custom" and changed.bulk_base_seconds == 1.0
    assert changed.call_ms == REALISTIC.call_ms
    assert parse_profile({"profile": "realistic"}) == REALISTIC
    assert parse_profile({}) == NO_LATENCY


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([], "must be a JSON object"),
        ({"profile": "slow"}, "'profile' must be one of none, realistic"),
        ({"profile": 1}, "'profile' must be one of"),
        ({"call_seconds": 1}, "unknown latency field(s): call_seconds"),
        ({"call_ms": -1}, "'call_ms' must be between 0 and 120000"),
        ({"call_ms": True}, "'call_ms' must be a number"),
        ({"json_ms_per_kb": "1"}, "'json_ms_per_kb' must be a number"),
        ({"csv_ms_per_kb": float("nan")}, "'csv_ms_per_kb' must be a number"),
        ({"bulk_base_seconds": 3601}, "'bulk_base_seconds' must be between 0 and 3600"),
    ],
)
def test_bad_profiles_are_refused_with_the_field_named(spec: object, message: str) -> None:
    with pytest.raises(LatencyProfileError) as caught:
        parse_profile(spec)
    assert message in str(caught.value)
