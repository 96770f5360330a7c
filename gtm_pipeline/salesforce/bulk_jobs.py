"""Bulk API 2.0 query jobs on top of `SalesforceClient`: create, poll, read CSV result sets.

Every call goes through `SalesforceClient.request`, so Bulk calls share the REST calls' CA
pinning, usage guard, transient retries, one refresh on 401 and call count. simple-salesforce's
own `sf.bulk2` is not used: its calls skip `Sforce-Limit-Info` (the usage guard would go blind),
its wait loop sleeps up to 24 hours with no way to bound or inject it, and it decodes each result
set to `str` when pandas/pyarrow want the bytes.

Polling (the first check at once, the next after 0.2 s) backs off exponentially from
`initial_seconds` to `max_interval_seconds` and gives up after `timeout_seconds` (the job is
aborted, then `BulkJobFailed`). A job that ends `Failed` or `Aborted` raises `BulkJobFailed`; a
create call refused because the org has no Bulk access (or Bulk cannot run the query) raises
`BulkUnavailable`. Both mean "read it through REST instead".
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.errors import (
    BulkJobFailed,
    BulkUnavailable,
    SalesforceApiError,
    SalesforceClientError,
)

JOBS_PATH = "jobs/query"
DEFAULT_MAX_RECORDS = 25_000
"""Records per result set asked for. A sync holds a few sets at once (one downloading, one being
gated, one loading); at 50,000 its peak memory grew 21% from 100,000 to 1,000,000 Contacts, at
25,000 13%, for one more call per 25,000 records."""
COMPLETE = "JobComplete"
ENDED = frozenset({"Failed", "Aborted"})
# errorCodes with which a create call says "not through Bulk" (feature, permission, query shape).
_REFUSAL_CODES = frozenset(
    {
        "API_ERROR",
        "FEATURENOTENABLED",
        "FUNCTIONALITY_NOT_ENABLED",
        "API_DISABLED_FOR_ORG",
        "INSUFFICIENT_ACCESS",
        "INVALIDJOB",
    }
)
_CSV_HEADERS = {"Accept": "text/csv", "Accept-Encoding": "gzip"}


@dataclass(frozen=True)
class BulkPollPolicy:
    """How patiently to wait for a job: exponential backoff, bounded in total."""

    initial_seconds: float = 0.2
    max_interval_seconds: float = 10.0
    timeout_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.initial_seconds < 0 or self.max_interval_seconds < self.initial_seconds:
            raise ValueError("poll intervals must be 0 or more, the maximum not below the first")
        if self.timeout_seconds <= 0:
            raise ValueError("the Bulk poll timeout must be positive")

    def intervals(self) -> Iterator[float]:
        interval = self.initial_seconds
        while True:
            yield interval
            interval = min(self.max_interval_seconds, max(interval * 2, 0.05))


@dataclass(frozen=True)
class BulkJob:
    """A query job as the API reports it."""

    id: str
    state: str
    operation: str
    sobject: str
    error_message: str | None = None
    records_processed: int = 0

    @classmethod
    def from_json(cls, body: Any) -> BulkJob:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise SalesforceClientError("Salesforce answered a Bulk job call without a job id")
        return cls(
            id=body["id"],
            state=str(body.get("state", "")),
            operation=str(body.get("operation", "")),
            sobject=str(body.get("object", "")),
            error_message=body.get("errorMessage") or None,
            records_processed=int(body.get("numberRecordsProcessed") or 0),
        )


@dataclass(frozen=True)
class ResultSet:
    """One locator page of a job's results: CSV bytes (header row first) and its record count."""

    csv: bytes
    records: int
    number: int
    last: bool


def _refusal(exc: SalesforceApiError) -> bool:
    if exc.status in (403, 404):
        return True
    return exc.status == 400 and exc.error_code.upper() in _REFUSAL_CODES


class BulkQuery:
    """Bulk API 2.0 query jobs for one client."""

    def __init__(
        self,
        client: SalesforceClient,
        poll: BulkPollPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.poll = poll or BulkPollPolicy()
        self._sleep = sleep
        self._clock = clock

    def create(self, soql: str, *, include_deleted: bool = False) -> BulkJob:
        """Start a query (`queryAll` with `include_deleted`); BulkUnavailable if Bulk refuses."""
        body = {
            "operation": "queryAll" if include_deleted else "query",
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        try:
            response = self.client.request("POST", JOBS_PATH, json=body)
        except SalesforceApiError as exc:
            if _refusal(exc):
                raise BulkUnavailable(
                    f"Bulk API 2.0 refused the query job (HTTP {exc.status} {exc.error_code}: "
                    f"{exc.message})"
                ) from None
            raise
        return BulkJob.from_json(response.json())

    def status(self, job_id: str) -> BulkJob:
        return BulkJob.from_json(self.client.request("GET", f"{JOBS_PATH}/{job_id}").json())

    def wait(self, job_id: str) -> BulkJob:
        """Poll until the job completes; BulkJobFailed when it fails, is aborted or times out."""
        deadline = self._clock() + self.poll.timeout_seconds
        for interval in self.poll.intervals():
            job = self.status(job_id)
            if job.state == COMPLETE:
                return job
            if job.state in ENDED:
                raise BulkJobFailed(job.id, job.state, job.error_message or "no reason given")
            if self._clock() + interval > deadline:
                self.abort(job_id)
                raise BulkJobFailed(
                    job_id,
                    "TimedOut",
                    f"not complete after {self.poll.timeout_seconds:g} s (state {job.state}); "
                    "aborted",
                )
            self._sleep(interval)
        raise AssertionError("unreachable: intervals() never ends")

    def result_sets(
        self, job_id: str, *, max_records: int = DEFAULT_MAX_RECORDS
    ) -> Iterator[ResultSet]:
        """The results of a completed job, one locator page at a time (never all in memory)."""
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        locator: str | None = None
        number = 0
        while True:
            params: dict[str, Any] = {"maxRecords": max_records}
            if locator:
                params["locator"] = locator
            response = self.client.request(
                "GET", f"{JOBS_PATH}/{job_id}/results", params=params, headers=_CSV_HEADERS
            )
            locator = response.headers.get("Sforce-Locator") or "null"
            last = locator == "null"
            number += 1
            records = int(response.headers.get("Sforce-NumberOfRecords") or 0)
            # Null bytes have been seen in real results and break CSV readers; the REST path
            # removes NUL from its JSON values too (`client.without_nul`).
            yield ResultSet(response.content.replace(b"\x00", b""), records, number, last)
            if last:
                return

    def abort(self, job_id: str) -> None:
        """Best effort: a job that finished meanwhile cannot be aborted, which is fine."""
        with contextlib.suppress(SalesforceApiError):
            self.client.request("PATCH", f"{JOBS_PATH}/{job_id}", json={"state": "Aborted"})

    def delete(self, job_id: str) -> None:
        """Best effort clean-up of a finished job (Salesforce also deletes them after 7 days)."""
        with contextlib.suppress(SalesforceApiError):
            self.client.request("DELETE", f"{JOBS_PATH}/{job_id}")

    def run(
        self, soql: str, *, include_deleted: bool = False, max_records: int = DEFAULT_MAX_RECORDS
    ) -> Iterator[ResultSet]:
        """Create, wait, stream every result set, then delete the job."""
        job = self.create(soql, include_deleted=include_deleted)
        self.wait(job.id)
        yield from self.result_sets(job.id, max_records=max_records)
        self.delete(job.id)
