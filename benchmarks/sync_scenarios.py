"""The measured scenarios of `benchmarks.sync_comparison`, each run in its own child process.

Every function here takes plain data (the emulator's info, an access token obtained once by the
parent, a database URL) and returns plain figures, so it can cross a process boundary. The clock
runs around the work only: imports, client set-up and schema migration happen before it starts.
API calls are counted by the parent from the emulator's statistics, not here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.isolation import ScenarioFailed
from gtm_pipeline.emulator.testing import emulator_client
from gtm_pipeline.store import make_engine
from gtm_pipeline.sync.entities import ACCOUNTS, ENTITIES, OPPORTUNITIES, PERSONS
from gtm_pipeline.sync.runner import SyncOptions, sync_entity
from gtm_pipeline.sync.soql import modified_query

try:  # imported here, not under the clock (the import alone took 0.18 s of a 3.5 s sync)
    from gtm_pipeline.sync.entities_at_once import EntityOutcome, sync_entities
except ImportError:  # a checkout from before entities were synced at once
    EntityOutcome = sync_entities = None

COMPARED_ENTITIES = (ACCOUNTS, PERSONS, OPPORTUNITIES)
"""The objects the comparison orgs hold, as dlt and the floors read them (Leads and activities
have a benchmark of their own: `benchmarks/activities.py`)."""

TENANT = "bench"
BATCH_SIZE = 2000
FORCE_REST = 10**12
"""A Bulk threshold no org reaches: the full sync stays on REST pages."""


def bulk_supported() -> bool:
    """Whether this connector has a Bulk API 2.0 path (`SyncOptions.bulk_threshold`)."""
    return "bulk_threshold" in SyncOptions.__dataclass_fields__


def sync_soql(entity_name: str) -> str:
    """The SOQL the connector's full sync sends for an entity with its default mapping."""
    entity = ENTITIES[entity_name]
    return modified_query(entity.sf_object, entity.source_fields(), None)


# --- the raw floor -----------------------------------------------------------------------------


def raw_floor(info: Mapping[str, Any], access_token: str, batch_size: int) -> dict[str, Any]:
    """Every page of every object with plain `requests` and `json`, nothing else."""
    from benchmarks.emulator_serving import read_all_pages

    per_object: dict[str, int] = {}
    started = time.perf_counter()
    for entity in COMPARED_ENTITIES:
        read = read_all_pages(dict(info), access_token, batch_size, soql=sync_soql(entity.name))
        per_object[entity.sf_object] = read["records"]
    seconds = time.perf_counter() - started
    return {"records": sum(per_object.values()), "seconds": seconds, "per_object": per_object}


def bulk_floor(
    info: Mapping[str, Any], access_token: str, soqls: Mapping[str, str]
) -> dict[str, Any]:
    """Every object through one Bulk `queryAll` job with plain `requests`, CSV read by pyarrow."""
    from benchmarks.bulk_floor import read_job

    per_object: dict[str, int] = {}
    started = time.perf_counter()
    for sf_object, soql in soqls.items():
        per_object[sf_object] = read_job(info, access_token, soql)
    seconds = time.perf_counter() - started
    return {"records": sum(per_object.values()), "seconds": seconds, "per_object": per_object}


def bulk_soqls(info: Mapping[str, Any], access_token: str) -> dict[str, str]:
    """The connector's Bulk SOQL per object (describe calls; run before a measurement)."""
    from gtm_pipeline.sync.bulk_csv import plan_bulk_query

    client = emulator_client(info, access_token)
    return {e.sf_object: plan_bulk_query(client, e, e.mappings).soql for e in COMPARED_ENTITIES}


# --- the connector -----------------------------------------------------------------------------


def sync_options(
    *, full: bool, bulk: bool | None, parallel_reads: int | None = None
) -> SyncOptions:
    """Full or incremental options; `bulk` True forces Bulk, False forces REST, None: default.
    `parallel_reads` None keeps the checkout's default (older checkouts have no such option)."""
    chosen: dict[str, Any] = {"full": full, "batch_size": BATCH_SIZE}
    if bulk is not None and bulk_supported():
        chosen["bulk_threshold"] = 0 if bulk else FORCE_REST
    if parallel_reads is not None:
        chosen["parallel_reads"] = parallel_reads
    return SyncOptions(**chosen)


ALL_ENTITIES = tuple(e.name for e in COMPARED_ENTITIES)


def connector_sync(
    info: Mapping[str, Any],
    access_token: str,
    database_url: str,
    full: bool,
    bulk: bool | None,
    entities: Sequence[str] = ALL_ENTITIES,
    parallel_reads: int | None = None,
) -> dict[str, Any]:
    """`entities` synced as a sync run syncs them (at once, `sync_entities`), on a migrated
    store; figures per entity. A checkout from before entities were synced at once syncs them
    one after another."""
    client = emulator_client(info, access_token)
    engine = make_engine(database_url)
    options = sync_options(full=full, bulk=bulk, parallel_reads=parallel_reads)
    try:
        started = time.perf_counter()
        per_entity = {
            stats.entity: _figures(stats)
            for stats in _synced(client, engine, [ENTITIES[n] for n in entities], options)
        }
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    records = sum(e["rows_read"] for e in per_entity.values())
    return {"records": records, "seconds": seconds, "per_entity": per_entity}


def _synced(client: Any, engine: Any, entities: list[Any], options: SyncOptions) -> list[Any]:
    """Each entity's stats, in the order of `entities`."""
    if sync_entities is None:  # an older checkout
        return [sync_entity(client, engine, TENANT, e, options) for e in entities]
    events = sync_entities(client, engine, TENANT, entities, options)
    ended = {e.entity.name: e for e in events if isinstance(e, EntityOutcome)}
    for outcome in ended.values():
        if outcome.stats is None:
            raise ScenarioFailed(f"{outcome.entity.name}: {outcome.error or outcome.skipped}")
    return [ended[e.name].stats for e in entities]


def _figures(stats: Any) -> dict[str, Any]:
    return {
        "rows_read": stats.rows_read,
        "rows_loaded": stats.rows_loaded,
        "rows_rejected": stats.rows_rejected,
        "rows_deleted": stats.rows_deleted,
        "api_calls": stats.api_calls,
        "seconds": stats.seconds,
        "mode": stats.mode,
        "extraction": getattr(stats, "extraction", "rest"),
        "bulk_fallback": getattr(stats, "bulk_fallback", None),
        "slices": getattr(stats, "slices", 0),
    }


# --- dlt ---------------------------------------------------------------------------------------


def dlt_sync(
    info: Mapping[str, Any],
    access_token: str,
    destination: str,
    database_url: str,
    pipelines_dir: str,
) -> dict[str, Any]:
    """One run of the dlt pipeline (full the first time, incremental after, same state dir)."""
    from benchmarks.dlt_salesforce import run_pipeline

    return run_pipeline(info, access_token, destination, database_url, pipelines_dir)


# --- Airbyte ------------------------------------------------------------------------------------


def airbyte_read(info: Mapping[str, Any], access_token: str, python: str) -> dict[str, Any]:
    """Airbyte's Salesforce source reading the compared objects (benchmarks/airbyte_salesforce.py)
    under `python`, in a process of its own; its peak RSS is that process's, not this one's.

    The source redeems a refresh token itself, so one is obtained here, before the clock
    (`access_token` is not used)."""
    from benchmarks.airbyte_salesforce import read_streams
    from gtm_pipeline.emulator.testing import obtain_tokens

    refresh_token = obtain_tokens(info)["refresh_token"]
    streams = [e.sf_object for e in COMPARED_ENTITIES]
    result = read_streams(python, info, refresh_token, streams)
    per_entity = {
        name: {"extraction": result["apis"].get(name, "?"), "records": count}
        for name, count in result["per_stream"].items()
    }
    return {
        "records": result["records"],
        "seconds": result["seconds"],
        "peak_rss_mb": result["peak_rss_mb"],
        "process_seconds": result["process_seconds"],
        "per_entity": per_entity,
    }


# --- quality gates and writeback ---------------------------------------------------------------


def quality_gates_run(rows: int, repeat: int) -> dict[str, Any]:
    """`run_gates` over one page of `rows` persons (benchmarks.quality_gates' page), best of N."""
    from benchmarks.quality_gates import _best_of, person_page
    from gtm_pipeline.sync.entities import PERSONS
    from gtm_pipeline.sync.quality import run_gates

    page = person_page(rows)
    seconds, gated = _best_of(repeat, lambda: run_gates(PERSONS, page.frame))
    return {"records": rows, "seconds": seconds, "stats": gated.stats.as_dict()}


def writeback_run(
    info: Mapping[str, Any], access_token: str, database_url: str, ids: Sequence[str]
) -> dict[str, Any]:
    """`write_back` of new scores for `ids` (all changed), timed by benchmarks.writeback."""
    from benchmarks.writeback import check_state, engine_run, first_scores

    client = emulator_client(info, access_token)
    engine = make_engine(database_url)
    try:
        scores = first_scores(ids, salt=7)
        figures = engine_run(client, engine, scores, "sync_comparison writeback")
        check_state(engine, len(ids), "sync_comparison writeback")
    finally:
        engine.dispose()
    return {"records": figures["sent"], "seconds": figures["seconds"], "figures": figures}


# --- reconciliation ----------------------------------------------------------------------------


def connector_reconcile(
    info: Mapping[str, Any],
    access_token: str,
    database_url: str,
    bulk: bool,
    entity: str = "persons",
) -> dict[str, Any]:
    """`reconcile_entity` of one entity (repairing), its listing forced through Bulk (`bulk`
    True: threshold 0) or REST pages (threshold above any org); the Reconciliation's figures."""
    from gtm_pipeline.sync.reconciliation import ReconcileOptions, reconcile_entity

    client = emulator_client(info, access_token)
    engine = make_engine(database_url)
    options = ReconcileOptions(bulk_threshold=0 if bulk else FORCE_REST, batch_size=BATCH_SIZE)
    try:
        result = reconcile_entity(client, engine, TENANT, ENTITIES[entity], options=options)
    finally:
        engine.dispose()
    return {"records": result.salesforce_records, **result.as_dict()}
