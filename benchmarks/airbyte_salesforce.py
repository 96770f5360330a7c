"""Another comparison point: Airbyte's Salesforce source, extraction only, as it installs.

Airbyte's source (`airbyte-source-salesforce` on PyPI, package `source_salesforce`) runs in a
virtual environment of its own, since it pins its own versions of libraries the project uses too:

    python3.11 -m venv /tmp/abvenv && /tmp/abvenv/bin/pip install airbyte-source-salesforce
    export GTM_AIRBYTE_PYTHON=/tmp/abvenv/bin/python

`GTM_AIRBYTE_PYTHON` names that environment's Python; unset (the default), or naming a Python
without `source_salesforce`, the benchmark shows the Airbyte row as unavailable, with the reason.

The row runs `benchmarks/airbyte_read.py` with that Python: the source's own entrypoint doing
`read` with a configured catalog of Account, Contact and Opportunity in full refresh, every
message serialized, records counted and dropped (no destination: extraction only). It logs in
with a refresh token through the emulator's OAuth flow (the one place the wrapper steps in: the
source hard-codes login.salesforce.com) and then does what it does against Salesforce: the
global describe and a describe per object, then per object either REST `queryAll` pages (an
object with a compound address or location field, or a base64 one: Account and Contact here) or
one Bulk API 2.0 `queryAll` job (the others: Opportunity), up to 20 streams at once. It selects
every field the describe lists and, through `queryAll`, deleted records too, so its records are
not the same rows the connector's full sync reads (live records, its mapped fields).

The row's seconds are the read inside the source's process (login to last message; the
interpreter's start and imports excluded, as dlt's row excludes its set-up), its peak RSS is
that process's, its API calls the emulator's count (OAuth excluded).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PYTHON_VARIABLE = "GTM_AIRBYTE_PYTHON"
INSTALL = "python3.11 -m venv /tmp/abvenv && /tmp/abvenv/bin/pip install airbyte-source-salesforce"
WRAPPER = Path(__file__).resolve().parent / "airbyte_read.py"
STREAMS = ("Account", "Contact", "Opportunity")
START_DATE = "2000-01-01T00:00:00Z"
"""The source's start date; a full refresh sends no date filter, so it only has to be valid."""
TIMEOUT_SECONDS = 4 * 3600.0
TAIL_LINES = 5


class AirbyteFailed(RuntimeError):
    """The source exited with an error, reported ERROR traces, or printed no summary."""


def airbyte_python() -> str | None:
    """The Python `GTM_AIRBYTE_PYTHON` names, or None when the variable is unset or empty."""
    return os.environ.get(PYTHON_VARIABLE) or None


def unavailable_reason() -> str | None:
    """Why the Airbyte row cannot run here, or None when it can."""
    python = airbyte_python()
    if python is None:
        return f"{PYTHON_VARIABLE} is not set ({INSTALL}; {PYTHON_VARIABLE}=/tmp/abvenv/bin/python)"
    if not os.access(python, os.X_OK):
        return f"{PYTHON_VARIABLE}={python} is not an executable Python ({INSTALL})"
    probe = "import importlib.util as u, sys; sys.exit(u.find_spec('source_salesforce') is None)"
    try:
        found = subprocess.run(  # noqa: S603 - the Python the operator named, fixed arguments
            [python, "-c", probe], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{PYTHON_VARIABLE}={python} does not run ({exc})"
    if found.returncode != 0:
        return f"source_salesforce is not installed for {python} ({INSTALL})"
    return None


def _tail(text: str) -> str:
    return " | ".join(text.strip().splitlines()[-TAIL_LINES:])


def read_streams(
    python: str,
    info: Mapping[str, Any],
    refresh_token: str,
    streams: Sequence[str] = STREAMS,
) -> dict[str, Any]:
    """Run the source's `read` of `streams` under `python`; its summary plus the process's wall
    seconds. Raises AirbyteFailed when the run did not read every stream cleanly."""
    settings = {
        "login_url": info["login_url"],
        "ca_bundle": info["ca_bundle"],
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "refresh_token": refresh_token,
        "streams": list(streams),
        "start_date": START_DATE,
    }
    with tempfile.TemporaryDirectory(prefix="gtm_bench_airbyte_") as folder:
        path = Path(folder) / "settings.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(settings))
        started = time.perf_counter()
        try:
            done = subprocess.run(  # noqa: S603 - the Python the operator named, our wrapper
                [python, str(WRAPPER), str(path)],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AirbyteFailed(f"the source did not finish in {TIMEOUT_SECONDS:.0f} s") from exc
        process_seconds = time.perf_counter() - started
    try:
        summary = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise AirbyteFailed(
            f"the source exited with {done.returncode} and no summary: {_tail(done.stderr)}"
        ) from None
    if done.returncode != 0 or summary["errors"]:
        raise AirbyteFailed(f"the source failed: {'; '.join(summary['errors'])[:500]}")
    missing = [s for s in streams if s not in summary["per_stream"]]
    if missing:
        raise AirbyteFailed(f"the source read nothing of {', '.join(missing)}")
    return {**summary, "process_seconds": round(process_seconds, 3)}
