"""`UTCDateTime` on SQLite: the vectorized storage text equals SQLAlchemy's per-value bind text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from gtm_pipeline.store.types import UTCDateTime, sqlite_instant_texts, sqlite_timestamp_texts

DIALECT = sqlite.dialect()
PROCESS = UTCDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)

zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
aware = st.builds(
    lambda moment, zone: moment.replace(tzinfo=UTC).astimezone(zone),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    zones,
)


@settings(max_examples=300)
@given(st.lists(st.one_of(st.none(), aware), max_size=30))
def test_vectorized_text_is_the_bind_processors_text(values) -> None:
    expected = [None if v is None else PROCESS(v) for v in values]
    assert sqlite_timestamp_texts(values) == expected


def test_out_of_range_for_the_pandas_at_hand_binds_value_by_value(monkeypatch, tmp_path) -> None:
    """pandas 2 converts to nanoseconds (years 1677-2262 only); the store then binds each
    value through SQLAlchemy and stores the same text."""
    import pandas as pd
    import sqlalchemy as sa

    from gtm_pipeline.store import make_engine, upgrade, upsert_records
    from gtm_pipeline.store.tables import accounts

    def nanoseconds_only(*args, **kwargs):
        raise pd.errors.OutOfBoundsDatetime("Out of bounds nanosecond timestamp")

    old = datetime(999, 1, 1, 12, tzinfo=UTC)
    monkeypatch.setattr(pd, "to_datetime", nanoseconds_only)
    assert sqlite_timestamp_texts([old]) is None
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        upsert_records(
            conn, accounts, [{"tenant_id": "t", "external_id": "001A", "system_modstamp": old}]
        )
        stored = conn.execute(sa.text("SELECT system_modstamp FROM accounts")).scalar_one()
    engine.dispose()
    assert stored == PROCESS(old) == "0999-01-01 12:00:00.000000"


def test_microseconds_and_empty_columns() -> None:
    stamp = datetime(2026, 11, 27, 23, 59, 59, 999_999, tzinfo=UTC)
    assert sqlite_timestamp_texts([stamp, None]) == ["2026-11-27 23:59:59.999999", None]
    assert sqlite_timestamp_texts([]) == []
    assert sqlite_timestamp_texts([None, None]) == [None, None]


@settings(max_examples=300)
@given(st.lists(st.one_of(st.none(), aware), max_size=30))
def test_texts_of_a_datetime64_column_are_the_bind_processors_text(values) -> None:
    """The path of a timezone-aware pandas column (no Python datetimes in between)."""
    import numpy as np

    instants = np.array(
        [
            np.datetime64("NaT")
            if v is None
            else np.datetime64(v.astimezone(UTC).replace(tzinfo=None), "us")
            for v in values
        ],
        dtype="datetime64[us]",
    )
    expected = [None if v is None else PROCESS(v) for v in values]
    assert sqlite_instant_texts(instants) == expected


def test_instants_outside_a_python_datetime_are_refused() -> None:
    import numpy as np
    import pytest

    with pytest.raises(ValueError, match="years 1-9999"):
        sqlite_instant_texts(np.array(["12026-01-01T00:00:00"], dtype="datetime64[us]"))
