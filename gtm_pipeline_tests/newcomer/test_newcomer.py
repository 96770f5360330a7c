"""A newcomer's path: the README's commands, and the demo's Dagster UI in headless Chromium.

Quick mode (CI): the demo runs from this checkout's environment on a small org and a free port;
Chromium opens the Dagster UI it started and checks, with screenshots in
test-artifacts/newcomer/, that the tenant partition, the three entity assets with their six
checks each, a check's execution history by tenant partition, the writeback asset with its
results table, and the daemon chaining runs by itself (the sensor's sync of the tenant, then the
scores-and-writeback run `score_after_sync` requests).

Full mode (`--full`): the repository is cloned into a new folder and the two commands of the
README's quick start are run there exactly as written, in a new virtual environment (`make demo`
then `make test`); the demo's UI is checked the same way.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from gtm_pipeline_tests.browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from gtm_pipeline_tests.modes import FULL_ENV
from gtm_pipeline_tests.run_summary import figure

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "newcomer"
UI_LINE = re.compile(r"Starting the Dagster UI on (http://127\.0\.0\.1:\d+)")
ENTITY_ASSETS = ("accounts", "contacts", "opportunities")
CHECKS = (
    "required_fields", "deduplication", "type_coercion", "reconciliation", "quarantine_share",
    "freshness",
)  # fmt: skip

pytestmark = needs_chromium


class Demo:
    """A running demo process: its output so far, and the UI address once it printed it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.ui_url: str | None = None
        self._ui_seen = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            match = UI_LINE.search(line)
            if match:
                self.ui_url = match.group(1)
                self._ui_seen.set()
        self._ui_seen.set()  # the process ended: stop waiting

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_ui(self, timeout: float) -> str:
        if not self._ui_seen.wait(timeout) or self.ui_url is None:
            pytest.fail(f"the demo did not start the UI within {timeout:.0f} s:\n{self.output}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the demo stopped before its UI answered:\n{self.output}")
            try:
                if requests.get(f"{self.ui_url}/server_info", timeout=5).ok:
                    return self.ui_url
            except requests.RequestException:
                pass
            time.sleep(1)
        pytest.fail(f"the Dagster UI at {self.ui_url} did not answer within {timeout:.0f} s")


@contextmanager
def running_demo(command: list[str], cwd: Path, env: dict[str, str]) -> Iterator[Demo]:
    """Start `command`; on exit stop it with SIGTERM (the demo takes its UI down with it)."""
    process = subprocess.Popen(  # noqa: S603
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield Demo(process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def check_demo_output(output: str) -> None:
    for expected in (
        "Connected: tenant demo",
        "Full sync:",
        "Incremental sync:",
        "Score fields mapped",
        "Scores computed and written back to Salesforce:",
    ):
        assert expected in output, f"{expected!r} missing from the demo's output:\n{output}"
    section = output.split("Scores computed and written back to Salesforce:", 1)[1]
    written = [line.split() for line in section.splitlines()[2:6]]
    assert [row[0] for row in written] == ["account", "person", "lead", "opportunity"], section
    assert all(int(row[2]) > 0 and int(row[3]) == 0 for row in written), section


def _dismiss_popups(page) -> None:
    """Dagster's first-visit community dialog covers the page; skip it when it shows."""
    skip = page.get_by_role("button", name="Skip")
    if skip.count() and skip.first.is_visible():
        skip.first.click()


def _open(page, url: str, *texts: str) -> str:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    _dismiss_popups(page)
    for text in texts:
        page.get_by_text(text, exact=True).first.wait_for(state="visible")
    return page.inner_text("body")


def check_dagster_ui(base: str, prefix: str) -> None:
    """Open the UI's pages for the demo tenant and check what they show; screenshot each."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"{prefix}-{name}.png"), full_page=True)

            for asset in ENTITY_ASSETS:
                _open(page, f"{base}/assets/salesforce/{asset}?view=partitions", "demo")
                shot(f"01-{asset}-partitions")
                body = _open(page, f"{base}/assets/salesforce/{asset}?view=checks", *CHECKS)
                assert f"Checks ({len(CHECKS)})" in body
                shot(f"02-{asset}-checks")
            # A check's latest evaluation and its history belong to the tenant partition.
            check = f"{base}/assets/salesforce/contacts?view=checks&checkDetail=required_fields"
            body = _open(page, check, "required_fields", "Partition")
            assert "Partition\ndemo" in body
            page.get_by_text("Execution history", exact=True).first.click()
            page.get_by_text("demo", exact=True).first.wait_for(state="visible")
            shot("02-contacts-required-fields-history")
            body = _open(page, f"{base}/assets/salesforce/score_writeback", "score_writeback")
            page.get_by_text("skipped_unchanged").first.wait_for(state="visible")  # results table
            assert "demo" in body
            shot("03-score-writeback")
            # The daemon carries on by itself: the demo's writeback changed records, so the
            # sensor syncs the tenant, and score_after_sync then runs its scores and writeback.
            _open(page, f"{base}/runs")
            chained = page.get_by_text("salesforce_scores_writeback", exact=True).first
            chained.wait_for(state="visible", timeout=240_000)
            shot("04-runs-chained-by-the-daemon")
        finally:
            browser.close()


@pytest.mark.heavy
def test_the_demo_starts_a_dagster_ui_that_shows_the_pipeline(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "DATABASE_URL")}
    env["GTM_HOME"] = str(tmp_path / "gtm-home")
    port = _free_port()
    command = [
        str(Path(sys.executable).with_name("gtm-pipeline")),
        "demo",
        "--accounts", "40", "--contacts", "300", "--opportunities", "60",
        "--ui-port", str(port),
    ]  # fmt: skip
    with running_demo(command, tmp_path, env) as demo:
        base = demo.wait_for_ui(timeout=240)
        check_demo_output(demo.output)
        check_dagster_ui(base, "quick")


def readme_commands() -> list[str]:
    """The commands of the README's quick start, as written (comments dropped)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1]
    block = quick_start.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def newcomer_env(home: Path) -> dict[str, str]:
    """A shell as a newcomer has it: no virtual environment active, none of the suite's settings."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    dropped = ("VIRTUAL_ENV", "DAGSTER_HOME", "DATABASE_URL", "GTM_HOME", FULL_ENV, "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("PYTEST")}
    return env | {"PATH": path, "HOME": os.environ.get("HOME", str(home))}


def test_readme_quick_start_is_the_two_make_commands() -> None:
    assert readme_commands() == ["make demo", "make test"]


@pytest.mark.slow
@pytest.mark.timeout(5400)  # a new virtual environment, the demo, then the whole quick suite
def test_a_fresh_clone_runs_the_readme_commands_as_written(tmp_path) -> None:
    clone = tmp_path / "gtm-pipeline"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)  # noqa: S603,S607
    env = newcomer_env(tmp_path)
    demo_command, test_command = readme_commands()
    with running_demo(["bash", "-c", demo_command], clone, env) as demo:
        base = demo.wait_for_ui(timeout=900)
        check_demo_output(demo.output)
        check_dagster_ui(base, "clone")
    assert (clone / ".venv" / "bin" / "python").exists()
    started = time.monotonic()
    tests = subprocess.run(  # noqa: S603 - bash from PATH, as a newcomer runs it
        ["bash", "-c", test_command],  # noqa: S607
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    tail = "\n".join((tests.stdout + tests.stderr).splitlines()[-30:])
    assert tests.returncode == 0, tail
    assert re.search(r"\d+ passed", tests.stdout), tail
    figure(f"NEWCOMER: make test in a fresh clone passed in {time.monotonic() - started:.0f} s")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
