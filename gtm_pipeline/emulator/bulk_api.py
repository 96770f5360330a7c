"""Bulk API 2.0 query jobs: create, poll, read results by locator as CSV, abort, delete.

A job is `UploadComplete` when created, `InProgress` from its first status poll, and
`JobComplete` once it has been polled `polls_to_complete` times or `seconds_to_complete` have
passed since it was created, whichever comes first (both settable through the control API, so
tests see `InProgress` and the 412 before completion without waiting). The query runs when the
job completes: the results are a snapshot of that moment, served in result sets of at most
`maxRecords` rows with an opaque `Sforce-Locator` (the literal `null` on the last set).

Under a latency profile that times Bulk jobs (`latency`), polls do not hurry a job: its query
runs once the profile's minimum duration has passed, and it completes when the duration for
the rows that query found has passed too (`realistic`: 10 s + 2 s per 100,000 rows).

The SOQL is checked when the job is created (the same 400s as a REST query); a selected
compound field and `SELECT COUNT()` (Bulk API 2.0 supports no aggregate function) are refused
with 400 `API_ERROR`, as Bulk queries do. The control API can make the next jobs fail (state
`Failed` with an `errorMessage`) or turn Bulk API off for the org.

Bulk API off: the create call answers 403 `FEATURENOTENABLED` ("... requires the org
permission BulkApiQuery"). The Bulk API 1.0 exception of an org without the permission is
`FeatureNotEnabled: query operation requires the org permission BulkApiQuery`; the JSON form of
the 2.0 answer is not in the public reference (unverified), so clients should treat any 403 on
job creation other than `REQUEST_LIMIT_EXCEEDED` as "no Bulk access".
"""

from __future__ import annotations

import base64
import binascii
import csv
import gzip
import io
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gtm_pipeline.emulator.errors import EmulatorError
from gtm_pipeline.emulator.ids import KEY_PREFIXES, make_id
from gtm_pipeline.emulator.latency import NO_LATENCY, LatencyProfile
from gtm_pipeline.emulator.org import Org, QueryResult
from gtm_pipeline.emulator.soql import format_datetime
from gtm_pipeline.emulator.wire import json_response, not_found

if TYPE_CHECKING:
    from gtm_pipeline.emulator.state import EmulatorState

OPERATIONS = ("query", "queryAll")
UPLOAD_COMPLETE, IN_PROGRESS, JOB_COMPLETE = "UploadComplete", "InProgress", "JobComplete"
FAILED, ABORTED = "Failed", "Aborted"
FINISHED = frozenset({JOB_COMPLETE, FAILED, ABORTED})
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
DEFAULT_MAX_RECORDS = 50_000
INJECTED_FAILURE = "InternalServerError: the query job failed (failure injected by the emulator)"
COMPOUND_REFUSED = "Selecting compound data not supported in Bulk Query"
COUNT_REFUSED = "Aggregate functions such as COUNT() are not supported in Bulk API 2.0 queries"
BULK_DISABLED = (
    "Bulk API is not enabled for this organization: the query operation requires the org "
    "permission BulkApiQuery"
)


def api_error(message: str, status: int = 400) -> EmulatorError:
    return EmulatorError(status, "API_ERROR", message)


@dataclass(frozen=True)
class BulkSettings:
    """What the control API tunes: access, completion speed, injected failures."""

    enabled: bool = True
    polls_to_complete: int = 2
    seconds_to_complete: float = 30.0

    def __post_init__(self) -> None:
        if self.polls_to_complete < 1:
            raise ValueError("bulk_job_polls must be at least 1")
        if self.seconds_to_complete < 0:
            raise ValueError("bulk_job_seconds cannot be negative")


@dataclass
class BulkJob:
    """One query job; `result` is the snapshot taken when it completed."""

    id: str
    operation: str
    soql: str
    sobject: str
    api_version: str
    line_ending: str
    created_at: float
    will_fail: bool
    state: str = UPLOAD_COMPLETE
    polls: int = 0
    error_message: str | None = None
    result: QueryResult | None = None
    snapshot: QueryResult | None = None  # a timed job's query, run before the job completes
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_json(self) -> dict[str, Any]:
        stamp = format_datetime(datetime.fromtimestamp(self.created_at, UTC))
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject,
            "createdById": "",
            "createdDate": stamp,
            "systemModstamp": stamp,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Query",
            "lineEnding": self.line_ending,
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": self.result.total_size if self.result else 0,
            "retries": 0,
            "totalProcessingTime": 0,
        }
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


def _job_request(raw: bytes) -> tuple[str, str, str]:
    """(operation, soql, line ending) of a create request, or the 400 Salesforce gives."""
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EmulatorError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise EmulatorError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    operation = payload.get("operation")
    if operation not in OPERATIONS:
        raise api_error(f"Invalid operation {str(operation)[:40]!r}: use query or queryAll")
    soql = payload.get("query")
    if not isinstance(soql, str) or not soql.strip():
        raise api_error("A query job needs a 'query'")
    if payload.get("columnDelimiter", "COMMA") != "COMMA":
        raise api_error("The emulator supports only columnDelimiter COMMA")
    if payload.get("contentType", "CSV") != "CSV":
        raise api_error("Query jobs return CSV only")
    line_ending = payload.get("lineEnding", "LF")
    if line_ending not in LINE_ENDINGS:
        raise api_error("lineEnding must be LF or CRLF")
    return operation, soql, line_ending


class BulkJobs:
    """Every job of one emulator, with the settings and the failure switch tests change."""

    def __init__(
        self,
        clock: Callable[[], float],
        settings: BulkSettings | None = None,
        *,
        latency: Callable[[], LatencyProfile] = lambda: NO_LATENCY,
    ) -> None:
        self._clock = clock
        self._latency = latency
        self._lock = threading.Lock()
        self._jobs: dict[str, BulkJob] = {}
        self._counter = 0
        self._fail_next = 0
        self.settings = settings or BulkSettings()

    # -- control ---------------------------------------------------------------------------

    def fail_next(self, count: int) -> None:
        """The next `count` jobs created end in state Failed instead of JobComplete."""
        if count < 0:
            raise ValueError("bulk_fail_next cannot be negative")
        with self._lock:
            self._fail_next = count

    def pending_failures(self) -> int:
        with self._lock:
            return self._fail_next

    # -- the API ---------------------------------------------------------------------------

    def create(self, org: Org, raw: bytes, api_version: str) -> BulkJob:
        operation, soql, line_ending = _job_request(raw)
        if not self.settings.enabled:
            raise EmulatorError(403, "FEATURENOTENABLED", BULK_DISABLED)
        compiled = org.plan_query(soql)
        if compiled.compound_columns:
            raise api_error(COMPOUND_REFUSED)
        if compiled.is_count:
            raise api_error(COUNT_REFUSED)
        with self._lock:
            self._counter += 1
            will_fail = self._fail_next > 0
            self._fail_next -= int(will_fail)
            job = BulkJob(
                id=make_id(KEY_PREFIXES["BulkJob"], self._counter),
                operation=operation,
                soql=soql,
                sobject=compiled.sobject.name,
                api_version=api_version,
                line_ending=line_ending,
                created_at=self._clock(),
                will_fail=will_fail,
            )
            self._jobs[job.id] = job
        return job

    def job(self, job_id: str) -> BulkJob:
        with self._lock:
            found = self._jobs.get(job_id)
        if found is None:
            raise not_found()
        return found

    def poll(self, org: Org, job_id: str) -> BulkJob:
        """A status read: counts as a poll and may move the job on."""
        job = self.job(job_id)
        with job.lock:
            if job.state not in FINISHED:
                job.polls += 1
                job.state = IN_PROGRESS
                self._maybe_complete(org, job)
        return job

    def results(self, org: Org, job_id: str) -> BulkJob:
        """The job if its results can be read; 412 before completion, as Salesforce answers."""
        job = self.job(job_id)
        with job.lock:
            if job.state not in FINISHED:
                self._maybe_complete(org, job)
        if job.state != JOB_COMPLETE or job.result is None:
            if job.state in (FAILED, ABORTED):
                raise api_error(f"Job {job.id} is {job.state}: it has no results")
            raise EmulatorError(
                412,
                "JOB_NOT_COMPLETE",
                "Job is not yet complete. Results can be retrieved once the job is complete.",
            )
        return job

    def abort(self, job_id: str) -> BulkJob:
        job = self.job(job_id)
        with job.lock:
            if job.state in FINISHED:
                raise api_error(f"Job {job.id} is already {job.state} and cannot be aborted")
            job.state = ABORTED
        return job

    def delete(self, job_id: str) -> None:
        job = self.job(job_id)
        with job.lock:
            if job.state not in FINISHED:
                raise api_error(
                    f"Job {job.id} is {job.state}: only a completed, failed or aborted job "
                    "can be deleted"
                )
            with self._lock:
                self._jobs.pop(job.id, None)

    def _maybe_complete(self, org: Org, job: BulkJob) -> None:
        """Finish the job once it was polled enough or its time has come (job.lock held)."""
        profile = self._latency()
        if profile.times_bulk_jobs:
            self._complete_when_due(org, job, profile)
            return
        settings = self.settings
        due = job.polls >= settings.polls_to_complete or (
            self._clock() - job.created_at >= settings.seconds_to_complete
        )
        if not due:
            return
        if job.will_fail:
            job.state, job.error_message = FAILED, INJECTED_FAILURE
            return
        job.result = _run_query(org, job)
        job.state = JOB_COMPLETE

    def _complete_when_due(self, org: Org, job: BulkJob, profile: LatencyProfile) -> None:
        """A timed job: its query runs after the minimum duration, and it completes once the
        duration for the rows found has passed, however often it was polled (job.lock held)."""
        elapsed = self._clock() - job.created_at
        if elapsed < profile.bulk_job_duration(0):
            return
        if job.will_fail:
            job.state, job.error_message = FAILED, INJECTED_FAILURE
            return
        if job.snapshot is None:
            job.snapshot = _run_query(org, job)
        if elapsed >= profile.bulk_job_duration(job.snapshot.total_size):
            job.result, job.state = job.snapshot, JOB_COMPLETE


def _run_query(org: Org, job: BulkJob) -> QueryResult:
    include_deleted = job.operation == "queryAll"
    return org.execute_query(job.soql, include_deleted=include_deleted, api_version=job.api_version)


# --- CSV ------------------------------------------------------------------------------------


def _datetime_text(value: object) -> object:
    """Bulk CSV prints datetimes in UTC with `Z` (`2024-01-01T00:00:00.000Z`), REST `+0000`."""
    if isinstance(value, str) and value.endswith("+0000"):
        return value[:-5] + "Z"
    return value


def _plain_text(value: object) -> object:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value


def csv_chunk(
    columns: Sequence[str], types: Sequence[str], rows: list[list], line_ending: str
) -> bytes:
    """Header plus rows, every value quoted (RFC 4180); a null is an empty value (`""`).

    Quoting everything keeps carriage returns and line feeds inside values unambiguous whatever
    the line ending; Salesforce has no empty strings, so an empty value always means null.
    """
    formatters = [_datetime_text if t == "datetime" else _plain_text for t in types]
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator=line_ending)
    writer.writerow(columns)
    writer.writerows([fmt(v) for fmt, v in zip(formatters, row, strict=True)] for row in rows)
    return buffer.getvalue().encode("utf-8")


def encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str, total: int) -> int:
    try:
        padded = locator + "=" * (-len(locator) % 4)
        offset = int(base64.b64decode(padded, validate=True).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        offset = -1
    if not 0 < offset < total:
        raise EmulatorError(400, "INVALIDLOCATOR", f"Invalid locator: {locator[:40]}")
    return offset


def max_records_param(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_MAX_RECORDS
    if not raw.isdigit() or int(raw) < 1:
        raise api_error("maxRecords must be a positive integer")
    return int(raw)


def result_set(job: BulkJob, locator: str | None, max_records: int) -> tuple[bytes, int, str]:
    """(CSV body, number of records, next locator or "null") of one result set."""
    result = job.result
    assert result is not None  # results() checked completion
    total = result.total_size
    start = 0 if locator is None else decode_locator(locator, total)
    stop = min(start + max_records, total)
    rows = result.flat_page(start, stop)
    terminator = LINE_ENDINGS[job.line_ending]
    body = csv_chunk(result.columns, result.column_types, rows, terminator)
    return body, stop - start, encode_locator(stop) if stop < total else "null"


# --- routes ---------------------------------------------------------------------------------


def _wants_gzip(request: Request) -> bool:
    accepted = request.headers.get("accept-encoding", "")
    return any(part.split(";")[0].strip().lower() == "gzip" for part in accepted.split(","))


async def create_job(state: EmulatorState, request: Request, version: str) -> Response:
    raw = await request.body()
    job = await run_in_threadpool(state.bulk.create, state.org, raw, version)
    return json_response(job.to_json())


async def job_info(state: EmulatorState, request: Request, version: str) -> Response:
    job = await run_in_threadpool(state.bulk.poll, state.org, request.path_params["job_id"])
    return json_response(job.to_json())


async def change_job(state: EmulatorState, request: Request, version: str) -> Response:
    try:
        payload = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise EmulatorError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from exc
    if not isinstance(payload, dict) or payload.get("state") != ABORTED:
        raise api_error("A query job can only be changed to state Aborted")
    return json_response(state.bulk.abort(request.path_params["job_id"]).to_json())


async def delete_job(state: EmulatorState, request: Request, version: str) -> Response:
    state.bulk.delete(request.path_params["job_id"])
    return Response(status_code=204)


async def job_results(state: EmulatorState, request: Request, version: str) -> Response:
    job = await run_in_threadpool(state.bulk.results, state.org, request.path_params["job_id"])
    max_records = max_records_param(request.query_params.get("maxRecords"))
    locator = request.query_params.get("locator") or None
    body, count, next_locator = await run_in_threadpool(result_set, job, locator, max_records)
    headers = {"Sforce-NumberOfRecords": str(count), "Sforce-Locator": next_locator}
    if _wants_gzip(request):
        body = await run_in_threadpool(gzip.compress, body, 5)
        headers["Content-Encoding"] = "gzip"
    return Response(body, headers=headers, media_type="text/csv; charset=UTF-8")


def routes(wrap: Callable[[Any], Callable[[Request], Any]]) -> list[Route]:
    """The /jobs/query routes, each wrapped like every data API call (session, budget, limits)."""
    base = "/services/data/{version}/jobs/query"
    job = f"{base}/{{job_id}}"
    return [
        Route(base, wrap(create_job), methods=["POST"]),
        Route(job, wrap(job_info), methods=["GET"]),
        Route(job, wrap(change_job), methods=["PATCH"]),
        Route(job, wrap(delete_job), methods=["DELETE"]),
        Route(f"{job}/results", wrap(job_results), methods=["GET"]),
    ]
