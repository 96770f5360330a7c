"""The HTTP session the client hands to simple-salesforce.

requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override `session.verify` for every call that does
not pass `verify=` itself, and simple-salesforce never passes it. A configured CA bundle would then
be silently ignored, so this session passes its own `verify` explicitly on every request. It also
applies a default timeout and counts the requests it sends, retries included, since that is what
the org's API budget is charged for, and keeps the latest `Sforce-Limit-Info` any response carried
(error responses included: the newest figure is the one a usage guard wants). It lives on the
session, not on simple-salesforce's object, so it survives the rebuild a token refresh does.
"""

from __future__ import annotations

import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from gtm_pipeline.salesforce.limits import LIMIT_INFO_HEADER

DEFAULT_TIMEOUT_SECONDS = 120.0
POOL_CONNECTIONS = 40
"""Connections kept per host: a parallel full read sends up to 40 counts, or one request per
slice, at once (requests keeps 10 by default and drops the rest after each use)."""


class PinnedSession(requests.Session):
    """A requests.Session whose CA bundle and timeout win over the environment."""

    def __init__(self, ca_bundle: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        super().__init__()
        self.mount("https://", HTTPAdapter(pool_maxsize=POOL_CONNECTIONS))
        self.verify = ca_bundle if ca_bundle else True
        self.timeout = timeout
        self._count_lock = threading.Lock()
        self._requests_sent = 0
        self._limit_info: str | None = None

    @property
    def requests_sent(self) -> int:
        return self._requests_sent

    @property
    def limit_info(self) -> str | None:
        """The raw `Sforce-Limit-Info` of the latest response that had one."""
        return self._limit_info

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any):  # type: ignore[override]
        if kwargs.get("verify") is None:
            kwargs["verify"] = self.verify
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        with self._count_lock:
            self._requests_sent += 1
        response = super().request(method, url, *args, **kwargs)
        limit_info = response.headers.get(LIMIT_INFO_HEADER)
        if limit_info:
            self._limit_info = limit_info
        return response
