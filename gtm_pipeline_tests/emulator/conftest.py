"""Fixtures for the emulator's HTTPS server tests.

One small org is generated per session and shared by every read-only test; tests that write
(collections, mutations) ask for `fresh_org`. Each test gets its own server (about 0.1 s to
start), so budgets, counters, faults and tokens never leak between tests. REQUESTS_CA_BUNDLE
stays set, pointing at the system store, so the emulator's CA only wins where code makes it win.
`Api` and `connect` (the `api` fixture's client) live in gtm_pipeline_tests/support/emulator.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.testing import EmulatorHandle, ManualClock, running_emulator
from gtm_pipeline_tests.support.emulator import Api, connect

SMALL_COUNTS = {"Account": 40, "Contact": 450, "Opportunity": 60}
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(autouse=True)
def _system_ca_bundle_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure the requests override that bites in production is active in every test."""
    if not os.environ.get("REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_CA_BUNDLE)


@pytest.fixture(scope="session")
def small_org() -> Org:
    return Org.generate(seed=7, counts=SMALL_COUNTS, dirty_ratio=0.05)


@pytest.fixture()
def fresh_org() -> Org:
    return Org.generate(seed=11, counts={"Account": 20, "Contact": 60, "Opportunity": 20})


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture()
def start_emulator(
    tmp_path_factory: pytest.TempPathFactory, small_org: Org, clock: ManualClock
) -> Iterator[Callable[..., EmulatorHandle]]:
    """Start an emulator with given options (default: the shared org, the manual clock)."""
    stack: list[Any] = []

    def start(**options: Any) -> EmulatorHandle:
        options.setdefault("org", small_org)
        options.setdefault("clock", clock)
        manager = running_emulator(tmp_path_factory.mktemp("emulator"), **options)
        handle = manager.__enter__()
        stack.append(manager)
        return handle

    yield start
    for manager in reversed(stack):
        manager.__exit__(None, None, None)


@pytest.fixture()
def emulator(start_emulator: Callable[..., EmulatorHandle]) -> EmulatorHandle:
    return start_emulator()


@pytest.fixture()
def api(emulator: EmulatorHandle) -> Iterator[Api]:
    client = connect(emulator)
    yield client
    client.session.close()
