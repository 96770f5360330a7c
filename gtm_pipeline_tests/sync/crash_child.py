"""The process test_crash.py kills: a full sync of every entity that reports each committed page.

Run as `python -m gtm_pipeline_tests.sync.crash_child` with one JSON object on stdin:
`{"info": <emulator info>, "database_url": ..., "tenant": ..., "batch_size": 200}`. The info
holds the client secret, so it travels on stdin, never on the command line where `ps` shows it.
Each committed page is one line on stdout, written after its transaction committed (that is
when the runner calls `on_page`), so the parent knows at least that much is in the store.
"""

from __future__ import annotations

import json
import sys

from gtm_pipeline.emulator.testing import emulator_client
from gtm_pipeline.store import make_engine
from gtm_pipeline.sync.entities import SYNC_ORDER
from gtm_pipeline.sync.runner import PageProgress, SyncOptions, sync_entity


def report(progress: PageProgress) -> None:
    cursor = progress.cursor
    line = {
        "entity": progress.entity,
        "kind": progress.kind,
        "page": progress.page_number,
        "cursor": None if cursor is None else [cursor.system_modstamp.isoformat(), cursor.id],
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def main() -> None:
    job = json.loads(sys.stdin.read())
    info = job["info"]
    client = emulator_client(info)
    engine = make_engine(job["database_url"])
    # One page per committed batch: the parent kills after a number of committed pages.
    size = int(job["batch_size"])
    options = SyncOptions(batch_size=size, load_batch_rows=size)
    for entity in SYNC_ORDER:
        sync_entity(client, engine, job["tenant"], entity, options, on_page=report)
    sys.stdout.write(json.dumps({"done": True}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
