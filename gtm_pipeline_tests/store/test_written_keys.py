"""`WrittenKeys` against a Python set: a key is reported as written before exactly when it was."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gtm_pipeline.store.written_keys import WrittenKeys

ids = st.text(alphabet="0123456789ABCDEF", min_size=1, max_size=4)


@given(batches=st.lists(st.lists(ids, unique=True, max_size=30), max_size=8))
def test_a_key_is_reported_written_exactly_when_an_earlier_call_recorded_it(batches) -> None:
    writer = WrittenKeys()
    model: set[str] = set()
    for batch in batches:
        assert writer.record(batch).tolist() == [key in model for key in batch]
        model.update(batch)
    assert len(writer) == len(model)


def test_tuples_are_keys_too() -> None:
    writer = WrittenKeys()
    assert writer.record([("t1", "003A"), ("t2", "003A")]).tolist() == [False, False]
    assert writer.record([("t2", "003A"), ("t1", "003B")]).tolist() == [True, False]
