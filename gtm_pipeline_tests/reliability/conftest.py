"""Fixtures of the reliability suite: a fresh emulator per test.

The seed, the PostgreSQL-only parametrization (`POSTGRES_ONLY`) and `announce`, which adds a
test's `RELIABILITY: ...` line to the end-of-run summary, live in
gtm_pipeline_tests/support/reliability.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gtm_pipeline.emulator.testing import EmulatorHandle, running_emulator
from gtm_pipeline_tests.support.sync import COUNTS


@pytest.fixture()
def emulator(tmp_path) -> Iterator[EmulatorHandle]:
    with running_emulator(tmp_path / "emulator", counts=COUNTS, seed=11, dirty_ratio=0.08) as h:
        yield h
