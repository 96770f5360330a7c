"""Per-tenant locks held for the length of a job, across processes and machines.

A writeback must not run twice at once for one tenant: the second would read the first one's
batch in flight as a crashed one and send its records again. Dagster's queue already allows one
run per tenant, but `gtm-pipeline writeback` and other in-process runs bypass the queue, so the
store itself holds the lock:
- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a connection held for the job;
  a process that dies releases it with its session.
- SQLite (one machine by nature): an exclusive `flock` on a file beside the database file; the
  kernel releases it when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from gtm_pipeline.errors import GtmError


class TenantBusy(GtmError, RuntimeError):
    """Another process holds the lock: the job is already running for this tenant."""


def _key(purpose: str, tenant_id: str) -> str:
    return f"gtm-pipeline:{purpose}:{tenant_id}"


@contextlib.contextmanager
def tenant_lock(engine: sa.Engine, purpose: str, tenant_id: str) -> Iterator[None]:
    """Hold the (purpose, tenant) lock for the block; TenantBusy at once when it is taken."""
    key = _key(purpose, tenant_id)
    busy = f"the {purpose} of tenant {tenant_id} is already running elsewhere; nothing was done"
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, key, busy):
            yield
        return
    database = engine.url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        yield  # a private in-memory database: no other process can reach it
        return
    with _file_lock(Path(database), key, busy):
        yield


@contextlib.contextmanager
def _advisory_lock(engine: sa.Engine, key: str, busy: str) -> Iterator[None]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        held = conn.execute(sa.text("SELECT pg_try_advisory_lock(hashtext(:key))"), {"key": key})
        if not held.scalar_one():
            raise TenantBusy(busy)
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})


@contextlib.contextmanager
def _file_lock(database: Path, key: str, busy: str) -> Iterator[None]:
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = database.with_name(f"{database.name}.{digest}.lock")
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TenantBusy(busy) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
