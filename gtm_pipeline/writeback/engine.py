"""Push changed scores to Salesforce, 200 records a request, and account for every record.

The engine sends only records whose values differ from those settled in `writeback_state`,
matches Salesforce's per-record results to records by position, and stores each batch's
outcomes in one transaction right after the batch. Before a request, the batch's values are
stored as in flight; a run that finds in-flight values left by a crashed one reads those records
back and settles the ones that landed (`in_flight.py`), so a crash never writes a record twice.

Each failure keeps Salesforce's code, message and `errors[].fields` (the fields it blamed), in
the result and in `writeback_state`. Per record, `UNABLE_TO_LOCK_ROW` is retried with bounded
backoff (another process holds the row; it clears). A request rejected as a whole (HTTP 400) is
split in halves until the record that poisons it stands alone and fails by itself. Every other
per-record error is permanent and is not retried until the record's values change. A request
whose answer was lost (timeout, dropped connection, 5xx: the client sends a collections update
once) is resolved by reading its records back and resending only those that did not land.
Token expiry and concurrency-limit refusals are the client's business (one refresh; backoff and
retry); a spent API budget, a lost session, a concurrency limit that outlasted the client's
backoff or Salesforce staying unavailable propagate, leaving the batch in flight for the next
run to read back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
import sqlalchemy as sa

from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.errors import SalesforceApiError, SalesforceUnavailable
from gtm_pipeline.store.locks import tenant_lock
from gtm_pipeline.store.writeback import (
    FAILED,
    SUCCESS,
    TRANSIENT,
    WritebackOutcome,
    clear_sending,
    in_flight_values,
    last_written_values,
    mark_sending,
    record_outcomes,
)
from gtm_pipeline.sync.entities import by_score_type
from gtm_pipeline.writeback.in_flight import settle_in_flight
from gtm_pipeline.writeback.payloads import (
    Record,
    batches,
    build_records,
    changed_only,
    field_values,
)

TRANSIENT_RECORD_CODES = frozenset({"UNABLE_TO_LOCK_ROW"})
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0


class CollectionClient(Protocol):
    """What the engine needs of SalesforceClient."""

    def update_collection(
        self, records: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[dict[str, Any]]: ...

    def query_records(self, soql: str) -> Iterator[dict[str, Any]]: ...


class WritebackProtocolError(GtmError, RuntimeError):
    """Salesforce answered a collection update with results that cannot be matched to records."""


@dataclass
class WritebackResult:
    """One entity type's writeback: counts, requests made, and each failed record with its error."""

    entity_type: str
    total: int = 0
    success: int = 0
    failed: int = 0
    skipped_unchanged: int = 0
    requests: int = 0
    recovered: int = 0
    """Records a crashed run had sent whose outcome was lost, found written by reading back."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    """Per failed record: `entity_id`, `code`, `error` (code and message) and `fields`."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "entity_type": self.entity_type,
            "total": self.total,
            "success": self.success,
            "failed": self.failed,
            "skipped_unchanged": self.skipped_unchanged,
            "requests": self.requests,
            "recovered": self.recovered,
            "errors": [{**error, "fields": list(error.get("fields", ()))} for error in self.errors],
        }


def backoff_seconds(attempt: int) -> float:
    """The pause before retry number `attempt` (1-based) of locked rows: doubling, capped."""
    return min(BACKOFF_INITIAL_SECONDS * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS)


def write_back(
    client: CollectionClient,
    engine: sa.Engine,
    tenant_id: str,
    entity_type: str,
    scores_df: pd.DataFrame,
    field_map: Mapping[str, str],
    *,
    sleep: Callable[[float], None] = time.sleep,
    max_attempts: int = 3,
    on_progress: Callable[[int, int], None] | None = None,
) -> WritebackResult:
    """Write the changed scores of one entity type to Salesforce; see the module docstring.

    `on_progress(settled, to_send)` is called once the changed records are known and after each
    batch is recorded, for a progress bar or a log line.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if not tenant_id:
        raise ValueError("tenant_id must be non-empty")
    records = build_records(scores_df, entity_type, field_map)
    with tenant_lock(engine, f"writeback of {entity_type} scores", tenant_id):
        return _write_changed(client, engine, tenant_id, entity_type, records, sleep=sleep,
                              max_attempts=max_attempts, on_progress=on_progress)  # fmt: skip


def _write_changed(
    client: CollectionClient,
    engine: sa.Engine,
    tenant_id: str,
    entity_type: str,
    records: list[Record],
    *,
    sleep: Callable[[float], None],
    max_attempts: int,
    on_progress: Callable[[int, int], None] | None,
) -> WritebackResult:
    """Under the tenant's writeback lock: settle a crashed batch, then send what changed."""
    recovered = _settle_crashed_batch(client, engine, tenant_id, entity_type)
    with engine.connect() as conn:
        settled = last_written_values(conn, tenant_id, entity_type)
    changed = changed_only(records, settled)
    result = WritebackResult(
        entity_type=entity_type,
        total=len(records),
        skipped_unchanged=len(records) - len(changed),
        recovered=recovered,
    )
    sender = _BatchSender(client, by_score_type(entity_type).sf_object, sleep, max_attempts)
    report = on_progress or (lambda _settled, _to_send: None)
    report(0, len(changed))
    for batch in batches(changed):
        with engine.begin() as conn:
            mark_sending(conn, tenant_id, entity_type, {r["id"]: field_values(r) for r in batch})
        outcomes = sender.send(batch)
        with engine.begin() as conn:
            record_outcomes(conn, tenant_id, entity_type, outcomes)
        _count(result, outcomes)
        report(result.success + result.failed, len(changed))
    result.requests = sender.requests
    return result


def _settle_crashed_batch(
    client: CollectionClient, engine: sa.Engine, tenant_id: str, entity_type: str
) -> int:
    """Settle what a crashed run left in flight; returns how many records had landed."""
    with engine.connect() as conn:
        in_flight = in_flight_values(conn, tenant_id, entity_type)
    if not in_flight:
        return 0
    landed, not_landed = settle_in_flight(client, by_score_type(entity_type).sf_object, in_flight)
    with engine.begin() as conn:
        record_outcomes(
            conn,
            tenant_id,
            entity_type,
            [WritebackOutcome(i, SUCCESS, values) for i, values in landed.items()],
        )
        clear_sending(conn, tenant_id, entity_type, not_landed)
    return len(landed)


def _count(result: WritebackResult, outcomes: Sequence[WritebackOutcome]) -> None:
    for outcome in outcomes:
        if outcome.status == SUCCESS:
            result.success += 1
            continue
        result.failed += 1
        result.errors.append(
            {
                "entity_id": outcome.external_id,
                "code": outcome.error_code or "",
                "error": f"{outcome.error_code}: {outcome.error}",
                "fields": list(outcome.error_fields),
            }
        )


class _BatchSender:
    """Sends one batch to its end: lock retries and whole-request splits; counts requests."""

    def __init__(
        self,
        client: CollectionClient,
        sobject: str,
        sleep: Callable[[float], None],
        max_attempts: int,
    ) -> None:
        self._client = client
        self._sobject = sobject
        self._sleep = sleep
        self._max_attempts = max_attempts
        self.requests = 0

    def send(self, batch: Sequence[Record]) -> list[WritebackOutcome]:
        """One outcome per record of `batch`, in its order."""
        settled: dict[str, WritebackOutcome] = {}
        pending = list(batch)
        attempt = 1
        while pending:
            outcomes = self._send_isolating(pending)
            locked = [o for o in outcomes if o.status == TRANSIENT]
            settled.update((o.external_id, o) for o in outcomes if o.status != TRANSIENT)
            if not locked or attempt >= self._max_attempts:
                settled.update((o.external_id, o) for o in locked)
                break
            self._sleep(backoff_seconds(attempt))
            attempt += 1
            locked_ids = {o.external_id for o in locked}
            pending = [record for record in pending if record["id"] in locked_ids]
        return [settled[record["id"]] for record in batch]

    def _send_isolating(
        self, records: Sequence[Record], unknown: int = 0
    ) -> list[WritebackOutcome]:
        """Send `records`; when Salesforce rejects the whole request, halve it until it passes.

        A request whose answer was lost (timeout, dropped connection, 5xx) may or may not have
        been applied: the records are read back, those that landed are settled, and only the
        rest is sent again, at most `max_attempts` times before the run stops (the batch then
        stays in flight for the next run to read back).
        """
        self.requests += 1
        try:
            results = self._client.update_collection(records, all_or_none=False)
        except SalesforceUnavailable:
            if unknown + 1 >= self._max_attempts:
                raise
            return self._after_lost_answer(records, unknown + 1)
        except SalesforceApiError as exc:
            if exc.status != 400:
                raise
            if len(records) == 1:
                code = exc.error_code or "HTTP_400"
                return [_failure(records[0], code, exc.message, exc.fields)]
            middle = len(records) // 2
            return self._send_isolating(records[:middle]) + self._send_isolating(records[middle:])
        if len(results) != len(records):
            raise WritebackProtocolError(
                f"Salesforce returned {len(results)} results for {len(records)} records; "
                "results are matched by position, so none of them can be trusted"
            )
        return [_outcome(record, answer) for record, answer in zip(records, results, strict=True)]

    def _after_lost_answer(self, records: Sequence[Record], unknown: int) -> list[WritebackOutcome]:
        sent = {record["id"]: field_values(record) for record in records}
        landed, _ = settle_in_flight(self._client, self._sobject, sent)
        settled = {i: WritebackOutcome(i, SUCCESS, values) for i, values in landed.items()}
        again = [record for record in records if record["id"] not in landed]
        if again:
            self._sleep(backoff_seconds(unknown))
            outcomes = self._send_isolating(again, unknown)
            settled.update((o.external_id, o) for o in outcomes)
        return [settled[record["id"]] for record in records]


def _outcome(record: Record, answer: Mapping[str, Any]) -> WritebackOutcome:
    if answer.get("success") is True:
        return WritebackOutcome(record["id"], SUCCESS, field_values(record))
    errors = [error for error in answer.get("errors") or [] if isinstance(error, Mapping)]
    first = errors[0] if errors else {}
    code = str(first.get("statusCode") or "UNKNOWN_ERROR")
    message = str(first.get("message") or "Salesforce gave no message")
    return _failure(record, code, message, blamed_fields(errors))


def blamed_fields(errors: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The fields a record's errors name (`errors[].fields`), each once, in Salesforce's order.

    The code and message kept are the first error's; the fields are every error's, since a
    record refused for two fields needs both fixed.
    """
    names: dict[str, None] = {}
    for error in errors:
        fields = error.get("fields")
        if isinstance(fields, list):
            names.update((str(name), None) for name in fields)
    return tuple(names)


def _failure(
    record: Record, code: str, message: str, fields: Sequence[str] = ()
) -> WritebackOutcome:
    status = TRANSIENT if code in TRANSIENT_RECORD_CODES else FAILED
    return WritebackOutcome(
        record["id"], status, field_values(record), code, message, tuple(fields)
    )
