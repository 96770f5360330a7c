"""The reliability suite's seed, its PostgreSQL-only parametrization, and its summary lines.

Every test adds a `RELIABILITY: ...` line saying what it survived (crash points, faults) to the
end-of-run summary (`run_summary.figure`): those are the figures quoted in the README. The seed is
fixed (GTM_RELIABILITY_SEED overrides it) and printed, so a failure reproduces.
"""

from __future__ import annotations

import os

import pytest

from gtm_pipeline_tests.run_summary import figure

SEED = int(os.environ.get("GTM_RELIABILITY_SEED", "20261127"))

# The crash and fault runs are about the server database; SQLite has its own disk-full test.
POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def announce(name: str, what: str) -> None:
    """The summary line the lead collects for the README (printed at the end of the run)."""
    figure(f"RELIABILITY: {name} {what} (seed {SEED})")
