"""Latency profiles: how long the emulator takes to answer, so a benchmark waits as it would on
Salesforce instead of measuring only CPU.

A profile has five numbers, all zero in `none` (the default: no delay, responses unchanged):
    - `call_ms`: added to every data API call (everything under /services/data/vXX.X/: query,
      queryAll and queryMore pages, describe, sObject and Collections writes, and the Bulk API 2.0
      create, poll and results calls), the round trip and fixed server cost of one request;
    - `json_ms_per_kb` / `csv_ms_per_kb`: added per KB (1,024 bytes) of the response body, JSON
      for the REST answers, CSV for Bulk result sets: the cost of producing and moving it. A
      gzip body counts at its uncompressed size (its trailer says it), so asking for gzip does
      not make the same results cheaper;
    - `bulk_base_seconds` + `bulk_seconds_per_100k_rows`: how long a Bulk API 2.0 query job runs.
      While a profile sets either, a job stays `UploadComplete`/`InProgress` however often it is
      polled: its query runs once `bulk_base_seconds` have passed, and it is `JobComplete` once
      `bulk_base_seconds + bulk_seconds_per_100k_rows * rows / 100,000` have (the config's
      `bulk_job_polls` and `bulk_job_seconds` apply only when a profile leaves both at zero).

`realistic`, and why. Salesforce publishes no response times; these are the numbers of the
measurement in issue 23 (an independent Salesforce implementation given this profile), checked
against what real orgs do (a REST page of 2,000 records in about 0.3-1.5 s, Bulk jobs seconds to
minutes before their results can be read):
    - 100 ms a call: a round trip to a remote org plus Salesforce's fixed work per request;
    - 0.6 ms per KB of JSON: a 2,000-Contact page is about 0.9 MB with 11 fields and 2 MB with
      all 33 of the emulator's, so 0.6-1.3 s with the call, inside the 0.3-1.5 s above;
    - 0.05 ms per KB of CSV: result sets are files the job already wrote, so reading them is
      mostly transfer (about 20 MB/s); a 50,000-row set of 11 fields (about 11 MB) takes 0.65 s;
    - Bulk jobs, 10 s + 2 s per 100,000 rows: the 10 s is the issue's floor (queueing and
      starting a job: even a small job takes seconds); the row term makes the 100,000-Contact job
      12 s and a 1,000,000-row one 30 s, so one big job costs more than several smaller jobs run
      side by side, as Bulk jobs run in parallel on Salesforce's side.

Delays are `asyncio.sleep`s after the handler produced the response (`app.WireFaults`), outside
every lock, so concurrent requests wait in parallel, as Salesforce serves them. OAuth and the
control API are never delayed. Bulk job durations use the emulator's clock, like the other
Bulk settings, so a test with a manual clock moves them on by advancing it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

KB = 1024
ROWS_PER_STEP = 100_000

# The most each number may be: enough for any slow org, small enough that a typo cannot hang a
# test run for hours.
LIMITS = {
    "call_ms": 120_000.0,
    "json_ms_per_kb": 1_000.0,
    "csv_ms_per_kb": 1_000.0,
    "bulk_base_seconds": 3_600.0,
    "bulk_seconds_per_100k_rows": 3_600.0,
}


class LatencyProfileError(ValueError):
    """A profile that cannot be understood; the message says which field is wrong."""


@dataclass(frozen=True)
class LatencyProfile:
    """The numbers of one profile; `name` is a preset's name, or `custom` for chosen numbers."""

    name: str = "none"
    call_ms: float = 0.0
    json_ms_per_kb: float = 0.0
    csv_ms_per_kb: float = 0.0
    bulk_base_seconds: float = 0.0
    bulk_seconds_per_100k_rows: float = 0.0

    @property
    def delays_responses(self) -> bool:
        return self.call_ms > 0 or self.json_ms_per_kb > 0 or self.csv_ms_per_kb > 0

    @property
    def times_bulk_jobs(self) -> bool:
        return self.bulk_base_seconds > 0 or self.bulk_seconds_per_100k_rows > 0

    def response_delay(self, body_bytes: int, content_type: str) -> float:
        """Seconds to hold back one data API response of `body_bytes` bytes."""
        per_kb = self.csv_ms_per_kb if "csv" in content_type.lower() else self.json_ms_per_kb
        return (self.call_ms + per_kb * body_bytes / KB) / 1000.0

    def body_delay(self, body_tail: bytes, body_bytes: int, headers: Mapping[str, str]) -> float:
        """`response_delay` for a body as sent: its headers name its type and encoding, and a
        gzip body (one member, as the emulator makes it) ends with its size uncompressed."""
        size = body_bytes
        if headers.get("content-encoding", "").lower() == "gzip" and len(body_tail) == 4:
            size = int.from_bytes(body_tail, "little")
        return self.response_delay(size, headers.get("content-type", ""))

    def bulk_job_duration(self, rows: int) -> float:
        """Seconds from a job's creation until it completes, for a query of `rows` rows."""
        return self.bulk_base_seconds + self.bulk_seconds_per_100k_rows * rows / ROWS_PER_STEP

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


NO_LATENCY = LatencyProfile()
PROFILES: dict[str, LatencyProfile] = {
    "none": NO_LATENCY,
    "realistic": LatencyProfile(
        name="realistic",
        call_ms=100.0,
        json_ms_per_kb=0.6,
        csv_ms_per_kb=0.05,
        bulk_base_seconds=10.0,
        bulk_seconds_per_100k_rows=2.0,
    ),
}
PROFILE_NAMES = tuple(PROFILES)


def profile_named(name: str) -> LatencyProfile:
    if name not in PROFILES:
        raise LatencyProfileError(f"latency 'profile' must be one of {', '.join(PROFILE_NAMES)}")
    return PROFILES[name]


def _number(spec: Mapping[str, Any], key: str) -> float:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LatencyProfileError(f"latency field {key!r} must be a number")
    if not 0 <= value <= LIMITS[key]:
        raise LatencyProfileError(f"latency field {key!r} must be between 0 and {LIMITS[key]:g}")
    return float(value)


def parse_profile(spec: Any) -> LatencyProfile:
    """A profile from the control API's JSON: `{"profile": "realistic"}`, chosen numbers
    (`{"call_ms": 20, "bulk_base_seconds": 0.5}`, the others zero), or a preset with some numbers
    changed. Anything unknown or out of range is refused with a message naming the field."""
    if not isinstance(spec, Mapping):
        raise LatencyProfileError("a latency profile must be a JSON object")
    unknown = sorted(set(spec) - {"profile", *LIMITS})
    if unknown:
        raise LatencyProfileError(f"unknown latency field(s): {', '.join(map(str, unknown))}")
    name = spec.get("profile", "none")
    if not isinstance(name, str):
        raise LatencyProfileError(f"latency 'profile' must be one of {', '.join(PROFILE_NAMES)}")
    profile = profile_named(name)
    numbers = {key: _number(spec, key) for key in LIMITS if key in spec}
    if not numbers:
        return profile
    return replace(profile, name="custom", **numbers)
