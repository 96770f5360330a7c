"""The three quality gates every page passes before it is loaded, as Pandera schemas.

0. Text is normalised first (trimmed, blanks made missing, emails lowercased), so what the gates
   judge is what would be stored. The transform does the same; doing it again costs little and
   keeps the gates right whatever mapping produced the frame.
1. `required_fields`: the entity's required columns are present (persons: an email, or a first and
   last name).
2. `deduplication`: one row per external id (the most recently modified wins): a repeated id is
   the same record served twice and is simply dropped. Email twins are not judged here: a page
   sees only part of a tenant, so the store marks them tenant-wide (`store/duplicates.py`).
3. `type_coercion`: numbers and dates parsed (coerce.py), whole numbers where the column is an
   integer, text no longer than `MAX_TEXT_LENGTH`.

Rejected rows come back with their stage, field and reason so the loader can quarantine them in
`quality_failures`; nothing is dropped silently. passed + failed + duplicates_removed == input.

Speed: every gate works on row positions and Arrow-backed columns of the whole page, and the page
is copied once, at the end, for the clean rows. Deduplication sorts (Arrow `sort_indices`) instead
of hashing strings, so a Pandera check only has to compare neighbours. Schemas are built once and
validated eagerly, the type gate's column by column: each check still reports every failing row,
but a failure skips the summary a lazy validation builds at the frame, column and array level,
which was most of a gate's time on the small pages of an incremental sync.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
from pandera.errors import SchemaError

from gtm_pipeline.sync.coerce import to_boolean, to_date, to_datetime_utc, to_number
from gtm_pipeline.sync.entities import Entity
from gtm_pipeline.sync.text import clean_text, is_arrow_text

REQUIRED = "required_fields"
DEDUPLICATION = "deduplication"
TYPE_COERCION = "type_coercion"
STAGES = (REQUIRED, DEDUPLICATION, TYPE_COERCION)
MAX_TEXT_LENGTH = 255
# The store's integer columns are 32-bit on PostgreSQL; a larger "whole number" would fail the
# page's upsert on every run (or wrap when cast to Int64), so the gate rejects it instead.
MAX_INTEGER = 2**31 - 1
FAILURE_COLUMNS = ["row", "external_id", "stage", "field", "reason"]
_BOOKKEEPING = {"system_modstamp", "is_deleted", "custom_fields", "external_id"}


@dataclass
class QualityStats:
    input: int = 0
    passed: int = 0
    failed: int = 0
    duplicates_removed: int = 0
    failed_by_stage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))

    def add(self, other: QualityStats) -> None:
        self.input += other.input
        self.passed += other.passed
        self.failed += other.failed
        self.duplicates_removed += other.duplicates_removed
        for stage, count in other.failed_by_stage.items():
            self.failed_by_stage[stage] = self.failed_by_stage.get(stage, 0) + count

    def as_dict(self) -> dict[str, object]:
        return {
            "input": self.input,
            "passed": self.passed,
            "failed": self.failed,
            "duplicates_removed": self.duplicates_removed,
            "failed_by_stage": dict(self.failed_by_stage),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityStats:
        """The inverse of `as_dict`, for stats read back from the store's `last_stats`."""
        by_stage = dict.fromkeys(STAGES, 0)
        by_stage.update({str(k): int(v) for k, v in (data.get("failed_by_stage") or {}).items()})
        return cls(
            input=int(data.get("input", 0)),
            passed=int(data.get("passed", 0)),
            failed=int(data.get("failed", 0)),
            duplicates_removed=int(data.get("duplicates_removed", 0)),
            failed_by_stage=by_stage,
        )


@dataclass
class QualityResult:
    clean: pd.DataFrame
    failures: pd.DataFrame
    """One row per rejected record: row (input position), external_id, stage, field, reason."""
    stats: QualityStats


def _failures(
    rows: np.ndarray, frame: pd.DataFrame, stage: str, fld: Any, reason: Any
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": np.asarray(rows, dtype=np.int64),
            "external_id": frame["external_id"].iloc[rows].to_numpy(dtype=object),
            "stage": stage,
            "field": fld,
            "reason": reason,
        },
        columns=FAILURE_COLUMNS,
    )


_NO_FAILURES = pd.DataFrame(
    {c: pd.Series(dtype="int64" if c == "row" else object) for c in FAILURE_COLUMNS}
)


def _no_failures() -> pd.DataFrame:
    return _NO_FAILURES.copy()


def _rows_failing(
    schema: pa.DataFrameSchema | pa.SeriesSchema | pa.Column, data: pd.DataFrame | pd.Series
) -> np.ndarray:
    """Row labels of `data` that fail `schema` (validated eagerly), each once, ascending."""
    try:
        schema.validate(data)
    except SchemaError as error:
        return _failed_rows(error)
    return np.array([], dtype=np.int64)


def _failed_rows(error: SchemaError) -> np.ndarray:
    """Row labels of the failure cases Pandera reported, each once, ascending.

    A failure without rows (a check that could not run, a column of the wrong type) is a bug in
    the gates, not bad data: it is raised rather than read as "no row failed".
    """
    cases = error.failure_cases
    if not isinstance(cases, pd.DataFrame) or "index" not in cases or cases["index"].isna().any():
        raise RuntimeError(f"a quality gate could not check the page: {error}") from error
    return np.unique(pd.to_numeric(cases["index"]).to_numpy(dtype=np.int64))


# -- stage 0: text normalisation ---------------------------------------------------------------


def text_columns(entity: Entity, frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in _BOOKKEEPING and c not in _typed_columns(entity)]


def _typed_columns(entity: Entity) -> set[str]:
    return {
        *entity.integer_columns,
        *entity.number_columns,
        *entity.date_columns,
        *entity.datetime_columns,
        *entity.boolean_columns,
    }


def normalise_text(entity: Entity, frame: pd.DataFrame) -> pd.DataFrame:
    """Trimmed text, blanks missing, emails lowercased; ids trimmed too (they are compared)."""
    names = [c for c in [*text_columns(entity, frame), "external_id"] if c in frame]
    emails = entity.email_columns
    return frame.assign(**{c: clean_text(frame[c], lowercase=c in emails) for c in names})


# -- stage 1 -----------------------------------------------------------------------------------


def _present(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].notna() if column in frame else pd.Series(False, index=frame.index)


def _required_columns(entity: Entity) -> list[str]:
    return list(dict.fromkeys(c for group in entity.required for c in group))


def presence(entity: Entity, frame: pd.DataFrame) -> pd.DataFrame:
    """Whether each required column is set, per row: what the required-fields schema checks.

    Pandera reports a frame-level failure by stacking the failing rows; stacking booleans is
    cheap, stacking strings with missing values is not (seconds per million rows).
    """
    return pd.DataFrame({c: _present(frame, c) for c in _required_columns(entity)})


def _meets_requirements(entity: Entity, present: pd.DataFrame) -> pd.Series:
    """Per row, whether every column of some required group is set (NumPy: pandas' `all(axis=1)`
    over a column selection costs more than the rest of the gate on a page of ten rows)."""
    columns = {c: present[c].to_numpy(dtype=bool) for c in present.columns}
    ok = np.zeros(len(present), dtype=bool)
    for group in entity.required:
        ok |= np.logical_and.reduce([columns[c] for c in group])
    return pd.Series(ok, index=present.index)


@functools.cache
def required_schema(entity: Entity) -> pa.DataFrameSchema:
    """Over `presence(entity, frame)`: some group of required columns is entirely set. One
    frame-wide check and no column components: `presence` makes the columns, so per-column dtype
    checks would only add Pandera's fixed cost to every page."""
    return pa.DataFrameSchema(
        checks=[pa.Check(lambda df: _meets_requirements(entity, df), name=REQUIRED)],
        name=f"{entity.name}_{REQUIRED}",
    )


def _missing_reason(entity: Entity, frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Which required columns each failing row lacks, as the field and a sentence."""
    first_group = entity.required[0]
    missing = pd.Series("", index=frame.index)
    for column in _required_columns(entity):
        missing = missing + np.where(_present(frame, column), "", column + ",")
    missing = missing.str.rstrip(",")
    options = " or ".join("(" + ", ".join(g) + ")" for g in entity.required)
    reason = "missing required field(s): " + missing.str.replace(",", ", ")
    if len(entity.required) > 1:
        reason = reason + f"; needs {options}"
    fld = missing.str.split(",").str[0].where(missing != "", first_group[0])
    return fld, reason


def _stage_required(entity: Entity, frame: pd.DataFrame) -> pd.DataFrame:
    rows = _rows_failing(required_schema(entity), presence(entity, frame))
    if not len(rows):
        return _no_failures()
    fld, reason = _missing_reason(entity, frame.iloc[rows])
    return _failures(rows, frame, REQUIRED, fld.to_numpy(), reason.to_numpy())


# -- stage 2 -----------------------------------------------------------------------------------


def _last_of_its_run(keys: pd.Series) -> pd.Series:
    """True where the next row holds another key (or either is missing)."""
    return (keys != keys.shift(-1)).fillna(True).astype(bool) | keys.isna()


@functools.cache
def dedup_schema(column: str) -> pa.SeriesSchema:
    """`column` unique, on rows sorted by (key, modstamp): the last of each run of equal keys is
    the newest and is kept. Comparing neighbours is what makes this check cheap; sorting is the
    caller's half of the contract (`_sorted_ids`)."""
    return pa.SeriesSchema(
        nullable=True, checks=pa.Check(_last_of_its_run, name="newest_only"), name=column
    )


def _arrow(series: pd.Series) -> pyarrow.ChunkedArray | pyarrow.Array:
    if hasattr(series.array, "__arrow_array__"):
        return series.array.__arrow_array__()
    return pyarrow.array(series, from_pandas=True)


def _sorted_ids(frame: pd.DataFrame) -> pd.Series:
    """External ids ordered by (id, modstamp), newest copy last, indexed by row position."""
    keys = _arrow(frame["external_id"])
    columns = {"key": keys, "stamp": _arrow(frame["system_modstamp"])}
    order = pc.sort_indices(
        pyarrow.table(columns), sort_keys=[(name, "ascending") for name in columns]
    ).to_numpy()
    ordered = keys.take(order)
    values = pd.arrays.ArrowStringArray(ordered) if _is_text(ordered) else ordered
    return pd.Series(values, index=order, name="external_id")


def _is_text(values: pyarrow.ChunkedArray) -> bool:
    return pyarrow.types.is_string(values.type) or pyarrow.types.is_large_string(values.type)


def _repeated_ids(frame: pd.DataFrame, alive: np.ndarray) -> np.ndarray:
    """Older copies of records served more than once; `alive` is updated in place.

    Run before any other gate: a record's newest version is the one judged, so a bad newest
    version is quarantined rather than an older good one loaded in its place.
    """
    repeated = _rows_failing(dedup_schema("external_id"), _sorted_ids(frame))
    alive[repeated] = False
    return repeated


# -- stage 3 -----------------------------------------------------------------------------------


@functools.cache
def typed_schema(entity: Entity, text: tuple[str, ...]) -> pa.DataFrameSchema:
    columns: dict[str, pa.Column] = {}
    for column in entity.integer_columns:
        columns[column] = pa.Column(
            "Float64",
            checks=pa.Check(
                lambda s: s.isna() | ((s == s.round()) & (s.abs() <= MAX_INTEGER)),
                name="whole_number",
            ),
            nullable=True,
        )
    for column in entity.number_columns:
        columns[column] = pa.Column("Float64", nullable=True)
    for column in entity.date_columns:
        columns[column] = pa.Column("datetime64[ns]", nullable=True)
    for column in entity.datetime_columns:
        columns[column] = pa.Column("datetime64[us, UTC]", nullable=True)
    for column in entity.boolean_columns:
        columns[column] = pa.Column("boolean", nullable=True)
    for column in text:
        columns[column] = pa.Column(
            checks=pa.Check.str_length(max_value=MAX_TEXT_LENGTH), nullable=True
        )
    return pa.DataFrameSchema(columns, name=f"{entity.name}_{TYPE_COERCION}")


def _coerce(entity: Entity, frame: pd.DataFrame) -> tuple[dict[str, pd.Series], pd.DataFrame]:
    """Parsed values, and a mask of cells that held something that could not be parsed."""
    typed: dict[str, pd.Series] = {}
    for column in entity.integer_columns + entity.number_columns:
        if column in frame:
            typed[column] = to_number(frame[column])
    for column in entity.date_columns:
        if column in frame:
            typed[column] = to_date(frame[column]).astype("datetime64[ns]")
    for column in entity.datetime_columns:
        if column in frame:
            typed[column] = to_datetime_utc(frame[column]).astype("datetime64[us, UTC]")
    for column in entity.boolean_columns:
        if column in frame:
            typed[column] = to_boolean(frame[column])
    unreadable = pd.DataFrame(
        {c: frame[c].notna() & typed[c].isna() for c in typed}, index=frame.index
    )
    return typed, unreadable


def _unreadable_failures(
    entity: Entity, frame: pd.DataFrame, unreadable: pd.DataFrame, alive: np.ndarray
) -> list[pd.DataFrame]:
    found = []
    for column in unreadable.columns:
        rows = np.flatnonzero(unreadable[column].to_numpy() & alive)
        if len(rows):
            what = _expected(entity, column)
            values = frame[column].iloc[rows].astype("str").str.slice(0, 60)
            reason = f"{column}: cannot read " + values.map(repr) + f" as {what}"
            found.append(_failures(rows, frame, TYPE_COERCION, column, reason.to_numpy()))
    return found


def _expected(entity: Entity, column: str) -> str:
    """What a column's values must read as, in a quarantine reason."""
    if column in entity.date_columns:
        return "a date (YYYY-MM-DD)"
    if column in entity.datetime_columns:
        return "a date and time (ISO 8601)"
    if column in entity.boolean_columns:
        return "true or false"
    return "a number"


def _invalid_failures(
    entity: Entity,
    frame: pd.DataFrame,
    checked: pd.DataFrame,
    text: list[str],
    alive: np.ndarray,
) -> list[pd.DataFrame]:
    """Rows whose parsed values break a column's check. A typed column the page lacks (`_coerce`
    parsed nothing for it) has nothing to check."""
    found = []
    for column, schema in typed_schema(entity, tuple(text)).columns.items():
        if column not in checked:
            continue
        rows = _rows_failing(schema, checked)
        rows = rows[alive[rows]]
        if not len(rows):
            continue
        if column in text:
            lengths = frame[column].iloc[rows].str.len().astype("str")
            reason = f"{column}: text longer than {MAX_TEXT_LENGTH} characters (" + lengths + ")"
            reason_values = reason.to_numpy()
        else:
            reason_values = f"{column}: not a whole number between -{MAX_INTEGER} and {MAX_INTEGER}"
        found.append(_failures(rows, frame, TYPE_COERCION, column, reason_values))
    return found


def _may_be_too_long(text: pd.Series) -> bool:
    """Whether any value is longer than the limit: a column that cannot fail is not handed to
    Pandera, whose fixed cost per column is most of the gate's time on a 2,000-row page."""
    if not is_arrow_text(text):
        return True
    longest = pc.max(pc.utf8_length(text.array.__arrow_array__())).as_py()
    return longest is not None and longest > MAX_TEXT_LENGTH


def _stage_types(
    entity: Entity, frame: pd.DataFrame, alive: np.ndarray
) -> tuple[dict[str, pd.Series], pd.DataFrame]:
    """Parsed columns for the whole page, and failures of the rows still `alive` (a mask)."""
    typed, unreadable = _coerce(entity, frame)
    text = [c for c in text_columns(entity, frame) if _may_be_too_long(frame[c])]
    checked = pd.DataFrame({**{c: frame[c] for c in text}, **typed}, index=frame.index)
    found = _unreadable_failures(entity, frame, unreadable, alive)
    found += _invalid_failures(entity, frame, checked, text, alive)
    failures = pd.concat(found) if found else _no_failures()
    failures = failures.sort_values("row", kind="stable").drop_duplicates("row")
    return typed, failures


# -- the pipeline ------------------------------------------------------------------------------


def run_gates(entity: Entity, frame: pd.DataFrame) -> QualityResult:
    """Run the three gates over one page of canonical rows (as produced by transform)."""
    frame = normalise_text(entity, frame.reset_index(drop=True))
    n = len(frame)
    stats = QualityStats(input=n)
    alive = np.ones(n, dtype=bool)
    repeated = _repeated_ids(frame, alive)
    required = _stage_required(entity, frame)
    required = required[alive[required["row"].to_numpy(dtype=np.int64)]]
    alive[required["row"].to_numpy(dtype=np.int64)] = False
    typed, mistyped = _stage_types(entity, frame, alive)
    alive[mistyped["row"].to_numpy(dtype=np.int64)] = False
    clean = frame.assign(**typed)
    if not alive.all():
        clean = clean[alive]  # a mask filters Arrow columns faster than a take
    whole = {c: clean[c].astype("Int64") for c in entity.integer_columns if c in clean}
    clean = clean.assign(**whole) if whole else clean
    failures = _no_failures()
    if len(required) or len(mistyped):
        failures = pd.concat([required, mistyped], ignore_index=True)
        failures = failures.astype({"row": "int64"}).sort_values("row", kind="stable")
    stats.duplicates_removed = len(repeated)
    stats.failed = len(required) + len(mistyped)
    stats.passed = len(clean)
    stats.failed_by_stage = {
        REQUIRED: len(required),
        DEDUPLICATION: 0,
        TYPE_COERCION: len(mistyped),
    }
    return QualityResult(
        clean=clean.reset_index(drop=True), failures=failures.reset_index(drop=True), stats=stats
    )


# -- reporting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """A tenant's whole entity as the store holds it after a sync: records in quarantine per
    gate, and every record known (live rows plus quarantined records not among them)."""

    quarantined: Mapping[str, int]
    records: int

    def rate(self, stage: str) -> float:
        return self.quarantined.get(stage, 0) / self.records if self.records else 0.0


@dataclass(frozen=True)
class StageSummary:
    stage: str
    rejected: int
    rate: float
    """Share of the rows this run checked that the gate rejected."""
    severity: str
    """"PASS" when nothing was rejected, else "WARN" or "ERROR" against the error threshold."""
    tenant_rate: float | None = None
    """Share of the tenant's records of the entity in this gate's quarantine, when known."""


MIN_ROWS_FOR_RUN_RATE = 100
"""A run's own rejection rate is trusted from this many rows on (1 bad row in 8 is noise)."""


def stage_summaries(
    stats: QualityStats, threshold: float, standing: Standing | None = None
) -> list[StageSummary]:
    """Each gate's rejections and severity.

    With a `standing`, a gate is an ERROR while the tenant's quarantine for it holds more than
    `threshold` of the entity's records, even in a run that rejected nothing (the dirty rows are
    still there), or when this run rejected more than `threshold` of at least
    `MIN_ROWS_FOR_RUN_RATE` rows (a mapping that just broke, before the table shows it). An
    incremental run that rejects 1 of its 8 rows on a clean tenant is a WARN. Without a
    standing, the run's own rate is judged.
    """
    out = []
    for stage in STAGES:
        rejected = stats.failed_by_stage.get(stage, 0)
        rate = rejected / stats.input if stats.input else 0.0
        if standing is None:
            tenant_rate = None
            too_many = rate > threshold
        else:
            tenant_rate = standing.rate(stage)
            run_counts = stats.input >= MIN_ROWS_FOR_RUN_RATE and rate > threshold
            too_many = tenant_rate > threshold or run_counts
        severity = "ERROR" if too_many else "WARN" if rejected else "PASS"
        out.append(StageSummary(stage, rejected, rate, severity, tenant_rate))
    return out


REPORT_COLUMNS = ("external_id", "field", "reason", "value")
# Characters that would end a cell, start inline markup or open an HTML tag.
_MARKDOWN_SPECIALS = str.maketrans(
    {c: "\\" + c for c in "\\`*_[]|~"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
)


def markdown_cell(value: object, limit: int = 80) -> str:
    """A value safe inside a Markdown table cell: one line, HTML and Markdown characters escaped,
    so a record holding `<script>` or `|` shows as text and cannot break the table."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.translate(_MARKDOWN_SPECIALS)


def failure_value(failure: Mapping[str, Any]) -> object:
    """The offending value as read: the failing field of the raw record, when there is one."""
    raw = failure.get("raw")
    if isinstance(raw, Mapping) and failure.get("field") in raw:
        return raw[failure["field"]]
    return None


def failures_markdown(failures: Iterable[Mapping[str, Any]], limit: int = 20) -> str:
    """The first `limit` failures as a Markdown table (external id, field, reason, value)."""
    lines = ["| " + " | ".join(REPORT_COLUMNS) + " |", "| --- | --- | --- | --- |"]
    shown = 0
    for failure in failures:
        if shown == limit:
            break
        cells = [failure.get("external_id"), failure.get("field"), failure.get("reason"),
                 failure_value(failure)]  # fmt: skip
        lines.append("| " + " | ".join(markdown_cell(c) for c in cells) + " |")
        shown += 1
    if shown == 0:
        return "No failures."
    return "\n".join(lines)
