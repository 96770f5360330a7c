"""Deterministic crash points for a child process: SIGKILL itself at the Nth SQL statement or
right after the Nth Salesforce data response.

Counting statements (SQLAlchemy's `before_cursor_execute`) lands the kill inside a transaction:
between an upsert and the cursor it covers, or just before a commit. Counting responses lands it
after Salesforce answered but before the store recorded anything about that answer, the worst
moment for a writer. Both are exact, so a seed reproduces the same kill.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

import requests
import sqlalchemy as sa

DATA_PATH = "/services/data/"
KINDS = ("statement", "response")


@dataclass
class Counters:
    statements: int = 0
    responses: int = 0


def die() -> None:
    """SIGKILL this process: no cleanup, no rollback, no flush of anything but what is flushed."""
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(
    engine: sa.Engine,
    kill: dict | None,
    before_kill: Callable[[], None] = lambda: None,
) -> Counters:
    """Count statements on `engine` and data responses on every requests session; kill at `kill`.

    `kill` is `{"kind": "statement" | "response", "at": N}` or None (count only).
    """
    counters = Counters()
    kind, at = (kill["kind"], int(kill["at"])) if kill else (None, 0)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kill kind must be one of {KINDS}, not {kind!r}")

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _statement(*_args: object) -> None:
        counters.statements += 1
        if kind == "statement" and counters.statements == at:
            before_kill()
            die()

    original_send = requests.Session.send

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: object):
        response = original_send(self, request, **kwargs)
        if DATA_PATH in (request.url or ""):
            counters.responses += 1
            if kind == "response" and counters.responses == at:
                before_kill()
                die()
        return response

    requests.Session.send = send  # type: ignore[method-assign]
    return counters
