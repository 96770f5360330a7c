"""The daily API budget and the per-endpoint call counters.

The budget is what `Sforce-Limit-Info: api-usage=USED/TOTAL` reports and what ends in 403
`REQUEST_LIMIT_EXCEEDED`; the counters are for tests and benchmarks that need to know how many
calls a connector really made (control calls are never counted in either).
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


def limit_exceeded() -> EmulatorError:
    return EmulatorError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


class ApiBudget:
    """Counts data API calls against a limit; a call over the limit is refused, not counted."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("the daily API limit cannot be negative")
        self._lock = threading.Lock()
        self._limit = limit
        self._used = 0

    def consume(self) -> tuple[int, int]:
        """Count one call and return (used, limit); EmulatorError 403 when the budget is spent."""
        with self._lock:
            if self._used >= self._limit:
                raise limit_exceeded()
            self._used += 1
            return self._used, self._limit

    def set_limit(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("the daily API limit cannot be negative")
        with self._lock:
            self._limit = limit

    def reset(self) -> None:
        with self._lock:
            self._used = 0

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"used": self._used, "limit": self._limit}


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
