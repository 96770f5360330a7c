"""Settle a batch whose outcomes a crash lost: read its records back and keep what landed.

A process killed after Salesforce applied a collections update but before the outcomes were
stored leaves the batch's values in `writeback_state.sending_values`. Sending them again would
update those records twice (their `SystemModstamp` moves and triggers fire again), so the next
run first reads them back, one SOQL query per 200 records: a record whose fields hold the values
that were being sent is settled as written; any other is sent again as usual.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from gtm_pipeline.salesforce.errors import SalesforceApiError
from gtm_pipeline.sync.soql import check_identifier

READ_BACK_CHUNK = 200
SCORE_TOLERANCE = 0.005
"""Salesforce rounds a number field to its scale; scores carry two decimals."""
_SALESFORCE_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


class RecordReader(Protocol):
    """What the read-back needs of SalesforceClient."""

    def query_records(self, soql: str) -> Iterator[dict[str, Any]]: ...


def read_back_query(sobject: str, fields: Sequence[str], ids: Sequence[str]) -> str:
    """`SELECT Id, <fields> FROM <sobject> WHERE Id IN (...)`; every name and id checked."""
    check_identifier(sobject)
    names = [check_identifier(f) for f in fields if f.lower() != "id"]
    quoted = []
    for record_id in ids:
        if not _SALESFORCE_ID.fullmatch(record_id):
            raise ValueError(f"not a Salesforce record id: {record_id[:40]!r}")
        quoted.append(f"'{record_id}'")
    return f"SELECT {', '.join(['Id', *names])} FROM {sobject} WHERE Id IN ({', '.join(quoted)})"  # noqa: S608


def _instant(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def same_value(sent: Any, stored: Any) -> bool:
    """Whether a field Salesforce holds now is the value that was sent to it."""
    if sent is None or stored is None:
        return sent is None and stored is None
    if isinstance(sent, float) and not isinstance(stored, bool):
        if not isinstance(stored, int | float):
            return False
        return math.isclose(sent, float(stored), rel_tol=1e-9, abs_tol=SCORE_TOLERANCE)
    if isinstance(sent, str) and isinstance(stored, str):
        sent_at, stored_at = _instant(sent), _instant(stored)
        if sent_at is not None and stored_at is not None and sent_at.tzinfo and stored_at.tzinfo:
            return sent_at == stored_at
    return bool(sent == stored)


def _landed(values: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    lowered = {key.lower(): value for key, value in record.items()}
    return all(
        field.lower() in lowered and same_value(value, lowered[field.lower()])
        for field, value in values.items()
    )


def settle_in_flight(
    client: RecordReader, sobject: str, in_flight: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Split in-flight records into (landed: id → values, not landed: ids to send again).

    A record that is gone (deleted) or whose id is malformed counts as not landed: sending it
    again gives its real outcome.
    """
    landed: dict[str, dict[str, Any]] = {}
    readable = [i for i in in_flight if _SALESFORCE_ID.fullmatch(i)]
    for start in range(0, len(readable), READ_BACK_CHUNK):
        chunk = readable[start : start + READ_BACK_CHUNK]
        fields = sorted({field for i in chunk for field in in_flight[i]})
        by_id: dict[str, dict[str, Any]] = {}
        try:
            read = list(client.query_records(read_back_query(sobject, fields, chunk)))
        except SalesforceApiError as exc:
            if exc.status != 400:
                raise
            # A field sent then is gone now (deleted, hidden): the values cannot be confirmed,
            # so the records are sent again under the current mapping.
            continue
        for record in read:
            record_id = str(record.get("Id", ""))
            by_id[record_id] = record
            by_id.setdefault(record_id[:15], record)
        for record_id in chunk:
            record = by_id.get(record_id) or by_id.get(record_id[:15])
            if record is not None and _landed(in_flight[record_id], record):
                landed[record_id] = dict(in_flight[record_id])
    return landed, [i for i in in_flight if i not in landed]
