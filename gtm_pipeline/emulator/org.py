"""The emulated Salesforce org: records, describe, SOQL queries, collection updates, mutations.

Contract used by the HTTPS layer (app/server/control modules) — names and shapes are stable:
    EmulatorError(status, error_code, message).body() -> [{"message", "errorCode"}]
    QueryResult.total_size, QueryResult.page(start, stop) -> API-shaped records
    Org.generate(seed=, counts=, dirty_ratio=), Org.org_id, Org.user_id, Org.describe(sobject),
    Org.execute_query(soql, include_deleted=), Org.update_collection(records, all_or_none=),
    Org.mutate(op), Org.truth(sobject), Org.object_names()

Additions beyond that contract (free to use):
    Org.api_version (default "59.0") builds `attributes.url`; execute_query(...,
        api_version="60.0") overrides it per query.
    QueryResult.served_size: how many records its pages hold (total_size, or 0 for COUNT()).
    QueryResult.sobject, .columns (canonical dotted paths in select order, e.g. "Account.Name"),
        .compound_columns (selected address fields: Bulk API 2.0 must refuse those),
        .column_types (each column's describe type, for Bulk CSV formatting),
        .flat_page(start, stop) -> rows as lists of column values (for Bulk CSV).
    Org.record(sobject, id) -> the truth dict of one record or None (purged/unknown).
    Org.count(sobject, include_deleted=False) -> int.
    Org.plan_query(soql) -> CompiledQuery: parse and bind without running (Bulk job creation).
    Org.update_record(sobject, id, fields) -> the collection result of one record (REST PATCH).
    Org.seed.
    truth() of an unknown object raises EmulatorError(404, NOT_FOUND) like describe().

Behaviour the HTTPS layer and connector tests should know about:
    - Ties: rows with equal ORDER BY keys come back shuffled, seeded by the query text, the org
      seed and a per-org query counter, so re-running a query may order ties differently.
      ORDER BY ... Id has no ties. Without ORDER BY, rows come in storage (creation) order.
    - Records generated with `_dirty == "duplicate_id"` are served twice by every query that
      matches them: the repeat comes 200-2000 positions later (counted in total_size).
    - `SELECT COUNT()` answers with total_size the number of matching rows (capped by LIMIT) and
      no records; it neither sorts nor serializes, and counts each record once (a count is of
      rows, not of what a cursor serves, so the repeats above are not in it).
    - Plain queries skip rows in the recycle bin and archived activities (IsArchived true);
      include_deleted=True (queryAll) shows them. `count()` without include_deleted counts
      what a plain query sees.
    - Derived fields are kept as Salesforce keeps them (`record_rules`): an activity's
      AccountId, a Task's IsClosed and CompletedDateTime. A converted Lead refuses API updates
      (CANNOT_UPDATE_CONVERTED_LEAD). Mutation ops `convert` (a Lead) and `archive` (a Task or
      Event; SystemModstamp unchanged) do what Salesforce's conversion and archiving do.
    - Live writes are stamped with the wall clock in whole seconds, like Salesforce, so several
      writes in one second share a SystemModstamp. Deleting an Account does not cascade.
    - Values are served as stored: dirty rows may hold strings in numeric fields and impossible
      dates; datetimes are "YYYY-MM-DDTHH:MM:SS.000+0000", dates "YYYY-MM-DD".

Concurrency: one lock guards every state change. Rows are immutable tuples replaced on write
(copy-on-write), so a query's snapshot is a list of references taken under the lock, and its
pages never change whatever happens later.
"""

from __future__ import annotations

import operator
import random
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta

from gtm_pipeline.config import DEFAULT_API_VERSION
from gtm_pipeline.emulator import generate as gen
from gtm_pipeline.emulator.errors import EmulatorError
from gtm_pipeline.emulator.generate_activities import (
    LEAD_ACTIVITY_COUNTS,
    add_leads_and_activities,
)
from gtm_pipeline.emulator.ids import is_valid_id, make_id, to18
from gtm_pipeline.emulator.record_rules import RecordRules
from gtm_pipeline.emulator.schema import ObjectDef, build_objects, compound_reader, is_derived
from gtm_pipeline.emulator.soql import (
    CompiledQuery,
    Schema,
    compile_query,
    format_datetime,
    parse,
    related_objects,
)
from gtm_pipeline.emulator.stamp_index import STAMP, Bounds, StampIndex, Table, stamp_bounds
from gtm_pipeline.emulator.values import FieldValueError, coerce_for_api, coerce_for_control

__all__ = ["EmulatorError", "Org", "QueryResult"]

MAX_COLLECTION = 200
_ID, _IS_DELETED = 0, 1  # every object's first two stored slots
_SYSTEM_FIELDS = frozenset({"Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"})


class QueryResult:
    """The frozen result of one query: row references taken at query start, served by page.

    A COUNT() result holds no rows: its `total_size` is the count and its pages are empty.
    """

    def __init__(
        self,
        compiled: CompiledQuery,
        rows: list[tuple],
        api_version: str,
        *,
        count: int | None = None,
    ) -> None:
        self._compiled = compiled
        self._rows = rows
        self._serialize = compiled.serializer(api_version)
        self.served_size = len(rows)
        self.total_size = len(rows) if count is None else count
        self.sobject = compiled.sobject.name
        self.columns = list(compiled.columns)
        self.column_types = list(compiled.column_types)
        self.compound_columns = list(compiled.compound_columns)

    def page(self, start: int, stop: int) -> list[dict]:
        """API-shaped records [start, stop)."""
        serialize = self._serialize
        return [serialize(row) for row in self._rows[max(0, start) : max(0, stop)]]

    def flat_page(self, start: int, stop: int) -> list[list]:
        """Rows [start, stop) as lists of column values, relationship paths flattened."""
        getters = self._compiled.column_getters
        return [[g(row) for g in getters] for row in self._rows[max(0, start) : max(0, stop)]]

    def __repr__(self) -> str:
        return f"QueryResult(sobject={self.sobject!r}, total_size={self.total_size})"


def _now_stamp() -> str:
    """Salesforce stamps with whole seconds (the API always shows .000)."""
    return format_datetime(datetime.now(UTC).replace(microsecond=0))


def _error(code: str, message: str, fields: list[str] | None = None) -> dict:
    return {"statusCode": code, "message": message, "fields": fields or []}


class Org:
    """One emulated org. Thread-safe; see the module docstring for the snapshot rule."""

    def __init__(
        self,
        objects: dict[str, ObjectDef],
        generated: gen.GeneratedOrg,
        *,
        seed: int,
    ) -> None:
        self._objects = objects
        self._tables = {name: Table(rows) for name, rows in generated.tables.items()}
        self._stamp_indexes: dict[str, StampIndex] = {}
        self._next_sequence = dict(generated.next_sequence)
        self._lock = threading.RLock()
        self._row_locks: dict[str, int] = {}
        self._api_updates: dict[str, dict[str, int]] = {}
        self._query_serial = 0
        self._rng = random.Random(seed ^ 0x5EED)
        self._readers = {name: _truth_reader(obj) for name, obj in objects.items()}
        self._rules = RecordRules(objects, self._tables)
        self._unreadable: frozenset[str] = frozenset()
        self.seed = seed
        self.org_id = generated.org_id
        self.user_id = generated.user_id
        self.api_version = DEFAULT_API_VERSION

    @classmethod
    def generate(
        cls,
        *,
        seed: int = 42,
        counts: Mapping[str, int] | None = None,
        dirty_ratio: float = 0.05,
    ) -> Org:
        """A deterministic org: the same seed and counts always give the same records."""
        merged = {**gen.DEFAULT_COUNTS, **LEAD_ACTIVITY_COUNTS}
        for name, value in (counts or {}).items():
            if name not in merged:
                raise ValueError(
                    f"unknown object {name!r} in counts; expected one of {sorted(merged)}"
                )
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"counts[{name!r}] must be a non-negative integer")
            merged[name] = value
        if not 0 <= dirty_ratio <= 1:
            raise ValueError("dirty_ratio must be between 0 and 1")
        objects = build_objects()
        generated = gen.generate(objects, seed=seed, counts=merged, dirty_ratio=dirty_ratio)
        add_leads_and_activities(
            objects, generated, seed=seed, counts=merged, dirty_ratio=dirty_ratio
        )
        return cls(objects, generated, seed=seed)

    # --- reading ------------------------------------------------------------------------

    def object_names(self) -> list[str]:
        return list(self._objects)

    def set_unreadable(self, names: Iterable[str]) -> list[str]:
        """Objects the integration user may not read, as when its profile lacks access: the API
        answers their queries and updates with INVALID_TYPE and their describe with 404 and
        leaves them out of the global describe, as Salesforce does; the control API still sees
        them. Returns the names set."""
        found = [self._object(name) for name in names]
        if any(obj is None for obj in found):
            raise ValueError(f"unreadable_objects must name objects of {self.object_names()}")
        self._unreadable = frozenset(obj.name for obj in found if obj is not None)
        return sorted(self._unreadable)

    def unreadable(self) -> list[str]:
        return sorted(self._unreadable)

    def _readable_objects(self) -> dict[str, ObjectDef]:
        return {n: o for n, o in self._objects.items() if n not in self._unreadable}

    def _readable_object(self, name: object) -> ObjectDef | None:
        obj = self._object(name)
        return None if obj is None or obj.name in self._unreadable else obj

    def _object(self, name: object) -> ObjectDef | None:
        if not isinstance(name, str):
            return None
        lowered = name.lower()
        return next((o for n, o in self._objects.items() if n.lower() == lowered), None)

    def describe_global(self, api_version: str | None = None) -> dict:
        """The global describe (`GET sobjects`): every object the integration user may read, by
        name, without fields; an unreadable object is left out, as Salesforce leaves out objects
        a profile cannot see."""
        version = api_version or self.api_version
        readable = self._readable_objects()
        return {
            "encoding": "UTF-8",
            "maxBatchSize": MAX_COLLECTION,
            "sobjects": [readable[name].global_describe(version) for name in sorted(readable)],
        }

    def describe(self, sobject: str) -> dict:
        obj = self._readable_object(sobject)
        if obj is None:
            raise EmulatorError(404, "NOT_FOUND", "The requested resource does not exist")
        return obj.describe()

    def execute_query(
        self, soql: str, *, include_deleted: bool, api_version: str | None = None
    ) -> QueryResult:
        """Run SOQL against a snapshot taken now; later mutations never show in its pages."""
        query = parse(soql)
        readable = self._readable_objects()
        related = related_objects(query, readable)
        bare = Schema(readable, {})
        obj = bare.object(query.sobject)
        bounds = stamp_bounds(query, bare, obj)
        with self._lock:
            rows = self._candidate_rows(obj, bounds)
            parents = {name: dict(self._tables[name]) for name in related}
            self._query_serial += 1
            serial = self._query_serial
        compiled = compile_query(query, Schema(readable, parents))
        if not include_deleted:
            rows = _queryable(obj, rows)
        version = api_version or self.api_version
        if compiled.is_count:
            return QueryResult(compiled, [], version, count=compiled.count(rows))
        tie_seed = zlib.crc32(soql.encode("utf-8", "surrogatepass")) ^ self.seed ^ serial << 32
        ordered = compiled.filter_sort(rows, tie_seed)
        ordered = _serve_duplicates(ordered, obj.dirty_slot)
        return QueryResult(compiled, compiled.window(ordered), version)

    def _candidate_rows(self, obj: ObjectDef, bounds: Bounds | None) -> list[tuple]:
        """The object's rows a query can match: those within its SystemModstamp bounds (through
        the index, rebuilt after a change), else all of them. Called with the lock held."""
        table = self._tables[obj.name]
        if bounds is None:
            return list(table.values())
        index = self._stamp_indexes.get(obj.name)
        if index is None or index.version != table.version:
            index = StampIndex.build(table, obj.slots[STAMP])
            self._stamp_indexes[obj.name] = index
        return index.rows_between(bounds)

    def plan_query(self, soql: str) -> CompiledQuery:
        """Parse and bind a query without running it, raising the errors a query would raise.

        Bulk jobs check their SOQL when created but read the org only when they complete.
        """
        return compile_query(parse(soql), Schema(self._readable_objects(), {}))

    def truth(self, sobject: str) -> Iterator[dict]:
        """Every record not purged, all fields, plus `_dirty` naming its dirt when it has any."""
        obj = self._object(sobject)
        if obj is None:
            raise EmulatorError(404, "NOT_FOUND", "The requested resource does not exist")
        with self._lock:
            rows = list(self._tables[obj.name].values())
        read = self._readers[obj.name]
        return (read(row) for row in rows)

    def record(self, sobject: str, record_id: str) -> dict | None:
        obj = self._object(sobject)
        if obj is None:
            raise EmulatorError(404, "NOT_FOUND", "The requested resource does not exist")
        if not is_valid_id(record_id):
            return None
        with self._lock:
            row = self._tables[obj.name].get(to18(record_id))
        return None if row is None else self._readers[obj.name](row)

    def count(self, sobject: str, *, include_deleted: bool = False) -> int:
        obj = self._object(sobject)
        if obj is None:
            raise EmulatorError(404, "NOT_FOUND", "The requested resource does not exist")
        with self._lock:
            rows = list(self._tables[obj.name].values())
        return len(rows) if include_deleted else len(_queryable(obj, rows))

    def api_update_counts(self, sobject: str) -> dict[str, int]:
        """How many API updates (sObject Collections) changed each record, by 18-char Id.

        Control-API mutations are not counted: this is what tests use to check that a writer
        sent each record once.
        """
        obj = self._object(sobject)
        if obj is None:
            raise EmulatorError(404, "NOT_FOUND", "The requested resource does not exist")
        with self._lock:
            return dict(self._api_updates.get(obj.name, {}))

    # --- sObject Collections update ---------------------------------------------------------

    def update_collection(self, records: list[dict], *, all_or_none: bool) -> list[dict]:
        """PATCH composite/sobjects: per-record results in request order."""
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise EmulatorError(
                400, "JSON_PARSER_ERROR", "records must be a JSON array of record objects"
            )
        if len(records) > MAX_COLLECTION:
            raise EmulatorError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_COLLECTION} records "
                "into this call",
            )
        with self._lock:
            stamp = _now_stamp()
            pending: dict[tuple[str, str], tuple] = {}
            outcomes: list[tuple[str, str] | dict] = []
            for record in records:
                outcome = self._plan_update(record, stamp, pending)
                if isinstance(outcome, tuple):
                    pending[outcome[:2]] = outcome[2]
                    outcomes.append(outcome[:2])
                else:
                    outcomes.append(outcome)
            failed = any(isinstance(o, dict) for o in outcomes)
            if not (all_or_none and failed):
                for (name, rid), row in pending.items():
                    self._tables[name][rid] = row
                    counts = self._api_updates.setdefault(name, {})
                    counts[rid] = counts.get(rid, 0) + 1
        return [_result(o, rolled_back=all_or_none and failed) for o in outcomes]

    def update_record(self, sobject: str, record_id: str, fields: Mapping[str, object]) -> dict:
        """PATCH sobjects/{sobject}/{id}: one record's update, answered like a collection's."""
        record = {**fields, "attributes": {"type": sobject}, "id": record_id}
        return self.update_collection([record], all_or_none=False)[0]

    def _plan_update(
        self, record: dict, stamp: str, pending: Mapping[tuple[str, str], tuple]
    ) -> tuple[str, str, tuple] | dict:
        attributes = record.get("attributes")
        type_name = attributes.get("type") if isinstance(attributes, dict) else None
        if not type_name:
            return _error("INVALID_TYPE", "Must send a concrete entity type.")
        obj = self._readable_object(type_name)
        if obj is None:
            return _error("INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
        raw_id = record.get("id", record.get("Id"))
        if raw_id is None:
            return _error("MISSING_ARGUMENT", "Id not specified in an update call")
        if not is_valid_id(raw_id) or raw_id[:3] != obj.key_prefix:
            return _error(
                "MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: {raw_id}", ["Id"]
            )
        rid = to18(raw_id)
        row = pending.get((obj.name, rid)) or self._tables[obj.name].get(rid)
        if row is None:
            return _error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if row[_IS_DELETED]:
            return _error("ENTITY_IS_DELETED", "entity is deleted")
        refused = self._rules.refusal(obj, row)
        if refused is not None:
            return _error(*refused)
        changes: dict[int, object] = {}
        for key, value in record.items():
            if key in ("attributes", "id", "Id"):
                continue
            field = obj.field(key)
            if field is None:
                return _error(
                    "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key]
                )
            if not field.updateable:
                return _error(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {field.name}. Please check the security "
                    "settings of this field and verify that it is read/write for your profile "
                    "or permission set.",
                    [field.name],
                )
            try:
                changes[obj.slots[field.name]] = coerce_for_api(field, value)
            except FieldValueError as exc:
                return _error(exc.code, exc.message, [field.name])
        remaining = self._row_locks.get(rid, 0)
        if remaining:
            if remaining > 1:
                self._row_locks[rid] = remaining - 1
            else:
                del self._row_locks[rid]
            return _error(
                "UNABLE_TO_LOCK_ROW",
                f"unable to obtain exclusive access to this record or 1 records: {rid}",
            )
        return obj.name, rid, self._write(obj, row, changes, stamp)

    def _write(
        self, obj: ObjectDef, row: tuple, changes: Mapping[int, object], stamp: str
    ) -> tuple:
        """The row with changes applied, its stamps moved and its derived fields recomputed."""
        values = list(_touched(obj, row, changes, stamp))
        self._rules.derive(obj, row, values, stamp)
        return tuple(values)

    # --- control-API mutations -----------------------------------------------------------------

    def mutate(self, op: dict) -> dict:
        """Change the org the way users and integrations would; bad ops raise ValueError."""
        if not isinstance(op, dict):
            raise ValueError("a mutation must be a JSON object with an 'op' key")
        handler = self._mutations().get(op.get("op"))  # type: ignore[arg-type]
        if handler is None:
            raise ValueError(
                f"unknown mutation op {op.get('op')!r}; expected one of {sorted(self._mutations())}"
            )
        obj = self._object(op.get("object"))
        if obj is None:
            raise ValueError(
                f"unknown object {op.get('object')!r}; expected one of {self.object_names()}"
            )
        with self._lock:
            return handler(obj, op)

    def _mutations(self) -> dict[str, Callable[[ObjectDef, dict], dict]]:
        return {
            "update": self._op_update,
            "insert": self._op_insert,
            "delete": self._op_delete,
            "undelete": self._op_undelete,
            "purge": self._op_purge,
            "late_commit": self._op_late_commit,
            "touch_many": self._op_touch_many,
            "lock": self._op_lock,
            "convert": self._op_convert,
            "archive": self._op_archive,
        }

    def _existing(self, obj: ObjectDef, raw_id: object) -> tuple[str, tuple]:
        if not is_valid_id(raw_id) or str(raw_id)[:3] != obj.key_prefix:
            raise ValueError(f"{raw_id!r} is not a valid {obj.name} Id")
        rid = to18(str(raw_id))
        row = self._tables[obj.name].get(rid)
        if row is None:
            raise ValueError(f"no {obj.name} with Id {rid} (never existed or purged)")
        return rid, row

    def _control_changes(self, obj: ObjectDef, fields: object) -> dict[int, object]:
        if fields is None:
            return {}
        if not isinstance(fields, dict):
            raise ValueError("'fields' must be an object of field name -> value")
        changes: dict[int, object] = {}
        for key, value in fields.items():
            field = obj.field(str(key))
            if field is None:
                raise ValueError(f"unknown field {key!r} on {obj.name}")
            if field.name in _SYSTEM_FIELDS:
                raise ValueError(f"{obj.name}.{field.name} is maintained by the org itself")
            if is_derived(obj.name, field):
                raise ValueError(
                    f"{obj.name}.{field.name} is a compound field; set its components instead"
                )
            try:
                changes[obj.slots[field.name]] = coerce_for_control(field, value)
            except FieldValueError as exc:
                raise ValueError(f"{obj.name}.{field.name}: {exc.message}") from exc
        return changes

    def _op_update(self, obj: ObjectDef, op: dict) -> dict:
        rid, row = self._existing(obj, op.get("id"))
        stamp = _now_stamp()
        changes = self._control_changes(obj, op.get("fields"))
        self._tables[obj.name][rid] = self._write(obj, row, changes, stamp)
        return {"op": "update", "object": obj.name, "id": rid, "system_modstamp": stamp}

    def _new_row(self, obj: ObjectDef, changes: dict[int, object], stamp: str) -> tuple[str, tuple]:
        """A new record: fields not given get their defaults, derived fields are computed."""
        sequence = self._next_sequence[obj.name]
        self._next_sequence[obj.name] = sequence + 1
        rid = make_id(obj.key_prefix, sequence)
        row: list = [None] * (obj.dirty_slot + 1)
        row[_ID] = rid
        row[_IS_DELETED] = False
        for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            row[obj.slots[name]] = stamp
        if "Days_Since_Activity__c" in obj.slots:
            row[obj.slots["Days_Since_Activity__c"]] = 0.0
        for f in obj.stored:
            if f.default is not None:
                row[obj.slots[f.name]] = f.default
        for slot, value in changes.items():
            row[slot] = value
        self._rules.derive(obj, None, row, stamp)
        return rid, tuple(row)

    def _insert(self, obj: ObjectDef, changes: dict[int, object], stamp: str) -> str:
        rid, row = self._new_row(obj, changes, stamp)
        self._tables[obj.name][rid] = row
        return rid

    def _op_insert(self, obj: ObjectDef, op: dict) -> dict:
        changes = self._control_changes(obj, op.get("fields"))
        stamp = _now_stamp()
        rid = self._insert(obj, changes, stamp)
        return {"op": "insert", "object": obj.name, "id": rid, "system_modstamp": stamp}

    def _op_delete(self, obj: ObjectDef, op: dict) -> dict:
        rid, row = self._existing(obj, op.get("id"))
        if row[_IS_DELETED]:
            raise ValueError(f"{obj.name} {rid} is already in the recycle bin")
        stamp = _now_stamp()
        self._tables[obj.name][rid] = _touched(obj, row, {_IS_DELETED: True}, stamp)
        return {"op": "delete", "object": obj.name, "id": rid, "system_modstamp": stamp}

    def _op_undelete(self, obj: ObjectDef, op: dict) -> dict:
        rid, row = self._existing(obj, op.get("id"))
        if not row[_IS_DELETED]:
            raise ValueError(f"{obj.name} {rid} is not in the recycle bin")
        stamp = _now_stamp()
        self._tables[obj.name][rid] = _touched(obj, row, {_IS_DELETED: False}, stamp)
        return {"op": "undelete", "object": obj.name, "id": rid, "system_modstamp": stamp}

    def _op_purge(self, obj: ObjectDef, op: dict) -> dict:
        rid, _ = self._existing(obj, op.get("id"))
        del self._tables[obj.name][rid]
        self._row_locks.pop(rid, None)
        return {"op": "purge", "object": obj.name, "id": rid}

    def _op_late_commit(self, obj: ObjectDef, op: dict) -> dict:
        age = op.get("age_seconds", 120)
        if not isinstance(age, int | float) or isinstance(age, bool) or age < 0:
            raise ValueError("'age_seconds' must be a non-negative number")
        moment = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=age)
        stamp = format_datetime(moment)
        changes = self._control_changes(obj, op.get("fields"))
        if op.get("id") is None:
            rid, row = self._new_row(obj, changes, stamp)
            created = True
        else:
            rid, old = self._existing(obj, op.get("id"))
            row = self._write(obj, old, changes, stamp)
            created = False
        self._tables[obj.name][rid] = row
        return {
            "op": "late_commit",
            "object": obj.name,
            "id": rid,
            "created": created,
            "system_modstamp": stamp,
        }

    def _op_touch_many(self, obj: ObjectDef, op: dict) -> dict:
        table = self._tables[obj.name]
        if op.get("ids") is not None:
            if not isinstance(op["ids"], list):
                raise ValueError("'ids' must be a list of record Ids")
            ids = [self._existing(obj, raw)[0] for raw in op["ids"]]
        else:
            count = op.get("count")
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise ValueError("touch_many needs 'ids' (a list) or 'count' (a positive integer)")
            live = [rid for rid, row in table.items() if not row[_IS_DELETED]]
            if count > len(live):
                raise ValueError(f"count {count} exceeds the {len(live)} live {obj.name} records")
            ids = self._rng.sample(live, count)
        changes = self._control_changes(obj, op.get("fields"))
        stamp = _now_stamp()
        for rid in ids:
            table[rid] = self._write(obj, table[rid], changes, stamp)
        return {"op": "touch_many", "object": obj.name, "ids": ids, "system_modstamp": stamp}

    def _op_lock(self, obj: ObjectDef, op: dict) -> dict:
        rid, _ = self._existing(obj, op.get("id"))
        attempts = op.get("attempts", 1)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
            raise ValueError("'attempts' must be a non-negative integer")
        if attempts:
            self._row_locks[rid] = attempts
        else:
            self._row_locks.pop(rid, None)
        return {"op": "lock", "object": obj.name, "id": rid, "attempts": attempts}

    def _op_convert(self, obj: ObjectDef, op: dict) -> dict:
        """Convert a Lead as a user would: a new Contact from its person fields, at the Account
        `account_id` or at a new one made from its company fields, optionally naming an existing
        Opportunity of that Account; the Lead's stamps move as on any update. Everything is
        checked before anything is written."""
        if obj.name != "Lead":
            raise ValueError(f"only Leads are converted, not {obj.name}")
        rid, lead = self._existing(obj, op.get("id"))
        if lead[_IS_DELETED] or lead[obj.slots["IsConverted"]]:
            raise ValueError(f"Lead {rid} is deleted or already converted")
        account_id = self._live_id("Account", op.get("account_id"))
        opportunity_id = self._live_id("Opportunity", op.get("opportunity_id"))
        if account_id is None and not lead[obj.slots["Company"]]:
            raise ValueError(f"Lead {rid} has no Company to make an Account of; give account_id")
        if opportunity_id is not None and (
            account_id is None
            or self._rules.account_of("Opportunity", opportunity_id) != account_id
        ):
            raise ValueError("the converted Opportunity must belong to the converted Account")
        stamp = _now_stamp()
        if account_id is None:
            account_id = self._insert(
                self._objects["Account"], self._rules.account_from_lead(lead), stamp
            )
        contact_id = self._insert(
            self._objects["Contact"], self._rules.contact_from_lead(lead, account_id), stamp
        )
        changes = self._rules.conversion(contact_id, account_id, opportunity_id, stamp[:10])
        self._tables[obj.name][rid] = _touched(obj, lead, changes, stamp)
        return {
            "op": "convert",
            "object": obj.name,
            "id": rid,
            "contact_id": contact_id,
            "account_id": account_id,
            "opportunity_id": opportunity_id,
            "system_modstamp": stamp,
        }

    def _live_id(self, sobject: str, raw_id: object) -> str | None:
        """The 18-character Id of an existing record not in the recycle bin; None for None."""
        if raw_id is None:
            return None
        rid, row = self._existing(self._objects[sobject], raw_id)
        if row[_IS_DELETED]:
            raise ValueError(f"{sobject} {rid} is in the recycle bin")
        return rid

    def _op_archive(self, obj: ObjectDef, op: dict) -> dict:
        """Archive an activity as Salesforce's archiving job does: IsArchived becomes true and
        nothing else changes. The reference does not say whether archiving moves the stamps;
        the emulator leaves SystemModstamp and LastModifiedDate as they were."""
        slot = obj.slots.get("IsArchived")
        if slot is None:
            raise ValueError(f"only activities (Task, Event) are archived, not {obj.name}")
        rid, row = self._existing(obj, op.get("id"))
        if row[slot]:
            raise ValueError(f"{obj.name} {rid} is already archived")
        values = list(row)
        values[slot] = True
        self._tables[obj.name][rid] = tuple(values)
        stamp = row[obj.slots["SystemModstamp"]]
        return {"op": "archive", "object": obj.name, "id": rid, "system_modstamp": stamp}


def _touched(obj: ObjectDef, row: tuple, changes: Mapping[int, object], stamp: str) -> tuple:
    """A new version of the row with the changes applied and its modification stamps moved."""
    values = list(row)
    for slot, value in changes.items():
        values[slot] = value
    values[obj.slots["LastModifiedDate"]] = stamp
    values[obj.slots["SystemModstamp"]] = stamp
    return tuple(values)


def _queryable(obj: ObjectDef, rows: list[tuple]) -> list[tuple]:
    """The rows a plain query sees: none in the recycle bin and, for activities, none archived."""
    archived = obj.slots.get("IsArchived")
    if archived is None:
        return [row for row in rows if not row[_IS_DELETED]]
    return [row for row in rows if not row[_IS_DELETED] and not row[archived]]


def _result(outcome: tuple[str, str] | dict, *, rolled_back: bool) -> dict:
    if isinstance(outcome, dict):
        return {"success": False, "errors": [outcome]}
    if rolled_back:
        return {
            "success": False,
            "errors": [
                _error(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request "
                    "was using AllOrNone header",
                )
            ],
        }
    return {"id": outcome[1], "success": True, "errors": []}


def _serve_duplicates(rows: list[tuple], dirty_slot: int) -> list[tuple]:
    """Emit each `duplicate_id` record a second time further on, past a page boundary.

    Real result sets can repeat a record across pages (it moved while the cursor was open);
    nothing in the API promises uniqueness, so the connector must de-duplicate.
    """
    positions = [i for i, row in enumerate(rows) if row[dirty_slot] == gen.DUPLICATE_ID]
    if not positions:
        return rows
    inserts: dict[int, list[tuple]] = {}
    for i in positions:
        target = min(len(rows), i + 201 + (i * 7919) % 1800)
        inserts.setdefault(target, []).append(rows[i])
    out: list[tuple] = []
    previous = 0
    for target in sorted(inserts):
        out.extend(rows[previous:target])
        out.extend(inserts[target])
        previous = target
    out.extend(rows[previous:])
    return out


def _truth_reader(obj: ObjectDef) -> Callable[[tuple], dict]:
    readers: list[tuple[str, Callable[[tuple], object]]] = []
    for field in obj.fields:
        if is_derived(obj.name, field):
            readers.append((field.name, compound_reader(obj, field)))
        else:
            slot = obj.slots[field.name]
            readers.append((field.name, operator.itemgetter(slot)))
    dirty_slot = obj.dirty_slot

    def read(row: tuple) -> dict:
        out = {name: get(row) for name, get in readers}
        if row[dirty_slot] is not None:
            out["_dirty"] = row[dirty_slot]
        return out

    return read
