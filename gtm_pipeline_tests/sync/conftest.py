"""A fresh emulator per test (syncs mutate it), a migrated store on both databases, a client.

`COUNTS` and `client_for` live in gtm_pipeline_tests/support/sync.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gtm_pipeline.emulator.testing import EmulatorHandle, running_emulator
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline_tests.support.sync import COUNTS, client_for


@pytest.fixture()
def emulator(tmp_path) -> Iterator[EmulatorHandle]:
    with running_emulator(tmp_path / "emulator", counts=COUNTS, seed=11, dirty_ratio=0.08) as h:
        yield h


@pytest.fixture()
def client(emulator) -> SalesforceClient:
    return client_for(emulator)
