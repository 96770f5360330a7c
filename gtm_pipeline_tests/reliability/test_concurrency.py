"""Runs at the same time: two syncs of one tenant, and many tenants in parallel processes.

Two syncs of one tenant are kept apart by the `gtm/tenant` tag limit in production; if they
meet anyway (a manual run next to the sensor's), the modstamp-guarded upserts and the monotonic
cursor make that harmless, which the first test checks under deletes and edits made mid-run.
The second runs the product's `salesforce_sync` job, in-process executor, once per tenant, all
at once; each tenant has its own org (its own emulator, generated from its own seed, with the
same record Ids as the others), so any row crossing tenants shows up as a wrong value.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dagster as dg

from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.emulator.testing import running_emulator
from gtm_pipeline.store.connections import get_connector
from gtm_pipeline.sync.entities import SYNC_ORDER
from gtm_pipeline_tests.modes import scaled
from gtm_pipeline_tests.reliability.invariants import (
    InjectAfter,
    assert_exactly_the_truth,
    assert_only_committed_data,
)
from gtm_pipeline_tests.reliability.parallel_runs import run_tenant
from gtm_pipeline_tests.reliability.tenants import connect_tenant
from gtm_pipeline_tests.support.reliability import POSTGRES_ONLY, SEED, announce
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.reconcile import reconcile
from gtm_pipeline_tests.sync.test_crash import live_ids
from gtm_pipeline_tests.sync.test_faults import sync_all

BATCH_SIZE = 200


def test_two_syncs_of_one_tenant_at_once_are_harmless(emulator, engine):
    # Every call a little slow, so the two runs interleave page by page.
    emulator.control.add_fault(kind="latency", seconds=0.01, probability=1.0)
    victims = live_ids(emulator, "Contact")[:6]

    def edit_mid_run() -> None:
        emulator.control.mutate(
            [{"op": "delete", "object": "Contact", "id": i} for i in victims[:3]]
            + [{"op": "update", "object": "Contact", "id": i, "fields": {"Title": "Mid-run"}}
               for i in victims[3:]]
        )  # fmt: skip

    errors: list[BaseException] = []

    def run(on_page) -> None:
        try:
            sync_all(client_for(emulator), engine, on_page=on_page, batch_size=BATCH_SIZE)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    first_log, second_log = InjectAfter(3, edit_mid_run), InjectAfter(10**6)
    first = threading.Thread(target=run, args=(first_log,))
    second = threading.Thread(target=run, args=(second_log,))
    first.start()
    second.start()
    first.join(timeout=300)
    second.join(timeout=300)
    assert not errors, f"a concurrent run failed: {errors!r}"
    assert first_log.pages and second_log.pages
    assert_only_committed_data(engine, emulator, first_log.pages + second_log.pages)
    # Both runs read snapshots from before part of the edits; the next (incremental) run must
    # find them from the cursor the two left behind.
    emulator.control.clear_faults()
    sync_all(client_for(emulator), engine, batch_size=BATCH_SIZE)
    assert_exactly_the_truth(engine, emulator)
    announce("same_tenant_concurrent_syncs", "survived 2 overlapping runs with edits mid-run")


def combined_ca_bundle(handles, path: Path) -> str:
    path.write_text("".join(Path(h.info["ca_bundle"]).read_text() for h in handles))
    return str(path)


@POSTGRES_ONLY
def test_many_tenants_sync_in_parallel_and_stay_apart(engine, database_url, tmp_path, monkeypatch):
    tenants = [f"tenant-{i:02d}" for i in range(scaled(3, 20))]
    key = "cd" * 32
    app = {"client_id": "3MVG9reliabilityParallelTenants", "client_secret": "e" * 64}
    counts = {"Account": 30, "Contact": 150, "Opportunity": 40}
    managers = [
        running_emulator(tmp_path / t, counts=counts, seed=SEED % 997 + i, dirty_ratio=0.05, **app)
        for i, t in enumerate(tenants)
    ]
    handles = [m.__enter__() for m in managers]
    try:
        for tenant, handle in zip(tenants, handles, strict=True):
            connect_tenant(engine, handle, key, tenant)
        info = handles[0].info
        env = {
            "DATABASE_URL": database_url,
            "SALESFORCE_CLIENT_ID": app["client_id"],
            "SALESFORCE_CLIENT_SECRET": app["client_secret"],
            "SALESFORCE_LOGIN_URL": info["login_url"],
            "SALESFORCE_API_VERSION": info["api_version"],
            "SALESFORCE_CA_BUNDLE": combined_ca_bundle(handles, tmp_path / "cas.pem"),
            "CONNECTOR_ENCRYPTION_KEY": key,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        (tmp_path / "dagster").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
            instance.add_dynamic_partitions(salesforce_tenants.name, tenants)
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=len(tenants), mp_context=spawn) as pool:
                ref = instance.get_ref()
                outcomes = dict(pool.map(run_tenant, [ref] * len(tenants), tenants))
        assert outcomes == dict.fromkeys(tenants, True)
        rows = 0
        for tenant, handle in zip(tenants, handles, strict=True):
            for entity in SYNC_ORDER:
                rows += reconcile(engine, tenant, handle, entity)["stored"]
            calls = handle.control.stats()["calls"]  # each entity read, activities by queryAll
            assert calls["query"] + calls["queryAll"] >= len(SYNC_ORDER), tenant
            with engine.connect() as conn:
                assert get_connector(conn, tenant).status == "connected", tenant
    finally:
        for manager in reversed(managers):
            manager.__exit__(None, None, None)
    announce(
        "parallel_tenants",
        f"{len(tenants)} tenants synced at once in separate processes, {rows} rows kept apart",
    )
