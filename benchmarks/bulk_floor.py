"""The Bulk API 2.0 raw floor: query jobs with plain `requests`, CSV read by pyarrow, nothing else.

What the connector's Bulk path cannot beat on a given emulator: create a `queryAll` job with the
connector's own Bulk SOQL, poll it with the connector's poll intervals (the emulator completes a
job on its second status call, as Salesforce completes one after some time), download every result
set by locator and parse it as the connector does (`sync.bulk.read_csv_table`: pyarrow, every
column as text), without turning it into a DataFrame. No mapping, gates or load.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from gtm_pipeline.emulator.testing import CAPinnedSession
from gtm_pipeline.salesforce.bulk_jobs import DEFAULT_MAX_RECORDS, BulkPollPolicy
from gtm_pipeline.sync.bulk_csv import read_csv_table


def read_job(info: Mapping[str, Any], access_token: str, soql: str) -> int:
    """Every record of one `queryAll` job; returns how many."""
    session = CAPinnedSession(str(info["ca_bundle"]))
    headers = {"Authorization": f"Bearer {access_token}"}
    jobs = f"{info['instance_url']}/services/data/v{info['api_version']}/jobs/query"
    body = {"operation": "queryAll", "query": soql, "contentType": "CSV", "lineEnding": "LF"}
    created = session.post(jobs, json=body, headers=headers, timeout=300)
    created.raise_for_status()
    job = f"{jobs}/{created.json()['id']}"
    for interval in BulkPollPolicy().intervals():
        state = session.get(job, headers=headers, timeout=300).json()["state"]
        if state == "JobComplete":
            break
        if state in ("Failed", "Aborted"):
            raise RuntimeError(f"the Bulk job ended {state}")
        time.sleep(interval)
    records, locator = 0, None
    while locator != "null":
        params: dict[str, Any] = {"maxRecords": DEFAULT_MAX_RECORDS}
        if locator:
            params["locator"] = locator
        result = session.get(f"{job}/results", params=params, headers=headers, timeout=300)
        result.raise_for_status()
        records += read_csv_table(result.content).num_rows
        locator = result.headers.get("Sforce-Locator") or "null"
    session.close()
    return records
