"""Reproducible performance runs, and the helpers they share.

Each benchmark is a module runnable with `python -m benchmarks.NAME`; it prints its figures and
records them, with the machine they were measured on, in `benchmarks/results/NAME.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    """The server benchmarks create their throw-away databases on (same variable as the tests)."""
    return os.environ.get("GTM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN_URL)


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """`--postgres-url`, `--no-postgres` and `--no-write`, as every store benchmark takes them."""
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="server on which temporary databases are created "
        "(default: GTM_TEST_POSTGRES_URL or postgres@127.0.0.1:5432)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-write", action="store_true", help="print only; keep result files")


def machine_info() -> dict[str, Any]:
    """What a figure was measured on, so figures from different machines are not mixed up."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }


@contextmanager
def temporary_sqlite_url(prefix: str = "gtm_bench_") -> Iterator[str]:
    """A SQLite URL for a file in a temporary folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield f"sqlite:///{Path(folder) / 'warehouse.db'}"


@contextmanager
def temporary_postgres_database(
    admin_url: str | None = None, prefix: str = "gtm_bench"
) -> Iterator[str]:
    """Create a fresh PostgreSQL database, yield its URL, and drop it (even after a failure)."""
    admin = sa.create_engine(admin_url or postgres_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield admin.url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_results(name: str, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write `results/NAME.json` and `results/NAME.md`, replacing the previous run's."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"{name}.json"
    md_path = RESULTS_DIR / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    md_path.write_text(markdown.rstrip() + "\n", encoding="utf-8")
    return json_path, md_path


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(name: str, payload: dict[str, Any], markdown: str, *, write: bool) -> None:
    """Print a benchmark's Markdown, then record it (`write`) or print its total time only."""
    print(markdown)
    if write:
        json_path, md_path = write_results(name, payload, markdown)
        print(f"wrote {json_path} and {md_path}")
    else:
        print(json.dumps({"total_seconds": payload["total_seconds"]}))
