"""Run the crash child and read what it said; shared by the sync and writeback crash tests."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from gtm_pipeline_tests.reliability.kill_hooks import KINDS

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ChildRun:
    lines: list[dict]
    returncode: int
    stderr: str

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    @property
    def done(self) -> dict | None:
        return next((line for line in self.lines if line.get("done")), None)


def run_child(job: dict) -> ChildRun:
    """Run crash_child.py with `job` on stdin until it ends or kills itself."""
    finished = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "gtm_pipeline_tests.reliability.crash_child"],
        cwd=REPO_ROOT,
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [json.loads(line) for line in finished.stdout.splitlines() if line.strip()]
    run = ChildRun(lines, finished.returncode, finished.stderr)
    if not run.killed and run.returncode != 0:
        raise AssertionError(f"the child failed ({run.returncode}): {run.stderr[-3000:]}")
    return run


class StatementCounter:
    """Counts SQL statements on an engine while active, as kill_hooks counts them in the child."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.count = 0

    def _count(self, *_args: object) -> None:
        self.count += 1

    def __enter__(self) -> StatementCounter:
        sa.event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *_exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._count)


def kill_point(rng: random.Random, statements: int, responses: int) -> dict:
    """A seeded kill: before statement N or after response N of a run like the calibrated one."""
    kind = rng.choice(KINDS)
    total = statements if kind == "statement" else responses
    return {"kind": kind, "at": rng.randint(1, max(1, total - 1))}
