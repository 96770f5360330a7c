"""A sync that meets Salesforce's concurrency limits waits them out inside the run and ends
exactly as an undisturbed one would; one that never clears fails retryably."""

from __future__ import annotations

import pytest

from gtm_pipeline.emulator.testing import emulator_client
from gtm_pipeline.salesforce.errors import ApiLimitExceeded, ConcurrencyLimitExceeded
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.test_faults import reconcile_all, sync_all


def test_concurrency_refusals_are_retried_and_the_sync_completes(emulator, engine):
    waits: list[float] = []
    client = emulator_client(emulator.info, sleep=waits.append)  # backoff observed, not slept
    emulator.control.configure(fault_seed=7)
    emulator.control.add_fault(kind="concurrency_limit", probability=0.3)
    stats = sync_all(client, engine, batch_size=200)
    assert all(s.mode == "full" for s in stats.values())
    billed = emulator.control.stats()["api_usage"]["used"]  # refused calls are not billed
    assert client.calls_made - billed == len(waits) > 0  # every refusal waited, then retried
    emulator.control.clear_faults()
    reconcile_all(engine, emulator)


def test_a_concurrency_limit_that_never_clears_fails_retryably_not_as_a_spent_budget(
    emulator, engine
):
    client = client_for(emulator, concurrency_max_attempts=3)
    emulator.control.add_fault(kind="concurrency_limit", probability=1.0)
    with pytest.raises(ConcurrencyLimitExceeded) as caught:
        sync_all(client, engine, batch_size=200)
    assert not isinstance(caught.value, ApiLimitExceeded)
    assert client.calls_made == 3  # the run stopped on its first call's last attempt
