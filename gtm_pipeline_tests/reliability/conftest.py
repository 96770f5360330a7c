"""Fixtures of the reliability suite: a fresh emulator per test, the seed, PostgreSQL-only runs.

Every test adds a `RELIABILITY: ...` line saying what it survived (crash points, faults) to the
end-of-run summary (`run_summary.figure`): those are the figures quoted in the README. The seed is
fixed (GTM_RELIABILITY_SEED overrides it) and printed, so a failure reproduces.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from gtm_pipeline.emulator.testing import EmulatorHandle, running_emulator
from gtm_pipeline_tests.run_summary import figure
from gtm_pipeline_tests.sync.conftest import COUNTS

SEED = int(os.environ.get("GTM_RELIABILITY_SEED", "20261127"))

# The crash and fault runs are about the server database; SQLite has its own disk-full test.
POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def announce(name: str, what: str) -> None:
    """The summary line the lead collects for the README (printed at the end of the run)."""
    figure(f"RELIABILITY: {name} {what} (seed {SEED})")


@pytest.fixture()
def emulator(tmp_path) -> Iterator[EmulatorHandle]:
    with running_emulator(tmp_path / "emulator", counts=COUNTS, seed=11, dirty_ratio=0.08) as h:
        yield h
