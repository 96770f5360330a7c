"""A fresh emulator per test (syncs mutate it), a migrated store on both databases, a client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gtm_pipeline.emulator.testing import EmulatorHandle, emulator_client, running_emulator
from gtm_pipeline.salesforce.client import SalesforceClient

COUNTS = {"Account": 120, "Contact": 900, "Opportunity": 250}


@pytest.fixture()
def emulator(tmp_path) -> Iterator[EmulatorHandle]:
    with running_emulator(tmp_path / "emulator", counts=COUNTS, seed=11, dirty_ratio=0.08) as h:
        yield h


def client_for(emulator: EmulatorHandle, **config) -> SalesforceClient:
    return emulator_client(emulator.info, sleep=lambda _s: None, **config)


@pytest.fixture()
def client(emulator) -> SalesforceClient:
    return client_for(emulator)
