"""Everything one running emulator holds: the org, OAuth, budget, counters, faults, cursors,
the latency profile.

The HTTP layers (`data_api`, `oauth_routes`, `control`) are thin functions over this object, so
settings changed through the control API take effect on the next request without a restart.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gtm_pipeline.config import DEFAULT_API_VERSION
from gtm_pipeline.emulator.bulk_api import BulkJobs, BulkSettings
from gtm_pipeline.emulator.faults import FaultPlan
from gtm_pipeline.emulator.latency import NO_LATENCY, LatencyProfile
from gtm_pipeline.emulator.limits import ApiBudget, CallStats
from gtm_pipeline.emulator.oauth_server import OAuthAuthority, OAuthClient
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.paging import CursorStore, PageSizePolicy


@dataclass(frozen=True)
class EmulatorOptions:
    """Start-up settings. Secrets left empty are generated per start."""

    api_version: str = DEFAULT_API_VERSION
    auto_approve: bool = False
    session_lifetime: float = 7200.0
    code_lifetime: float = 600.0
    daily_api_limit: int = 15000
    page_size: PageSizePolicy = field(default_factory=PageSizePolicy)
    locator_lifetime: float = 2 * 86400.0
    max_open_cursors: int = 10
    rotate_refresh_tokens: bool = False
    redirect_uris: tuple[str, ...] | None = None
    fault_seed: int = 0
    bulk: BulkSettings = field(default_factory=BulkSettings)
    latency_profile: LatencyProfile = NO_LATENCY
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    control_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.session_lifetime <= 0 or self.code_lifetime <= 0 or self.locator_lifetime <= 0:
            raise ValueError("session, code and locator lifetimes must be positive")
        if self.daily_api_limit < 0:
            raise ValueError("daily_api_limit cannot be negative")
        if self.max_open_cursors < 1:
            raise ValueError("max_open_cursors must be at least 1")


def new_client_id() -> str:
    """A consumer key shaped like Salesforce's (`3MVG9...`)."""
    return "3MVG9" + secrets.token_urlsafe(60).replace("-", "A").replace("_", "z")


def _json_lines(rows: Iterator[dict], chunk_size: int = 1000) -> Iterator[bytes]:
    chunk: list[str] = []
    for row in rows:
        chunk.append(json.dumps(row, default=str, separators=(",", ":")))
        if len(chunk) == chunk_size:
            yield ("\n".join(chunk) + "\n").encode()
            chunk = []
    if chunk:
        yield ("\n".join(chunk) + "\n").encode()


class EmulatorState:
    """The mutable heart of one emulator; every part (the org too) guards itself."""

    def __init__(
        self,
        org: Org,
        *,
        base_url: str,
        ca_bundle: str,
        options: EmulatorOptions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.org = org
        self.base_url = base_url
        self.ca_bundle = ca_bundle
        self.api_version = options.api_version
        self.auto_approve = options.auto_approve
        self.clock = clock
        self.control_token = options.control_token or secrets.token_urlsafe(32)
        client = OAuthClient(
            client_id=options.client_id or new_client_id(),
            client_secret=options.client_secret or secrets.token_hex(32),
            redirect_uris=options.redirect_uris,
        )
        self.oauth = OAuthAuthority(
            client=client,
            org_id=org.org_id,
            user_id=org.user_id,
            login_url=base_url,
            instance_url=base_url,
            clock=clock,
            session_lifetime=options.session_lifetime,
            code_lifetime=options.code_lifetime,
            rotate_refresh_tokens=options.rotate_refresh_tokens,
        )
        self.budget = ApiBudget(options.daily_api_limit)
        self.stats = CallStats()
        self.faults = FaultPlan(options.fault_seed)
        self.cursors = CursorStore(clock, options.locator_lifetime, options.max_open_cursors)
        self.page_policy = options.page_size
        self.latency = options.latency_profile  # replaced whole by the control API
        self.bulk = BulkJobs(clock, options.bulk, latency=lambda: self.latency)

    def __repr__(self) -> str:
        return f"EmulatorState(base_url={self.base_url!r}, org_id={self.org.org_id!r})"

    def connection_info(self) -> dict[str, str]:
        """The contents of emulator.json: how a client reaches and authenticates to this org."""
        return {
            "login_url": self.base_url,
            "instance_url": self.base_url,
            "ca_bundle": self.ca_bundle,
            "client_id": self.oauth.client.client_id,
            "client_secret": self.oauth.client.client_secret,
            "control_token": self.control_token,
            "api_version": self.api_version,
            "org_id": self.org.org_id,
            "user_id": self.org.user_id,
        }

    def truth_lines(self, sobject: str) -> Iterator[bytes]:
        """Ground truth as JSON lines in chunks; the org snapshots the rows when this is called.

        Raises EmulatorError 404 for an unknown object before anything is streamed.
        """
        rows = self.org.truth(sobject)
        return _json_lines(rows)

    def config_json(self) -> dict[str, Any]:
        return {
            "auto_approve": self.auto_approve,
            "session_lifetime": self.oauth.session_lifetime,
            "code_lifetime": self.oauth.code_lifetime,
            "rotate_refresh_tokens": self.oauth.rotate_refresh_tokens,
            "daily_api_limit": self.budget.snapshot()["limit"],
            "daily_api_overage": self.budget.overage,
            "page_size": self.page_policy.to_json(),
            "locator_lifetime": self.cursors.lifetime,
            "max_open_cursors": self.cursors.max_open,
            "bulk_enabled": self.bulk.settings.enabled,
            "bulk_job_polls": self.bulk.settings.polls_to_complete,
            "bulk_job_seconds": self.bulk.settings.seconds_to_complete,
            "bulk_fail_next": self.bulk.pending_failures(),
            "unreadable_objects": self.org.unreadable(),
        }
