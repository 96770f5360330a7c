"""Fixtures for the emulator's HTTPS server tests.

One small org is generated per session and shared by every read-only test; tests that write
(collections, mutations) ask for `fresh_org`. Each test gets its own server (about 0.1 s to
start), so budgets, counters, faults and tokens never leak between tests. REQUESTS_CA_BUNDLE
stays set, pointing at the system store, so the emulator's CA only wins where code makes it win.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.testing import (
    CAPinnedSession,
    EmulatorHandle,
    ManualClock,
    obtain_tokens,
    running_emulator,
)

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


@dataclass
class Api:
    """A tiny data-API client for tests: a CA-pinned session plus the bearer header."""

    handle: EmulatorHandle
    session: requests.Session
    access_token: str
    version: str = "59.0"

    @property
    def base(self) -> str:
        return f"{self.handle.info['instance_url']}/services/data/v{self.version}"

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}", **extra}

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        url = path if path.startswith("https://") else self.base + path
        return self.session.get(url, headers=headers, timeout=30, **kwargs)

    def query(self, soql: str, *, batch_size: int | None = None, all_rows: bool = False):
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"} if batch_size else {}
        return self.get("/queryAll" if all_rows else "/query", params={"q": soql}, headers=headers)

    def more(self, next_records_url: str, **kwargs: Any) -> requests.Response:
        return self.get(self.handle.info["instance_url"] + next_records_url, **kwargs)

    def patch(self, path: str, body: Any) -> requests.Response:
        return self.session.patch(self.base + path, json=body, headers=self.headers(), timeout=30)


def connect(handle: EmulatorHandle) -> Api:
    """Run the OAuth flow against `handle` and return a data-API client with the token."""
    session = CAPinnedSession(handle.info["ca_bundle"])
    return Api(handle, session, obtain_tokens(handle.info, session=session)["access_token"])


@pytest.fixture()
def api(emulator: EmulatorHandle) -> Iterator[Api]:
    client = connect(emulator)
    yield client
    client.session.close()
