"""The daily API budget and the per-endpoint call counters.

The budget is what `Sforce-Limit-Info: api-usage=USED/TOTAL` reports and what ends in 403
`REQUEST_LIMIT_EXCEEDED` ("TotalRequests Limit exceeded."); the counters are for tests and
benchmarks that need to know how many calls a connector really made (control calls are never
counted in either).

Salesforce lets an org run over its daily limit for a while, so the header can show USED above
TOTAL, with an `api-bursts` element (`api-usage=110018/100000; api-bursts=1/750`, as documented).
`overage` models that: that many calls beyond the limit are still served, and while it is set the
header carries `api-bursts=B/750` (B is 1 once usage passed the limit, else 0; the emulator does
not model Salesforce's monthly accounting of bursts, only the header's shape).

The concurrency limits Salesforce reports with the same code (`ConcurrentPerOrgLongTxn Limit
exceeded.`) are not a budget: the `concurrency_limit` fault kind produces them.
"""

from __future__ import annotations

import threading
from collections import Counter

from gtm_pipeline.emulator.errors import EmulatorError

CALL_KINDS = (
    "query",
    "queryAll",
    "query_more",
    "describe",
    "composite",
    "token",
    "authorize",
    "revoke",
    "other",
)
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
REQUEST_LIMIT_STATUS = 403
CONCURRENCY_MESSAGES = {
    "ConcurrentPerOrgLongTxn": "ConcurrentPerOrgLongTxn Limit exceeded.",
    "ConcurrentRequests": "ConcurrentRequests (Concurrent API Requests) Limit exceeded",
}
"""Concurrency limits and the messages Salesforce refuses with (as its help articles quote them),
under the same REQUEST_LIMIT_EXCEEDED code as the daily limit."""
DEFAULT_CONCURRENCY_LIMIT = "ConcurrentPerOrgLongTxn"
BURST_ENTITLEMENT = 750


def limit_exceeded() -> EmulatorError:
    return EmulatorError(
        REQUEST_LIMIT_STATUS, REQUEST_LIMIT_EXCEEDED, "TotalRequests Limit exceeded."
    )


class ApiBudget:
    """Counts data API calls against a limit; a call past the limit (and its overage) is refused,
    not counted."""

    def __init__(self, limit: int, overage: int = 0) -> None:
        _check_non_negative(limit, overage)
        self._lock = threading.Lock()
        self._limit = limit
        self._overage = overage
        self._used = 0

    def consume(self) -> tuple[int, int]:
        """Count one call and return (used, limit); EmulatorError 403 when the budget is spent."""
        with self._lock:
            if self._used >= self._limit + self._overage:
                raise limit_exceeded()
            self._used += 1
            return self._used, self._limit

    def limit_info(self, used: int, limit: int) -> str:
        """The `Sforce-Limit-Info` value of a call that left usage at `used` of `limit`."""
        header = f"api-usage={used}/{limit}"
        with self._lock:
            if self._overage:
                header += f"; api-bursts={int(used > limit)}/{BURST_ENTITLEMENT}"
        return header

    def set_overage(self, overage: int) -> None:
        _check_non_negative(0, overage)
        with self._lock:
            self._overage = overage

    def set_limit(self, limit: int) -> None:
        _check_non_negative(limit, 0)
        with self._lock:
            self._limit = limit

    def reset(self) -> None:
        with self._lock:
            self._used = 0

    @property
    def overage(self) -> int:
        return self._overage

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"used": self._used, "limit": self._limit}


def _check_non_negative(limit: int, overage: int) -> None:
    if limit < 0:
        raise ValueError("the daily API limit cannot be negative")
    if overage < 0:
        raise ValueError("the daily API overage cannot be negative")


class CallStats:
    """How many requests reached each endpoint kind, faults and refusals included.

    Kinds beyond CALL_KINDS (the Bulk API's `bulk_create`, `bulk_job`, `bulk_results`) appear
    once they have been called.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            calls = {kind: self._counts.get(kind, 0) for kind in CALL_KINDS}
            calls.update({k: v for k, v in self._counts.items() if k not in calls})
        return {"calls": calls, "total": sum(calls.values())}
