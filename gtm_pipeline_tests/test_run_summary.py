"""The end-of-run summary and the secret scan add up what pytest-xdist workers found.

`make test` runs the suite in workers, so a secret logged in a worker must still fail the run, and
the suites' figures must still be printed once. Each test runs pytest on a small suite in a
subprocess (its scan files in tmp_path, not the outer run's).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

INNER_SUITE = """
import logging

import pytest

from gtm_pipeline_tests import secret_scan
from gtm_pipeline_tests.fuzz import examples
from gtm_pipeline_tests.run_summary import figure
from gtm_pipeline_tests.security import attacks


@pytest.mark.parametrize("case", range(4))
def test_counts(case):
    examples.ran("a property")
    with attacks.attempt("a kind"):
        pass
    figure(f"RELIABILITY: case {case}")


def test_logs():
    if REMEMBERED:
        secret_scan.remember("encryption key", REMEMBERED)
    logging.getLogger("inner").warning(LOGGED)
"""


def run_inner(
    tmp_path: Path, logged: str, *options: str, remembered: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run INNER_SUITE, whose last test logs `logged` after remembering `remembered` as a secret."""
    source = f"LOGGED = {logged!r}\nREMEMBERED = {remembered!r}\n{INNER_SUITE}"
    (tmp_path / "test_inner.py").write_text(source)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["GTM_SECRET_SCAN_DIR"] = str(tmp_path / "scan")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", "pytest.ini"]
    command += ["--basetemp", str(tmp_path / "basetemp")]  # not the outer run's temp folders
    command += ["-p", "gtm_pipeline_tests.secret_scan", "-p", "gtm_pipeline_tests.run_summary"]
    return subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [*command, *options, "test_inner.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_workers_figures_are_added_up_and_printed_once(tmp_path) -> None:
    run = run_inner(tmp_path, "synced 20 contacts", "-n", "2")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "5 passed" in run.stdout
    assert "PytestAssertRewriteWarning" not in run.stdout
    assert "FUZZ EXAMPLES: 4 run over 1 properties" in run.stdout
    assert "ATTACKS: 4 tried, 0 succeeded" in run.stdout
    assert [line for line in run.stdout.splitlines() if line.startswith("RELIABILITY:")] == [
        f"RELIABILITY: case {case}" for case in range(4)
    ]
    # The controller's file and one per worker, each scanned by the controller.
    assert "in 3 file(s)" in run.stdout
    assert sorted(p.name for p in (tmp_path / "scan").iterdir()) == [
        "suite-gw0.log",
        "suite-gw1.log",
        "suite.log",
    ]


TOKEN = "00DRO0000001TJP!AR" + "x7" * 24


@pytest.mark.parametrize(("workers", "files"), [("2", 3), ("0", 1)])
def test_a_logged_token_fails_the_run_with_or_without_workers(
    tmp_path, workers: str, files: int
) -> None:
    run = run_inner(tmp_path, f"connected with {TOKEN}", "-n", workers)
    assert "5 passed" in run.stdout, run.stdout[-3000:]
    assert f"in {files} file(s)" in run.stdout
    assert "secrets found: 1 access token(s)" in run.stdout
    assert "FUZZ EXAMPLES: 4 run over 1 properties" in run.stdout
    assert run.returncode == 1


def test_a_secret_remembered_in_a_worker_is_found_by_the_controller(tmp_path) -> None:
    key = "k3Y-9fQz" * 5
    run = run_inner(tmp_path, f"key is {key}", "-n", "2", remembered=key)
    assert "5 passed" in run.stdout, run.stdout[-3000:]
    assert "secrets found: 1 encryption key(s)" in run.stdout
    assert run.returncode == 1
