"""The process the crash suite kills: a full sync (every entity, at once), or a writeback, that
SIGKILLs itself at a given SQL statement or Salesforce response (kill_hooks.py).

Run as `python -m gtm_pipeline_tests.reliability.crash_child` with one JSON object on stdin:
`{"info": <emulator info>, "database_url", "tenant", "task": "sync" | "writeback",
"full": bool, "batch_size": int, "bulk_threshold": int | null, "kill": {"kind", "at"} | null}`.
The info holds the client secret, so it travels on stdin, never on the command line. Progress
goes to stdout, one JSON line each: committed sync pages (as gtm_pipeline_tests.sync.crash_child
reports them), and for a writeback the ids of every batch just before it is sent. A run that
reaches its end prints `{"done": true, "statements": S, "responses": R}`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gtm_pipeline.emulator.testing import emulator_client
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.store import make_engine
from gtm_pipeline.sync.entities import SYNC_ORDER
from gtm_pipeline.sync.entities_at_once import sync_entities
from gtm_pipeline.sync.runner import PageProgress, SyncOptions
from gtm_pipeline_tests.reliability import kill_hooks
from gtm_pipeline_tests.sync.crash_child import report


def emit(line: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


class AnnouncingClient:
    """Says which records a collection update carries before sending it, so the parent knows
    the batch in flight when the kill lands."""

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    def update_collection(
        self, records: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[dict[str, Any]]:
        emit({"sending": [r["id"] for r in records]})
        return self.client.update_collection(records, all_or_none=all_or_none)

    def query_records(self, soql: str) -> Iterator[dict[str, Any]]:
        return self.client.query_records(soql)


def run_sync(client: SalesforceClient, engine, job: dict) -> None:
    options = SyncOptions(
        full=bool(job.get("full")),
        batch_size=int(job["batch_size"]),
        bulk_threshold=job.get("bulk_threshold"),
        parallel_reads=int(job.get("parallel_reads", 1)),
        min_slice_records=int(job.get("min_slice_records", 1)),
    )
    # As a Dagster run syncs them: the entities at once, so kills land in any lane.
    for event in sync_entities(client, engine, job["tenant"], SYNC_ORDER, options):
        if isinstance(event, PageProgress):
            report(event)
        elif event.error is not None:
            raise event.error
        elif event.stats is None:
            raise RuntimeError(f"{event.entity.name} was not synced: {event.skipped}")


def run_writeback(client: SalesforceClient, engine, job: dict) -> None:
    from gtm_pipeline_tests.reliability.writeback import write_all

    write_all(AnnouncingClient(client), engine, job["tenant"])


def main() -> None:
    job = json.loads(sys.stdin.read())
    info = job["info"]
    client = emulator_client(info)
    engine = make_engine(job["database_url"])
    counters = kill_hooks.install(engine, job.get("kill"))
    {"sync": run_sync, "writeback": run_writeback}[job["task"]](client, engine, job)
    emit({"done": True, "statements": counters.statements, "responses": counters.responses})


if __name__ == "__main__":
    main()
