"""Every wire fault the emulator can inject, at seeded random pages of long syncs.

The sync runs as a sync asset runs it: a self-refreshing client built from the tenant's vault.
Each fault is injected from the runner's `on_page` callback after a random committed page. The
run either completes, or fails with a message that says what happened; in both cases the store
holds only committed data behind its cursor, and once the fault is cleared the next run brings
the store to exactly the emulator's truth.

Full runs read every object of 200 records or more in parallel slices, through REST pages or
(for a failed Bulk job, one of the faults, and every fourth point) one Bulk API 2.0 job a slice:
the runner falls back to REST pages for the slices left and completes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from gtm_pipeline.emulator.testing import EmulatorHandle
from gtm_pipeline.salesforce.errors import SalesforceClientError
from gtm_pipeline.store.connections import get_connector
from gtm_pipeline_tests.modes import scaled
from gtm_pipeline_tests.reliability.invariants import (
    InjectAfter,
    assert_exactly_the_truth,
    assert_only_committed_data,
)
from gtm_pipeline_tests.reliability.tenants import (
    connect_tenant,
    refreshing_client,
    revoke_refresh_token,
)
from gtm_pipeline_tests.support.reliability import POSTGRES_ONLY, SEED, announce
from gtm_pipeline_tests.sync.test_faults import TENANT, sync_all

BATCH_SIZE = 200
BULK_THRESHOLD = 200  # Accounts (120) read through REST; Contacts and Opportunities through Bulk
SLICES = {"parallel_reads": 4, "min_slice_records": 100}
"""Full reads of 200 records or more in up to 4 slices: Contacts, Leads, Opportunities, Tasks."""


@dataclass
class Context:
    emulator: EmulatorHandle
    engine: sa.Engine
    key: str
    rng: random.Random


@dataclass(frozen=True)
class FaultCase:
    name: str
    inject: Callable[[Context], None]
    failure: str | None
    """None: the run must complete; else a regex the run's error message must match."""
    recover: Callable[[Context], None] = lambda ctx: ctx.emulator.control.clear_faults()
    reached: Callable[[Context], bool] = lambda ctx: not ctx.emulator.control.faults()
    """For a run that completed: did the fault meet it (default: every rule was used up)?"""
    full_only: bool = False
    """Only full runs meet this fault (incremental runs never use Bulk)."""


def _status_burst(ctx: Context) -> None:
    status = ctx.rng.choice([500, 502, 503, 504])
    ctx.emulator.control.add_fault(kind="status", status=status, times=ctx.rng.randint(1, 4))


def _outage(ctx: Context) -> None:
    ctx.emulator.control.add_fault(kind="status", status=503, probability=1.0)


def _drops(ctx: Context) -> None:
    ctx.emulator.control.add_fault(kind="drop", times=ctx.rng.randint(1, 3))


def _latency(ctx: Context) -> None:
    # Some spikes outlast the client's 1 s timeout: a timed-out call is retried like a drop.
    seconds = ctx.rng.choice([0.2, 0.5, 1.5])
    ctx.emulator.control.add_fault(kind="latency", seconds=seconds, times=ctx.rng.randint(1, 2))


def _expire(ctx: Context) -> None:
    ctx.emulator.control.add_fault(kind="expire_sessions", after_calls=ctx.rng.randint(0, 2))


def _revoke(ctx: Context) -> None:
    revoke_refresh_token(ctx.engine, ctx.emulator, TENANT, ctx.key)


def _reconnect(ctx: Context) -> None:
    connect_tenant(ctx.engine, ctx.emulator, ctx.key, TENANT)


def _spend_budget(ctx: Context) -> None:
    used = ctx.emulator.control.stats()["api_usage"]["used"]
    ctx.emulator.control.configure(daily_api_limit=used)


def _fail_bulk_jobs(ctx: Context) -> None:
    ctx.emulator.control.configure(bulk_fail_next=1)


def _new_day(ctx: Context) -> None:
    ctx.emulator.control.configure(reset_usage=True, daily_api_limit=15000)


FAULTS = [
    FaultCase("5xx_burst", _status_burst, None),
    FaultCase("5xx_outage", _outage, r"HTTP 503 SERVER_UNAVAILABLE"),
    FaultCase("dropped_connections", _drops, None),
    FaultCase("latency_spikes", _latency, None),
    FaultCase("session_expiry", _expire, None),
    FaultCase("refresh_token_revoked", _revoke, r"invalid_grant.*Reconnect", _reconnect),
    FaultCase("budget_exhausted", _spend_budget, r"REQUEST_LIMIT_EXCEEDED", _new_day),
    FaultCase(
        "bulk_job_failed",
        _fail_bulk_jobs,
        None,
        reached=lambda ctx: ctx.emulator.control.config()["bulk_fail_next"] == 0,
        full_only=True,
    ),
]


def last_page_to_inject_after(full: bool) -> int:
    """The latest page after which a fault still meets the run: one before the fewest it commits.

    A full run commits Accounts through REST (one page or more) and one Bulk result set each for
    Contacts and Opportunities; an incremental one reads 600 changed Contacts and 100
    Opportunities, at most 200 records a page.
    """
    return 2 if full else 3


@POSTGRES_ONLY
@pytest.mark.parametrize("case", FAULTS, ids=lambda c: c.name)
def test_a_fault_at_random_pages_completes_or_fails_clearly_then_reconciles(case, emulator, engine):
    rng = random.Random(f"{SEED}-{case.name}")
    key = "ab" * 32
    connect_tenant(engine, emulator, key, TENANT)
    # Pages of any size up to the batch asked for: a long sync with many page boundaries.
    emulator.control.configure(page_size={"mode": "random", "minimum": 40, "seed": SEED % 1000})
    points, failures, fired, reached = scaled(1, 8), 0, 0, 0
    for point in range(points):
        full = point == 0 or case.full_only or point % 2 == 1
        if point:
            emulator.control.mutate(
                [{"op": "touch_many", "object": "Contact", "count": 600},
                 {"op": "touch_many", "object": "Opportunity", "count": 100}]
            )  # fmt: skip
        ctx = Context(emulator, engine, key, rng)
        after = rng.randint(1, last_page_to_inject_after(full))
        log = InjectAfter(after, lambda ctx=ctx: case.inject(ctx))
        client = refreshing_client(engine, emulator, TENANT, key, timeout_seconds=1.0)
        where = f"{case.name} after page {log.after}, point {point}, seed {SEED}"
        # Full runs read in parallel slices: through REST pages, or one Bulk job a slice for
        # the Bulk case and every fourth point.
        bulk = case.full_only or point % 4 == 3
        options = {**SLICES, "bulk_threshold": BULK_THRESHOLD if bulk else None} if full else {}
        try:
            sync_all(client, engine, on_page=log, batch_size=BATCH_SIZE, full=full, **options)
        except SalesforceClientError as exc:
            assert case.failure is not None, f"{where}: unexpected failure {exc}"
            assert re.search(case.failure, str(exc)), f"{where}: unclear message {exc}"
            failures += 1
            reached += 1
        else:
            assert case.failure is None, f"{where}: did not fail"
            assert_exactly_the_truth(engine, emulator)  # completed means complete, now
            reached += case.reached(ctx)
        assert log.fired, f"{where}: the run ended before the fault could be injected"
        fired += 1
        assert_only_committed_data(engine, emulator, log.pages, cursor_held=full)
        case.recover(ctx)
        emulator.control.clear_faults()
        emulator.control.configure(bulk_fail_next=0)
        sync_all(refreshing_client(engine, emulator, TENANT, key), engine, batch_size=BATCH_SIZE)
        assert_exactly_the_truth(engine, emulator)
        with engine.connect() as conn:
            assert get_connector(conn, TENANT).status == "connected", where
    assert reached == fired, "every injected fault must meet the run it was injected in"
    outcome = f"{failures} failed clearly and resumed" if case.failure else "all completed"
    announce(
        f"fault_{case.name}",
        f"survived {fired} injections, {reached} of them met by the run ({outcome})",
    )
