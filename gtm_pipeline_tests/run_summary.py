"""A pytest plugin that prints the suites' figures once, at the end of the run.

The figures are the reliability suite's `RELIABILITY:` lines (`figure(line)`), the fuzz suite's
examples per property (`fuzz.examples.counts`) and the security suite's attack tally
(`security.attacks`). `make test` runs the suite in pytest-xdist workers: each worker sends its
figures to the controller when it finishes (`workeroutput`), and the controller adds them up and
prints them, as a run without workers (`-n 0`) prints its own.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import xdist

from gtm_pipeline_tests.fuzz import examples
from gtm_pipeline_tests.security import attacks

WORKER_KEY = "gtm_run_summary"
lines: list[str] = []
_added: set[str] = set()
"""On the controller: the workers whose figures are added (xdist may report one down twice)."""


def figure(line: str) -> None:
    """A line for the end-of-run summary (a suite's figure, quoted in the README)."""
    lines.append(line)


def _tallies() -> dict[str, Counter[str]]:
    return {
        "fuzz examples": examples.counts,
        "attacks tried": attacks.tried,
        "attacks succeeded": attacks.succeeded,
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if xdist.is_xdist_worker(session):
        session.config.workeroutput[WORKER_KEY] = {  # type: ignore[attr-defined]
            "lines": list(lines),
            "tallies": {name: dict(counter) for name, counter in _tallies().items()},
        }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the controller: add what a finished worker sent."""
    sent = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    worker = node.workerinput["workerid"]
    if not sent or worker in _added:
        return
    _added.add(worker)
    lines.extend(sent["lines"])
    for name, counter in _tallies().items():
        counter.update(sent["tallies"].get(name, {}))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    for line in sorted(lines):
        terminalreporter.write_line(line)
    if examples.counts:
        for line in examples.summary():
            terminalreporter.write_line(line)
    if attacks.tried:
        terminalreporter.write_line(attacks.summary())
