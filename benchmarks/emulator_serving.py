"""How fast the emulator serves a large object through REST query pages.

    .venv/bin/python -m benchmarks.emulator_serving [--contacts 1000000] [--batch-size 2000]

Generates an org (timed separately), starts the emulator over HTTPS, gets a token through the
OAuth flow, then reads every Contact page by page with plain `requests`, parsing each page's
JSON as a connector would. Writes benchmarks/results/emulator_serving.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Any

from benchmarks import machine_info, utc_now_iso, write_results
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.testing import CAPinnedSession, obtain_tokens, running_emulator

SOQL = (
    "SELECT Id, Email, FirstName, LastName, Title, Phone, AccountId, SystemModstamp "
    "FROM Contact ORDER BY SystemModstamp, Id"
)
NAME = "emulator_serving"


def read_all_pages(
    info: dict[str, Any], access_token: str, batch_size: int, soql: str = SOQL
) -> dict[str, Any]:
    """Follow nextRecordsUrl to the end; time the first page (it runs the query) and the rest."""
    session = CAPinnedSession(info["ca_bundle"])
    headers = {
        "Authorization": f"Bearer {access_token}",
        "Sforce-Query-Options": f"batchSize={batch_size}",
    }
    base = info["instance_url"]
    url = f"{base}/services/data/v{info['api_version']}/query"
    params: dict[str, str] | None = {"q": soql}
    records = pages = wire_bytes = 0
    page_seconds: list[float] = []
    started = time.perf_counter()
    while True:
        page_started = time.perf_counter()
        response = session.get(url, params=params, headers=headers, timeout=300)
        response.raise_for_status()
        body = response.json()
        page_seconds.append(time.perf_counter() - page_started)
        wire_bytes += len(response.content)
        records += len(body["records"])
        pages += 1
        if body["done"]:
            break
        url, params = base + body["nextRecordsUrl"], None
    total = time.perf_counter() - started
    session.close()
    return {
        "records": records,
        "total_size": body["totalSize"],
        "pages": pages,
        "seconds": round(total, 3),
        "first_page_seconds": round(page_seconds[0], 3),
        "median_page_seconds": round(statistics.median(page_seconds[1:] or page_seconds), 4),
        "records_per_second": round(records / total),
        "megabytes_on_wire": round(wire_bytes / 1e6, 1),
    }


def _markdown(result: dict[str, Any]) -> str:
    read = result["read"]
    return "\n".join(
        [
            "# Emulator serving benchmark",
            "",
            f"`python -m benchmarks.emulator_serving --contacts {result['contacts']}` "
            f"on {result['machine']['cpu_count']} CPUs, Python {result['machine']['python']}.",
            "",
            f"Query: `{SOQL}`, batchSize {result['batch_size']}, plain `requests` over HTTPS,",
            "each page's JSON parsed.",
            "",
            "| measure | value |",
            "| --- | --- |",
            f"| org generation (not part of serving) | {result['generate_seconds']} s |",
            f"| records read / totalSize | {read['records']} / {read['total_size']} |",
            f"| pages | {read['pages']} |",
            f"| **total read time** | **{read['seconds']} s** |",
            f"| first page (runs the query) | {read['first_page_seconds']} s |",
            f"| median later page | {read['median_page_seconds']} s |",
            f"| records per second | {read['records_per_second']} |",
            f"| bytes on the wire (decoded) | {read['megabytes_on_wire']} MB |",
            "",
        ]
    )


def run(contacts: int, batch_size: int, write: bool = True) -> dict[str, Any]:
    started = time.perf_counter()
    org = Org.generate(
        seed=42, counts={"Account": max(1, contacts // 10), "Contact": contacts, "Opportunity": 0}
    )
    generate_seconds = time.perf_counter() - started
    with (
        tempfile.TemporaryDirectory() as state_dir,
        running_emulator(state_dir, org=org, daily_api_limit=10**9) as emulator,
    ):
        tokens = obtain_tokens(emulator.info)
        read = read_all_pages(emulator.info, tokens["access_token"], batch_size)
    result = {
        "contacts": contacts,
        "batch_size": batch_size,
        "generate_seconds": round(generate_seconds, 2),
        "read": read,
        "recorded_at": utc_now_iso(),
        "machine": machine_info(),
    }
    if write:
        write_results(NAME, result, _markdown(result))
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true", help="print only; keep result files")
    args = parser.parse_args(argv)
    if args.contacts < 1:
        parser.error("--contacts must be at least 1")
    result = run(args.contacts, args.batch_size, write=not args.no_write)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
