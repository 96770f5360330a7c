"""A tiny data-API client of the emulator for its HTTPS server tests, and connecting one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from gtm_pipeline.emulator.testing import CAPinnedSession, EmulatorHandle, obtain_tokens


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
