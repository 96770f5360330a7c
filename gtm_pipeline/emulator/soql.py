"""SOQL semantics: binding a parsed query to the schema and compiling it to Python closures.

The subset is what a connector legitimately sends: a field list with relationship paths, or
COUNT() alone (the number of matching rows, within LIMIT and OFFSET), one FROM object, WHERE
with AND/OR/NOT and parentheses, comparison/IN/LIKE operators, ORDER BY with NULLS FIRST/LAST
(not with COUNT()), LIMIT and OFFSET. Everything else is rejected with the error code Salesforce
would use, so a connector that only passes against a lenient parser is caught here.

WHERE and ORDER BY are compiled once per query into closures and key functions over the stored
row tuples, so a million-row scan never re-reads the query text.
"""

from __future__ import annotations

import operator
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gtm_pipeline.emulator.errors import (
    EmulatorError,
    invalid_field,
    malformed,
    no_such_column,
    unsupported_type,
)
from gtm_pipeline.emulator.ids import is_valid_id, to18
from gtm_pipeline.emulator.schema import (
    ID_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    FieldDef,
    ObjectDef,
    compound_reader,
    is_derived,
)
from gtm_pipeline.emulator.soql_syntax import (
    BoolOp,
    Compare,
    Expr,
    InList,
    Literal,
    Not,
    OrderItem,
    Path,
    Query,
    datetime_literal,
    format_datetime,
    parse,
)

__all__ = [
    "CompiledQuery",
    "Schema",
    "compile_query",
    "datetime_literal",
    "format_datetime",
    "parse",
    "related_objects",
]

Row = tuple
Getter = Callable[[Row], Any]
Predicate = Callable[[Row], bool]

MAX_OFFSET = 2000

# --- compilation ----------------------------------------------------------------------------


@dataclass
class Resolved:
    """A field path resolved against the schema: the field, and how to read it from a row."""

    path: Path
    field: FieldDef
    getter: Getter
    canonical: tuple[str, ...]
    direct_slot: int | None  # set when the path is a stored field of the queried object itself


def _lookup_field(obj: ObjectDef, name: str) -> FieldDef:
    found = obj.field(name)
    if found is None:
        raise no_such_column(name, obj.name)
    return found


def _leaf_getter(obj: ObjectDef, f: FieldDef) -> Getter:
    if is_derived(obj.name, f):
        return compound_reader(obj, f)
    return operator.itemgetter(obj.slots[f.name])


def _via_parent(ref_slot: int, table: Mapping[str, Row], inner: Getter) -> Getter:
    def read(row: Row) -> object:
        parent_id = row[ref_slot]
        if parent_id is None:
            return None
        parent = table.get(parent_id)
        return None if parent is None else inner(parent)

    return read


class Schema:
    """The objects a query may name, and snapshot tables of parents for relationship paths."""

    def __init__(
        self, objects: Mapping[str, ObjectDef], tables: Mapping[str, Mapping[str, Row]]
    ) -> None:
        self.objects = objects
        self.tables = tables
        self._by_lower = {name.lower(): o for name, o in objects.items()}

    def object(self, name: str) -> ObjectDef:
        found = self._by_lower.get(name.lower())
        if found is None:
            raise unsupported_type(name)
        return found

    def resolve(self, obj: ObjectDef, path: Path) -> Resolved:
        *relations, leaf = path.parts
        chain: list[tuple[int, str]] = []
        canonical: list[str] = []
        current = obj
        for rel in relations:
            ref = current.relationship(rel)
            if ref is None:
                raise invalid_field(
                    f"Didn't understand relationship '{rel}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' after "
                    "the custom relationship name. Please reference your WSDL or the describe "
                    "call for the appropriate names."
                )
            if ref.polymorphic:
                # Salesforce reads a polymorphic lookup (Who, What) through its `Name` object;
                # the emulator does not model that object, so it refuses instead of guessing.
                raise invalid_field(
                    f"The emulator does not select fields through the polymorphic relationship "
                    f"'{ref.relationship_name}'; select {ref.name} instead"
                )
            chain.append((current.slots[ref.name], ref.reference_to[0]))
            canonical.append(str(ref.relationship_name))
            current = self.object(ref.reference_to[0])
        leaf_field = _lookup_field(current, leaf)
        canonical.append(leaf_field.name)
        getter = _leaf_getter(current, leaf_field)
        for slot, target in reversed(chain):
            getter = _via_parent(slot, self.tables.get(target, {}), getter)
        direct = obj.slots.get(leaf_field.name) if not relations else None
        return Resolved(path, leaf_field, getter, tuple(canonical), direct)


def related_objects(query: Query, objects: Mapping[str, ObjectDef]) -> set[str]:
    """Objects reached through relationship paths, so the caller can snapshot them too."""
    by_lower = {n.lower(): o for n, o in objects.items()}
    root = by_lower.get(query.sobject.lower())
    found: set[str] = set()
    if root is None:
        return found
    for path in _all_paths(query):
        current: ObjectDef | None = root
        for rel in path.parts[:-1]:
            ref = current.relationship(rel) if current else None
            if ref is None or ref.polymorphic:
                break
            found.add(ref.reference_to[0])
            current = objects.get(ref.reference_to[0])
    return found


def _all_paths(query: Query) -> list[Path]:
    paths = list(query.select) + [o.path for o in query.order_by]
    stack = [query.where] if query.where is not None else []
    while stack:
        expr = stack.pop()
        if isinstance(expr, BoolOp):
            stack.extend(expr.items)
        elif isinstance(expr, Not):
            stack.append(expr.inner)
        else:
            paths.append(expr.path)
    return paths


# predicates -------------------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_NUMERIC = (int, float)


def _type_error(f: FieldDef, literal: Literal) -> EmulatorError:
    wanted = {"datetime": "dateTime", "int": "integer"}.get(f.type, f.type)
    quoted = f.type in TEXT_TYPES or f.type in ID_TYPES
    return invalid_field(
        f"value of filter criterion for field '{f.name}' must be of type {wanted} and should "
        f"{'' if quoted else 'not '}be enclosed in quotes"
    )


def _coerce(f: FieldDef, literal: Literal) -> object:
    """The literal as a value comparable with what rows store for this field."""
    if literal.kind == "null":
        return None
    expected = (
        "string"
        if f.type in TEXT_TYPES or f.type in ID_TYPES
        else "number"
        if f.type in NUMBER_TYPES
        else "boolean"
        if f.type == "boolean"
        else f.type
    )
    if literal.kind != expected:
        raise _type_error(f, literal)
    if f.type in ID_TYPES:
        value = str(literal.value)
        if not is_valid_id(value):
            raise EmulatorError(400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {value}")
        return to18(value)
    if f.type in TEXT_TYPES:
        return str(literal.value).casefold()
    return literal.value


def _compare(r: Resolved, op: str, literal: Literal) -> Predicate:
    f, get = r.field, r.getter
    value = _coerce(f, literal)
    if value is None:
        if op == "=":
            return lambda row: get(row) is None
        if op == "!=":
            return lambda row: get(row) is not None
        return lambda row: False
    cmp = _OPS[op]
    if f.type in TEXT_TYPES:
        if op == "!=":
            return lambda row: (v := get(row)) is None or v.casefold() != value
        return lambda row: (v := get(row)) is not None and cmp(v.casefold(), value)
    if f.type in NUMBER_TYPES:
        if op in ("=", "!="):
            return lambda row: cmp(get(row), value)
        return lambda row: type(v := get(row)) in _NUMERIC and cmp(v, value)
    if op == "!=":
        return lambda row: get(row) != value
    if op == "=":
        return lambda row: get(row) == value
    return lambda row: (v := get(row)) is not None and cmp(v, value)


def _in_list(r: Resolved, literals: Sequence[Literal], negated: bool) -> Predicate:
    values = [_coerce(r.field, lit) for lit in literals]
    get = r.getter
    if r.field.type in TEXT_TYPES:
        folded = frozenset(v for v in values if v is not None)
        has_null = any(v is None for v in values)

        def member(row: Row) -> bool:
            v = get(row)
            return has_null if v is None else v.casefold() in folded

    else:
        plain = frozenset(values)

        def member(row: Row) -> bool:
            return get(row) in plain

    if negated:
        return lambda row: not member(row)
    return member


def _like(r: Resolved, literal: Literal) -> Predicate:
    if r.field.type not in TEXT_TYPES and r.field.type not in ID_TYPES:
        raise invalid_field(
            f"invalid operator on field '{r.field.name}': LIKE is valid only on string fields"
        )
    regex = re.compile(literal.like, re.IGNORECASE | re.DOTALL)
    get = r.getter
    return lambda row: (v := get(row)) is not None and regex.fullmatch(v) is not None


def _all_of(preds: Sequence[Predicate]) -> Predicate:
    if len(preds) == 2:
        a, b = preds
        return lambda row: a(row) and b(row)
    return lambda row: all(p(row) for p in preds)


def _any_of(preds: Sequence[Predicate]) -> Predicate:
    if len(preds) == 2:
        a, b = preds
        return lambda row: a(row) or b(row)
    return lambda row: any(p(row) for p in preds)


# ordering ---------------------------------------------------------------------------------

_NEVER_NULL = frozenset({"Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"})


def _sort_key(r: Resolved, item: OrderItem) -> Callable[[Row], Any]:
    if not r.field.sortable:
        raise invalid_field(f"field '{r.field.name}' can not be sorted in a query call")
    if r.direct_slot is not None and r.field.name in _NEVER_NULL:
        return operator.itemgetter(r.direct_slot)
    # With reverse=True the largest key comes first, so "nulls first" means the largest key.
    null_key = (0,) if item.nulls_first != item.descending else (2,)
    get = r.getter
    if r.field.type in TEXT_TYPES:
        return lambda row: null_key if (v := get(row)) is None else (1, v.casefold())
    if r.field.type in NUMBER_TYPES:
        # Dirty rows may hold strings in numeric fields; they sort after every number.
        def numeric_key(row: Row) -> object:
            v = get(row)
            if v is None:
                return null_key
            return (1, 1, v) if type(v) is str else (1, 0, v)

        return numeric_key
    return lambda row: null_key if (v := get(row)) is None else (1, v)


# projection -------------------------------------------------------------------------------


@dataclass
class _Node:
    obj: ObjectDef
    items: list[tuple[str, object]] = field(default_factory=list)  # (name, Getter | _Child)


@dataclass
class _Child:
    ref_slot: int
    table: Mapping[str, Row]
    node: _Node


def _serializer(node: _Node, api_version: str) -> Callable[[Row], dict]:
    type_name = node.obj.name
    url_prefix = f"/services/data/v{api_version}/sobjects/{type_name}/"
    plan: list[tuple[str, Callable[[Row], Any]]] = []
    for name, item in node.items:
        if isinstance(item, _Child):
            plan.append((name, _child_reader(item, api_version)))
        else:
            plan.append((name, item))  # type: ignore[arg-type]

    def serialize(row: Row) -> dict:
        out: dict = {"attributes": {"type": type_name, "url": url_prefix + row[0]}}
        for name, read in plan:
            out[name] = read(row)
        return out

    return serialize


def _child_reader(child: _Child, api_version: str) -> Callable[[Row], Any]:
    inner = _serializer(child.node, api_version)
    slot, table = child.ref_slot, child.table

    def read(row: Row) -> object:
        parent_id = row[slot]
        parent = table.get(parent_id) if parent_id is not None else None
        return None if parent is None else inner(parent)

    return read


# compiled query ---------------------------------------------------------------------------


@dataclass
class CompiledQuery:
    """A query bound to the schema: what to read, how to filter, sort and window the rows."""

    sobject: ObjectDef
    columns: list[str]  # canonical dotted paths, in select order
    column_getters: list[Getter]
    column_types: list[str]  # the describe type of each column's field (Bulk CSV formats by it)
    compound_columns: list[str]
    predicate: Predicate | None
    sort_passes: list[tuple[Callable[[Row], Any], bool]]  # applied in this order
    ties_possible: bool
    limit: int | None
    offset: int | None
    selects_is_deleted: bool
    is_count: bool  # SELECT COUNT(): the result is `count(rows)`, with no records
    _root: _Node
    _serializers: dict[str, Callable[[Row], dict]] = field(default_factory=dict)

    def matching(self, rows: list[Row]) -> list[Row]:
        """The rows the WHERE clause keeps, in the order given (a new list either way)."""
        pred = self.predicate
        return rows[:] if pred is None else list(filter(pred, rows))

    def filter_sort(self, rows: list[Row], tie_seed: int) -> list[Row]:
        """Matching rows in ORDER BY order; rows with equal keys come in a seeded random order."""
        matched = self.matching(rows)
        if self.sort_passes:
            if self.ties_possible:
                random.Random(tie_seed).shuffle(matched)
            for key, reverse in self.sort_passes:
                matched.sort(key=key, reverse=reverse)
        return matched

    def window(self, rows: list[Row]) -> list[Row]:
        return rows[self._window()]

    def count(self, rows: list[Row]) -> int:
        """How many rows the query retrieves: the matching rows inside OFFSET and LIMIT."""
        return len(range(len(self.matching(rows)))[self._window()])

    def _window(self) -> slice:
        start = self.offset or 0
        return slice(start, None if self.limit is None else start + self.limit)

    def serializer(self, api_version: str) -> Callable[[Row], dict]:
        found = self._serializers.get(api_version)
        if found is None:
            found = self._serializers[api_version] = _serializer(self._root, api_version)
        return found


def compile_query(query: Query, schema: Schema) -> CompiledQuery:
    """Bind a parsed query to the schema, raising the errors Salesforce gives for bad names."""
    obj = schema.object(query.sobject)
    root = _Node(obj)
    seen: set[tuple[str, ...]] = set()
    columns: list[str] = []
    getters: list[Getter] = []
    types: list[str] = []
    compound: list[str] = []
    for path in query.select:
        resolved = schema.resolve(obj, path)
        key = tuple(p.lower() for p in resolved.canonical)
        if key in seen:
            raise malformed(f"duplicate field selected: {'.'.join(resolved.canonical)}")
        seen.add(key)
        _place(root, schema, resolved)
        columns.append(".".join(resolved.canonical))
        getters.append(resolved.getter)
        types.append(resolved.field.type)
        if resolved.field.is_compound:
            compound.append(columns[-1])
    predicate = _compile_expr(query.where, obj, schema) if query.where is not None else None
    passes: list[tuple[Callable[[Row], Any], bool]] = []
    ties_possible = True
    for item in query.order_by:
        resolved = schema.resolve(obj, item.path)
        passes.append((_sort_key(resolved, item), item.descending))
        if resolved.direct_slot is not None and resolved.field.name == "Id":
            ties_possible = False
    passes.reverse()  # stable sorts: least significant key first
    if query.offset is not None and query.offset > MAX_OFFSET:
        raise EmulatorError(
            400, "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}"
        )
    return CompiledQuery(
        sobject=obj,
        columns=columns,
        column_getters=getters,
        column_types=types,
        compound_columns=compound,
        predicate=predicate,
        sort_passes=passes,
        ties_possible=ties_possible,
        limit=query.limit,
        offset=query.offset,
        selects_is_deleted=any(c == "IsDeleted" for c in columns),
        is_count=query.is_count,
        _root=root,
    )


def _place(root: _Node, schema: Schema, resolved: Resolved) -> None:
    node = root
    for rel in resolved.canonical[:-1]:
        existing = next((item for name, item in node.items if name == rel), None)
        if not isinstance(existing, _Child):
            ref = node.obj.relationship(rel)
            assert ref is not None  # resolve() already checked the path
            target = schema.object(ref.reference_to[0])
            existing = _Child(
                node.obj.slots[ref.name], schema.tables.get(target.name, {}), _Node(target)
            )
            node.items.append((rel, existing))
        node = existing.node
    leaf = resolved.field
    node.items.append((leaf.name, _leaf_getter(node.obj, leaf)))


def _compile_expr(expr: Expr, obj: ObjectDef, schema: Schema) -> Predicate:
    if isinstance(expr, BoolOp):
        preds = [_compile_expr(e, obj, schema) for e in expr.items]
        return _all_of(preds) if expr.op == "AND" else _any_of(preds)
    if isinstance(expr, Not):
        inner = _compile_expr(expr.inner, obj, schema)
        return lambda row: not inner(row)
    resolved = schema.resolve(obj, expr.path)
    if not resolved.field.filterable:
        raise invalid_field(f"field '{resolved.field.name}' can not be filtered in a query call")
    if isinstance(expr, Compare):
        return _compare(resolved, expr.op, expr.literal)
    if isinstance(expr, InList):
        return _in_list(resolved, expr.literals, expr.negated)
    return _like(resolved, expr.literal)
