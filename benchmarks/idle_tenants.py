"""What idle tenants cost the sync sensor, and what a changed tenant's run costs end to end.

    .venv/bin/python -m benchmarks.idle_tenants [--tenants 50] [--no-write] [--quick]

An emulator serving one small org runs in a child process; `--tenants` tenants are connected to
it (tokens from its OAuth flow, encrypted in a fresh SQLite store) and synced in full. Then:

1. one tick of the sync sensor over the idle tenants: run requests, API calls (the emulator's
   count of queryAll calls, the only kind the change check makes) and the tick's wall time;
2. one Contact changed in Salesforce (every tenant reads the same org, so every tenant has
   changed): the next tick's requests and calls;
3. the first tenant's run end to end, as the daemon launches it: the `salesforce_sync` job,
   then the `salesforce_scores_writeback` job its success requests (in this process, on a
   temporary Dagster instance; the daemon adds one process per run).

Writes benchmarks/results/idle_tenants.{json,md} unless `--no-write` or `--quick`.
"""

from __future__ import annotations

import argparse
import secrets
import time
from typing import Any

import dagster as dg

from benchmarks import machine_info, publish, temporary_sqlite_url, utc_now_iso
from benchmarks.isolation import emulator_process
from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.config import Settings
from gtm_pipeline.defs.assets import sync_assets
from gtm_pipeline.defs.automation import scores_writeback_job, sync_job, sync_sensor
from gtm_pipeline.defs.partitions import TENANT_TAG, salesforce_tenants
from gtm_pipeline.defs.reconciliation import reconciliation_checks
from gtm_pipeline.defs.resources import SalesforceResource, WarehouseResource
from gtm_pipeline.defs.scoring_assets import scores_asset
from gtm_pipeline.defs.table_checks import table_checks
from gtm_pipeline.defs.writeback_assets import (
    PROGRESS_RESOURCE,
    progress_resource,
    score_writeback_asset,
)
from gtm_pipeline.emulator.testing import EmulatorControl, store_connected_tenant
from gtm_pipeline.store import make_engine
from gtm_pipeline.sync.entities import SYNC_ORDER
from gtm_pipeline.sync.runner import SyncOptions, sync_entity

NAME = "idle_tenants"
ORG = {"Account": 50, "Contact": 300, "Opportunity": 60}
EMULATOR_OPTIONS = {"daily_api_limit": 10**9, "session_lifetime": 86_400.0}


def resources_for(info: dict[str, Any], url: str, key: str) -> dict[str, Any]:
    return {
        "warehouse": WarehouseResource(database_url=url),
        "salesforce": SalesforceResource(
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            encryption_key=key,
            login_url=info["login_url"],
            api_version=info["api_version"],
            ca_bundle=info["ca_bundle"],
            allow_any_instance=True,  # the emulator serves on 127.0.0.1
        ),
        PROGRESS_RESOURCE: progress_resource(),
    }


def connect_and_sync(info: dict[str, Any], resources: dict[str, Any], tenants: list[str]) -> None:
    engine = resources["warehouse"].engine()
    key = resources["salesforce"].encryption_key
    for tenant in tenants:
        store_connected_tenant(engine, info, key, tenant)
        client = resources["salesforce"].client(engine, tenant)
        for entity in SYNC_ORDER:
            sync_entity(client, engine, tenant, entity, SyncOptions(full=True))


def tick(instance: dg.DagsterInstance, resources: dict[str, Any], control: EmulatorControl):
    """One sensor evaluation: (run requests, queryAll calls, seconds)."""
    sensor = sync_sensor(Settings({}))
    before = control.stats()["calls"]["queryAll"]
    started = time.perf_counter()
    result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
    seconds = time.perf_counter() - started
    return len(result.run_requests), control.stats()["calls"]["queryAll"] - before, seconds


def run_job(instance, resources, job, tenant: str) -> float:
    definitions = dg.Definitions(
        assets=[*sync_assets(), scores_asset, score_writeback_asset],
        asset_checks=[*reconciliation_checks(), *table_checks(900)],
        jobs=[job],
        resources=resources,
    )
    started = time.perf_counter()
    with on_instance(instance):
        result = definitions.resolve_job_def(job.name).execute_in_process(
            instance=instance, partition_key=tenant, tags={TENANT_TAG: tenant}
        )
    assert result.success, job.name
    return time.perf_counter() - started


def measure(count: int) -> dict[str, Any]:
    tenants = [f"tenant{i:03d}" for i in range(count)]
    with (
        emulator_process({"main": ORG}, **EMULATOR_OPTIONS) as (infos, _),
        temporary_sqlite_url() as url,
        dg.instance_for_test() as instance,
    ):
        info = infos["main"]
        control = EmulatorControl(info)
        resources = resources_for(info, url, secrets.token_hex(32))
        started = time.perf_counter()
        connect_and_sync(info, resources, tenants)
        setup = time.perf_counter() - started
        instance.add_dynamic_partitions(salesforce_tenants.name, tenants)
        idle = tick(instance, resources, control)
        contact = next(r for r in control.truth("Contact") if not r["IsDeleted"])
        control.mutate(
            [{"op": "update", "object": "Contact", "id": contact["Id"], "fields": {"Title": "X"}}]
        )
        changed = tick(instance, resources, control)
        sync_seconds = run_job(instance, resources, sync_job, tenants[0])
        writeback_seconds = run_job(instance, resources, scores_writeback_job, tenants[0])
        make_engine(url).dispose()
    return {
        "tenants": count,
        "setup_seconds": round(setup, 2),
        "idle_tick": {"runs": idle[0], "api_calls": idle[1], "seconds": round(idle[2], 3)},
        "changed_tick": {
            "runs": changed[0],
            "api_calls": changed[1],
            "seconds": round(changed[2], 3),
        },
        "changed_tenant_run": {
            "sync_seconds": round(sync_seconds, 2),
            "scores_writeback_seconds": round(writeback_seconds, 2),
        },
    }


def render(result: dict[str, Any], machine: dict[str, Any], recorded_at: str) -> str:
    idle, changed, run = result["idle_tick"], result["changed_tick"], result["changed_tenant_run"]
    return "\n".join(
        [
            "# Idle tenants and the sync sensor",
            "",
            f"`python -m benchmarks.idle_tenants --tenants {result['tenants']}`: "
            f"{result['tenants']} tenants connected to one emulator org ({ORG}), each synced "
            f"in full first ({result['setup_seconds']} s, not measured). One run on "
            f"{machine['platform']}, {machine['cpu_count']} CPUs, {recorded_at}.",
            "",
            "| what | runs requested | API calls | wall s |",
            "| --- | --- | --- | --- |",
            f"| one sensor tick, every tenant idle | {idle['runs']} | {idle['api_calls']} | "
            f"{idle['seconds']} |",
            f"| one sensor tick after a Contact changed (every tenant reads the org) | "
            f"{changed['runs']} | {changed['api_calls']} | {changed['seconds']} |",
            f"| a changed tenant's sync run, in process | 1 | - | {run['sync_seconds']} |",
            f"| its scores and writeback run, in process | 1 | - | "
            f"{run['scores_writeback_seconds']} |",
            "",
            "Before the change check the sensor requested a sync run of every free tenant at "
            f"every tick ({result['tenants']} runs here), each making 6 API calls.",
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--quick", action="store_true", help="3 tenants, nothing recorded")
    args = parser.parse_args(argv)
    count = 3 if args.quick else args.tenants
    started = time.perf_counter()
    result = measure(count)
    payload = {
        "benchmark": NAME,
        **result,
        "recorded_at": utc_now_iso(),
        "machine": machine_info(),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = render(result, payload["machine"], payload["recorded_at"])
    publish(NAME, payload, markdown, write=not (args.no_write or args.quick))
    return payload


if __name__ == "__main__":
    main()
