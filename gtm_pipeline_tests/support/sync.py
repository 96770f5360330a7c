"""The sync tests' org size and a client of an emulator that does not sleep between retries."""

from __future__ import annotations

from gtm_pipeline.emulator.testing import EmulatorHandle, emulator_client
from gtm_pipeline.salesforce.client import SalesforceClient

COUNTS = {
    "Account": 120,
    "Contact": 900,
    "Lead": 300,
    "Opportunity": 250,
    "Task": 500,
    "Event": 150,
}


def client_for(emulator: EmulatorHandle, **config) -> SalesforceClient:
    return emulator_client(emulator.info, sleep=lambda _s: None, **config)
