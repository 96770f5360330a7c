"""The three quality gates every page passes before it is loaded, as Pandera schemas.

1. `required_fields`: the entity's required columns are present (persons: an email, or a first and
   last name).
2. `deduplication`: one row per external id (the most recently modified wins), and for persons one
   row per normalised email. A repeated id is the same record served twice and is simply dropped;
   an email shared by two records rejects the older record, with the id of the one kept.
3. `type_coercion`: numbers and dates parsed (coerce.py), whole numbers where the column is an
   integer, text no longer than `MAX_TEXT_LENGTH`.

Rejected rows come back with their stage, field and reason so the loader can quarantine them in
`quality_failures`; nothing is dropped silently. passed + failed + duplicates_removed == input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from gtm_pipeline.sync.coerce import to_date, to_number
from gtm_pipeline.sync.entities import Entity

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


@dataclass
class QualityResult:
    clean: pd.DataFrame
    failures: pd.DataFrame
    """One row per rejected record: row (input position), external_id, stage, field, reason."""
    stats: QualityStats


def _failures(rows: pd.Index, frame: pd.DataFrame, stage: str, fld, reason) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": rows,
            "external_id": frame.loc[rows, "external_id"].to_numpy(),
            "stage": stage,
            "field": fld,
            "reason": reason,
        }
    )


# -- stage 1 -----------------------------------------------------------------------------------


def _present(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].notna() if column in frame else pd.Series(False, index=frame.index)


def _meets_requirements(entity: Entity, frame: pd.DataFrame) -> pd.Series:
    ok = pd.Series(False, index=frame.index)
    for group in entity.required:
        group_ok = pd.Series(True, index=frame.index)
        for column in group:
            group_ok &= _present(frame, column)
        ok |= group_ok
    return ok


def required_schema(entity: Entity) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        checks=[pa.Check(lambda df: _meets_requirements(entity, df), name=REQUIRED)],
        name=f"{entity.name}_{REQUIRED}",
    )


def _missing_reason(entity: Entity, frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Which required columns each failing row lacks, as the field and a sentence."""
    first_group = entity.required[0]
    missing = pd.Series("", index=frame.index)
    for column in dict.fromkeys(c for group in entity.required for c in group):
        missing = missing + np.where(_present(frame, column), "", column + ",")
    missing = missing.str.rstrip(",")
    options = " or ".join("(" + ", ".join(g) + ")" for g in entity.required)
    reason = "missing required field(s): " + missing.str.replace(",", ", ")
    if len(entity.required) > 1:
        reason = reason + f"; needs {options}"
    fld = missing.str.split(",").str[0].where(missing != "", first_group[0])
    return fld, reason


def _stage_required(entity: Entity, frame: pd.DataFrame) -> pd.DataFrame:
    try:
        required_schema(entity).validate(frame, lazy=True)
    except SchemaErrors as errors:
        rows = pd.Index(errors.failure_cases["index"].dropna().astype(int).unique())
        fld, reason = _missing_reason(entity, frame.loc[rows])
        return _failures(rows, frame, REQUIRED, fld.to_numpy(), reason.to_numpy())
    return pd.DataFrame(columns=FAILURE_COLUMNS)


# -- stage 2 -----------------------------------------------------------------------------------


def dedup_schema(column: str) -> pa.DataFrameSchema:
    """`column` unique; the last occurrence (the newest, once sorted by modstamp) is the keeper."""
    return pa.DataFrameSchema(
        {column: pa.Column(unique=True, report_duplicates="exclude_last", nullable=True)},
        name=f"unique_{column}",
    )


def _duplicate_rows(frame: pd.DataFrame, column: str) -> pd.Index:
    subset = frame[frame[column].notna()]
    try:
        dedup_schema(column).validate(subset[[column]], lazy=True)
    except SchemaErrors as errors:
        return pd.Index(errors.failure_cases["index"].dropna().astype(int).unique())
    return pd.Index([], dtype=int)


def _stage_dedupe(entity: Entity, frame: pd.DataFrame) -> tuple[pd.Index, pd.DataFrame]:
    """Repeated ids to drop, and records rejected for sharing a normalised key with a newer one."""
    # Newest last; equal stamps ordered by id so the same data always keeps the same record.
    ordered = frame.sort_values(["system_modstamp", "external_id"], kind="stable")
    repeated = _duplicate_rows(ordered, "external_id")
    remaining = ordered.drop(index=repeated)
    rejected = []
    for column in entity.dedupe_on:
        normalised = remaining[column].str.strip().str.lower()
        rows = _duplicate_rows(remaining.assign(**{column: normalised}), column)
        if len(rows):
            keeper = (
                remaining.assign(_key=normalised)
                .drop_duplicates("_key", keep="last")
                .set_index("_key")["external_id"]
            )
            kept_id = normalised.loc[rows].map(keeper)
            reason = f"duplicate {column} of record " + kept_id.astype("str")
            rejected.append(_failures(rows, frame, DEDUPLICATION, column, reason.to_numpy()))
            remaining = remaining.drop(index=rows)
    failures = pd.concat(rejected) if rejected else pd.DataFrame(columns=FAILURE_COLUMNS)
    return repeated, failures


# -- stage 3 -----------------------------------------------------------------------------------


def typed_schema(entity: Entity, text_columns: list[str]) -> pa.DataFrameSchema:
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
    for column in text_columns:
        columns[column] = pa.Column(
            checks=pa.Check.str_length(max_value=MAX_TEXT_LENGTH), nullable=True
        )
    return pa.DataFrameSchema(columns, name=f"{entity.name}_{TYPE_COERCION}")


def _coerce(entity: Entity, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parsed values, and a mask of cells that held something that could not be parsed."""
    typed = frame.copy()
    unreadable = pd.DataFrame(False, index=frame.index, columns=[])
    for column in entity.integer_columns + entity.number_columns:
        if column in frame:
            typed[column] = to_number(frame[column])
            unreadable[column] = frame[column].notna() & typed[column].isna()
    for column in entity.date_columns:
        if column in frame:
            typed[column] = to_date(frame[column]).astype("datetime64[ns]")
            unreadable[column] = frame[column].notna() & typed[column].isna()
    return typed, unreadable


def _stage_types(entity: Entity, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    typed, unreadable = _coerce(entity, frame)
    text_columns = [
        c
        for c in frame.columns
        if c not in _BOOKKEEPING
        and c not in entity.integer_columns + entity.number_columns + entity.date_columns
    ]
    found = []
    for column in unreadable.columns:
        rows = unreadable.index[unreadable[column]]
        if len(rows):
            what = "a date (YYYY-MM-DD)" if column in entity.date_columns else "a number"
            values = frame.loc[rows, column].astype("str").str.slice(0, 60)
            reason = f"{column}: cannot read " + values.map(repr) + f" as {what}"
            found.append(_failures(rows, frame, TYPE_COERCION, column, reason.to_numpy()))
    try:
        typed_schema(entity, text_columns).validate(typed, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"])
        cases = cases.drop_duplicates(["index", "column"])
        for column, group in cases.groupby("column"):
            rows = pd.Index(group["index"].astype(int).unique())
            if column in text_columns:
                lengths = frame.loc[rows, column].str.len().astype("str")
                limit = f"{column}: text longer than {MAX_TEXT_LENGTH} characters ("
                reason = limit + lengths + ")"
            else:
                reason = pd.Series(
                    f"{column}: not a whole number between -{MAX_INTEGER} and {MAX_INTEGER}",
                    index=rows,
                )
            found.append(_failures(rows, frame, TYPE_COERCION, column, reason.to_numpy()))
    failures = pd.concat(found) if found else pd.DataFrame(columns=FAILURE_COLUMNS)
    failures = failures.drop_duplicates("row")
    return typed, failures


# -- the pipeline ------------------------------------------------------------------------------


def run_gates(entity: Entity, frame: pd.DataFrame) -> QualityResult:
    """Run the three gates over one page of canonical rows (as produced by transform)."""
    frame = frame.reset_index(drop=True)
    stats = QualityStats(input=len(frame))
    required = _stage_required(entity, frame)
    rest = frame.drop(index=required["row"])
    repeated, duplicates = _stage_dedupe(entity, rest)
    rest = rest.drop(index=repeated.union(pd.Index(duplicates["row"], dtype=int)))
    typed, mistyped = _stage_types(entity, rest)
    clean = typed.drop(index=mistyped["row"])
    for column in entity.integer_columns:
        if column in clean:
            clean[column] = clean[column].astype("Int64")
    failures = pd.concat([required, duplicates, mistyped], ignore_index=True)
    failures = failures.astype({"row": int}).sort_values("row", kind="stable")
    stats.duplicates_removed = len(repeated) + len(duplicates)
    stats.failed = len(required) + len(mistyped)
    stats.passed = len(clean)
    stats.failed_by_stage = {
        REQUIRED: len(required),
        DEDUPLICATION: len(duplicates),
        TYPE_COERCION: len(mistyped),
    }
    return QualityResult(clean=clean.reset_index(drop=True), failures=failures, stats=stats)
