"""Property of the quality gates (sync/quality.py): every input record is either passed or
rejected with a reason, never both and never dropped, whatever its values, and the verdicts do
not depend on the order the records came in.

Records get distinct Ids here, so each one can be followed by id through the gates (a repeated Id
is the one case where a record is dropped by design, counted in `duplicates_removed`; that
accounting is the property of sync/test_quality.py::
test_gates_never_raise_and_account_for_every_input_row, which this extends).
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtm_pipeline.sync.entities import ACCOUNTS, OPPORTUNITIES, PERSONS
from gtm_pipeline.sync.quality import STAGES, run_gates
from gtm_pipeline.sync.transform import to_canonical
from gtm_pipeline_tests.fuzz.examples import ran
from gtm_pipeline_tests.modes import scaled
from gtm_pipeline_tests.sync.test_quality import ANY_VALUE, STAMPS

EMAILS = st.sampled_from(["ann@x.io", " ANN@x.io ", "bob@y.org", "", None, "not-an-email"])


@st.composite
def pages(draw):
    entity = draw(st.sampled_from([ACCOUNTS, PERSONS, OPPORTUNITIES]))
    n = draw(st.integers(min_value=0, max_value=25))
    rows = []
    for i in range(n):
        row = {source: draw(ANY_VALUE) for source in entity.source_fields()}
        if "Email" in row and draw(st.booleans()):
            row["Email"] = draw(EMAILS)  # shared emails exercise the persons' dedupe
        row["Id"] = f"003{i:015d}"
        row["SystemModstamp"] = draw(st.sampled_from(STAMPS))
        rows.append(row)
    columns = [*entity.source_fields(), "SystemModstamp"]
    raw = pd.DataFrame(rows, columns=columns if not rows else None, dtype=object)
    order = draw(st.permutations(range(n)))
    return entity, raw, order


def verdicts(entity, raw: pd.DataFrame) -> tuple[set[str], dict[str, tuple[str, str]], object]:
    result = run_gates(entity, to_canonical(entity, raw))
    passed = set(result.clean["external_id"])
    failed = {
        row.external_id: (row.stage, row.reason) for row in result.failures.itertuples(index=False)
    }
    assert len(failed) == len(result.failures), "a record was rejected twice"
    return passed, failed, result.stats


# Two passes through Pandera's gates take about 0.1 s: quick 20, full 10,000 examples (~20 min).
@pytest.mark.timeout(scaled(300, 3600))
@settings(max_examples=scaled(20, 10_000), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(page=pages())
def test_every_record_is_passed_or_rejected_with_a_reason_in_any_order(page):
    ran("quality: every record passed xor rejected, any order")
    entity, raw, order = page
    passed, failed, stats = verdicts(entity, raw)
    ids = set(raw["Id"]) if len(raw) else set()
    assert not passed & set(failed), "a record both passed and was rejected"
    assert passed | set(failed) == ids, "a record was dropped"
    assert stats.duplicates_removed == stats.failed_by_stage["deduplication"]
    for stage, reason in failed.values():
        assert stage in STAGES and isinstance(reason, str) and reason.strip()
    shuffled = raw.iloc[list(order)].reset_index(drop=True)
    assert verdicts(entity, shuffled)[:2] == (passed, failed)
