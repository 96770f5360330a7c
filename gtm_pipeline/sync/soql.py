"""SOQL for the sync: the field list, the incremental window and the order that makes cursors safe.

Every name that reaches SOQL is checked to be a plain Salesforce identifier (or a dot path of
them), so nothing from a mapping can inject SOQL. Datetime literals are unquoted UTC with whole
seconds, floored: flooring only widens the `>=` window, never skips a record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from gtm_pipeline.errors import GtmError

# fullmatch, not `$`: `$` also matches before a trailing newline, which would let "Name\n" through.
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")
ORDER = "ORDER BY SystemModstamp ASC, Id ASC"


class SoqlBuildError(GtmError, ValueError):
    """A field or object name that is not a plain Salesforce identifier."""

    retryable = False


def check_identifier(name: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise SoqlBuildError(f"not a Salesforce identifier: {str(name)[:80]!r}")
    return name


def check_path(path: str) -> str:
    """A field path like `Account.Industry`: identifiers joined by dots, at most 5 levels."""
    parts = path.split(".") if isinstance(path, str) else [path]
    if not 1 <= len(parts) <= 5:
        raise SoqlBuildError(f"not a Salesforce field path: {str(path)[:80]!r}")
    for part in parts:
        check_identifier(part)
    return path


def datetime_literal(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("SOQL datetimes must be timezone-aware")
    utc = moment.astimezone(UTC)
    # strftime's %Y drops leading zeros before year 1000; SOQL needs four digits.
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"


def select_fields(fields: Sequence[str], *extra: str) -> list[str]:
    """The field list with the ones the sync always needs, each once (case-insensitively)."""
    seen: dict[str, str] = {}
    for name in ("Id", *fields, "SystemModstamp", *extra):
        check_path(name)
        seen.setdefault(name.lower(), name)
    return list(seen.values())


def modified_query(
    sf_object: str,
    fields: Sequence[str],
    since: datetime | None,
    *,
    with_archived: bool = False,
    until: datetime | None = None,
    after_id: str | None = None,
) -> str:
    """Live records modified at or after `since` (all of them when None) and before `until` (no
    end when None), in cursor order. With `after_id`, only those after the position
    `(since, after_id)`: later stamps, or the same stamp and a larger Id.

    `with_archived`: for an object whose old records Salesforce archives, the query is meant for
    queryAll, which returns archived and deleted records alike; `IsDeleted = false` keeps the
    archived ones (live, only older) and leaves the deleted ones to `deleted_query`."""
    check_identifier(sf_object)
    where = live_window(since, until, with_archived=with_archived, after_id=after_id)
    return f"SELECT {', '.join(select_fields(fields))} FROM {sf_object}{where} {ORDER}"  # noqa: S608


def count_query(
    sf_object: str, since: datetime | None, until: datetime | None, *, with_archived: bool = False
) -> str:
    """How many records `modified_query` with the same window would return (`totalSize` of a
    `COUNT()` query; Salesforce allows no ORDER BY with it)."""
    check_identifier(sf_object)
    where = live_window(since, until, with_archived=with_archived)
    return f"SELECT COUNT() FROM {sf_object}{where}"  # noqa: S608


def end_query(sf_object: str, *, with_archived: bool = False, newest: bool = True) -> str:
    """The live record with the newest stamp (the oldest with `newest` False), its
    `SystemModstamp` only."""
    check_identifier(sf_object)
    where = live_window(None, None, with_archived=with_archived)
    order = "DESC" if newest else "ASC"
    return (
        f"SELECT Id, SystemModstamp FROM {sf_object}{where} "  # noqa: S608
        f"ORDER BY SystemModstamp {order}, Id {order} LIMIT 1"
    )


def live_window(
    since: datetime | None,
    until: datetime | None,
    *,
    with_archived: bool,
    after_id: str | None = None,
) -> str:
    """The ` WHERE ...` of live records in a stamp window (empty when nothing narrows it)."""
    conditions = ["IsDeleted = false"] if with_archived else []
    if since and after_id:
        # Flooring the stamp only widens the window: `>` then takes in the rest of its second.
        stamp, record_id = datetime_literal(since), check_record_id(after_id)
        conditions.append(
            f"(SystemModstamp > {stamp} OR (SystemModstamp = {stamp} AND Id > '{record_id}'))"
        )
    elif since:
        conditions.append(f"SystemModstamp >= {datetime_literal(since)}")
    if until:
        conditions.append(f"SystemModstamp < {_exact_literal(until)}")
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _exact_literal(moment: datetime) -> str:
    """An exclusive upper bound must not be floored (that would skip the rest of its second):
    only whole seconds are accepted."""
    if moment.microsecond:
        raise ValueError("an upper SystemModstamp bound must be a whole second")
    return datetime_literal(moment)


def deleted_query(sf_object: str, since: datetime | None) -> str:
    """Records in the recycle bin deleted at or after `since` (run through queryAll)."""
    check_identifier(sf_object)
    window = f" AND SystemModstamp >= {datetime_literal(since)}" if since else ""
    return (
        f"SELECT Id, SystemModstamp, IsDeleted FROM {sf_object} "  # noqa: S608
        f"WHERE IsDeleted = true{window} {ORDER}"
    )


def changed_query(sf_object: str, since: datetime | None) -> str:
    """One record of `sf_object` modified (or deleted, read with queryAll) after `since`, or any
    record at all when `since` is None: whether there is anything to sync."""
    check_identifier(sf_object)
    where = f" WHERE SystemModstamp > {datetime_literal(since)}" if since else ""
    return f"SELECT Id FROM {sf_object}{where} LIMIT 1"  # noqa: S608


def listing_query(sf_object: str, *, with_archived: bool = False) -> str:
    """Every record's Id, stamp and deletion flag (run through queryAll): what reconciliation
    compares with the store; `with_archived` adds the archive flag, which Salesforce's archiving
    sets without a documented change of stamp."""
    check_identifier(sf_object)
    archived = ", IsArchived" if with_archived else ""
    return f"SELECT Id, SystemModstamp, IsDeleted{archived} FROM {sf_object}"  # noqa: S608


# A record Id: 15 or 18 case-sensitive base-62 characters. Anything else never reaches SOQL.
_RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
# In a GET request line each Id costs its 18 characters, two quotes and a comma URL-encoded
# (%27, %27, %2C): 27 bytes. Salesforce refuses request lines of about 16 KB and statements of
# 100,000 characters; a query by Id stays under 12,000 bytes of encoded text.
ENCODED_BYTES_PER_ID = 27
BY_ID_QUERY_BYTES = 12_000


def check_record_id(record_id: str) -> str:
    if not isinstance(record_id, str) or not _RECORD_ID.fullmatch(record_id):
        raise SoqlBuildError(f"not a Salesforce record id: {str(record_id)[:40]!r}")
    return record_id


def by_id_queries(
    sf_object: str, fields: Sequence[str], ids: Sequence[str], *, with_archived: bool = False
) -> list[str]:
    """Queries reading the records `ids` (with the sync's field list), chunked so that each
    one's URL-encoded text stays under `BY_ID_QUERY_BYTES`. `with_archived` as for
    `modified_query`: meant for queryAll, the live records only."""
    check_identifier(sf_object)
    for record_id in ids:
        check_record_id(record_id)
    live = "IsDeleted = false AND " if with_archived else ""
    head = f"SELECT {', '.join(select_fields(fields))} FROM {sf_object} WHERE {live}Id IN ("  # noqa: S608
    room = BY_ID_QUERY_BYTES - 3 * len(head)  # the worst case: every character encoded
    per_query = max(1, room // ENCODED_BYTES_PER_ID)
    return [
        head + ",".join(f"'{i}'" for i in ids[start : start + per_query]) + ")"
        for start in range(0, len(ids), per_query)
    ]
