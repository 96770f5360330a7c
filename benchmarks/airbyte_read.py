"""Run Airbyte's Salesforce source (`source_salesforce`) against the emulator; count its records.

Run with the Python of the virtual environment Airbyte's source is installed in, not the
project's (the two do not share dependencies), so this file imports only the standard library
and Airbyte's packages (benchmarks/airbyte_salesforce.py runs it):

    /tmp/abvenv/bin/python benchmarks/airbyte_read.py SETTINGS.json

SETTINGS.json holds the emulator's `login_url` and `ca_bundle`, the connected app's `client_id`
and `client_secret`, a `refresh_token`, the `streams` to read and the source's `start_date`. The
source is run as its entrypoint runs it (`source-salesforce read --config ... --catalog ...`):
the same `AirbyteEntrypoint`, every message serialized as a JSON line, with a configured catalog
of the streams in full refresh. Three things differ from an install against Salesforce:

- the token request goes to the emulator: the source hard-codes
  https://login.salesforce.com/services/oauth2/token (or test.salesforce.com), and only that
  URL is rewritten, on its way out, to the emulator's token endpoint; everything after it
  follows the `instance_url` the token response names, as against Salesforce;
- requests trusts the emulator's CA (REQUESTS_CA_BUNDLE);
- the Bulk result reader is handed header names in Salesforce's case (`_salesforce_header_case`
  says why: with the emulator's lower-case names it raises on every result set).

RECORD lines are serialized and dropped (a platform would read them from stdout); every other
line goes to stderr (the source's logger writes its LOG lines to stdout itself). The last line
on stdout is one JSON object: `records`, `per_stream`, `apis` (the API the source chose per
stream: `rest` or `bulk`), `seconds` (the read, from the entrypoint's start to its last
message), `peak_rss_mb` (this process's VmHWM) and `errors` (the messages of ERROR traces).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

SALESFORCE_TOKEN_URLS = tuple(
    f"https://{host}.salesforce.com/services/oauth2/token" for host in ("login", "test")
)
RECORD_PREFIX = '{"type":"RECORD"'


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _redirect_login(token_url: str) -> None:
    """Send the source's refresh_token grant to `token_url` instead of Salesforce's login host."""
    from source_salesforce.api import Salesforce

    make_request = Salesforce._make_request

    def to_emulator(self: Any, http_method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url in SALESFORCE_TOKEN_URLS:
            url = token_url
        return make_request(self, http_method, url, *args, **kwargs)

    Salesforce._make_request = to_emulator  # type: ignore[method-assign]


def _record_api_types(chosen: dict[str, str]) -> None:
    """Note which API (`rest` or `bulk`) the source picks for each stream."""
    from source_salesforce import SourceSalesforce

    api_type = SourceSalesforce._get_api_type.__func__  # type: ignore[attr-defined]

    def recording(cls: Any, stream_name: str, *args: Any) -> str:
        chosen[stream_name] = api_type(cls, stream_name, *args)
        return chosen[stream_name]

    SourceSalesforce._get_api_type = classmethod(recording)  # type: ignore[method-assign,assignment]


def _canonical(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _salesforce_header_case() -> None:
    """Let the Bulk result reader see header names as Salesforce writes them (`Content-Type`).

    `ResponseToFileExtractor._get_response_encoding` copies the headers into a plain dict, looks
    up `content-type` in lower case and, if found, splits it with `parse_header_links`, which
    raises on any Content-Type value. Salesforce's `Content-Type` misses the lower-case lookup,
    so the reader falls back to UTF-8; the emulator (Starlette) sends header names in lower case
    (HTTP names are case-insensitive) and the lookup hits. Handing the method canonical names
    gives it what it gets from Salesforce: UTF-8, the charset the emulator names too.
    """
    from airbyte_cdk.sources.declarative.extractors.response_to_file_extractor import (
        ResponseToFileExtractor,
    )

    encoding_of = ResponseToFileExtractor._get_response_encoding

    def as_from_salesforce(self: Any, headers: dict[str, Any]) -> str:
        return encoding_of(self, {_canonical(k): v for k, v in headers.items()})

    ResponseToFileExtractor._get_response_encoding = as_from_salesforce  # type: ignore[method-assign]


def _catalog(streams: list[str]) -> dict[str, Any]:
    """A configured catalog of `streams`, full refresh (the source reads no schema from it)."""
    return {
        "streams": [
            {
                "stream": {
                    "name": name,
                    "json_schema": {"type": "object", "properties": {}},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                },
                "sync_mode": "full_refresh",
                "destination_sync_mode": "overwrite",
            }
            for name in streams
        ]
    }


def main(argv: list[str]) -> int:
    settings = json.loads(Path(argv[0]).read_text())
    os.environ["REQUESTS_CA_BUNDLE"] = settings["ca_bundle"]
    from airbyte_cdk.entrypoint import AirbyteEntrypoint
    from airbyte_cdk.models import TraceType, Type
    from source_salesforce import SourceSalesforce

    _redirect_login(f"{settings['login_url'].rstrip('/')}/services/oauth2/token")
    _salesforce_header_case()
    apis: dict[str, str] = {}
    _record_api_types(apis)
    config = {
        "client_id": settings["client_id"],
        "client_secret": settings["client_secret"],
        "refresh_token": settings["refresh_token"],
        "start_date": settings["start_date"],
        "is_sandbox": False,
    }
    per_stream: Counter[str] = Counter()
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="airbyte_read_") as folder:
        config_path, catalog_path = Path(folder, "config.json"), Path(folder, "catalog.json")
        config_path.write_text(json.dumps(config))
        catalog_path.write_text(json.dumps(_catalog(settings["streams"])))
        args = ["read", "--config", str(config_path), "--catalog", str(catalog_path)]
        source = SourceSalesforce(
            SourceSalesforce.read_catalog(str(catalog_path)),
            SourceSalesforce.read_config(str(config_path)),
            None,
        )
        entrypoint = AirbyteEntrypoint(source)
        read = entrypoint.read

        def counting_read(*read_args: Any) -> Any:
            for message in read(*read_args):
                if message.type == Type.RECORD:
                    per_stream[message.record.stream] += 1
                elif message.type == Type.TRACE and message.trace.type == TraceType.ERROR:
                    errors.append(message.trace.error.message)
                yield message

        entrypoint.read = counting_read  # type: ignore[method-assign]
        started = time.perf_counter()
        try:
            for line in entrypoint.run(entrypoint.parse_args(args)):
                if not line.startswith(RECORD_PREFIX):
                    sys.stderr.write(line[:2000] + "\n")
        except Exception as exc:  # noqa: BLE001 - reported in the summary, exit status 1
            errors.append(f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - started
    summary = {
        "records": sum(per_stream.values()),
        "per_stream": dict(per_stream),
        "apis": apis,
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "errors": errors,
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
