"""The command line: help on every command, the demo end to end, one-line errors."""

from __future__ import annotations

import os
import re

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gtm_pipeline.cli import main
from gtm_pipeline.config import Settings
from gtm_pipeline.store import make_engine
from gtm_pipeline.store.tables import activities, persons
from gtm_pipeline.sync.entities import SYNC_ORDER

ENTITY_ROWS = tuple(e.asset_name for e in SYNC_ORDER)
"""The rows of the sync summary tables."""

COMMANDS = [
    "demo",
    "emulator",
    "web",
    "connect",
    "operator",
    "sync",
    "rotate-key",
    "mapping",
    "quality",
    "writeback",
]


def test_top_level_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", result.output, re.MULTILINE)


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_help(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def _table(output: str, title: str) -> dict[str, list[str]]:
    """The summary table printed after `title` (Dagster's own log lines may sit in between)."""
    section = output.split(title, 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = line.split()
        if cells and cells[0] in ENTITY_ROWS and cells[0] not in rows:
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture()
def restored_environ():
    """The demo points this process's settings at its emulator; put them back afterwards."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_demo_connects_syncs_changes_and_syncs_again(gtm_home, monkeypatch, restored_environ):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    args = ["demo", "--no-ui", "--accounts", "50", "--contacts", "700", "--opportunities", "120",
            "--leads", "300", "--tasks", "300", "--events", "90"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Connected: tenant demo" in result.output
    full = _table(result.output, "Full sync:")
    incremental = _table(result.output, "Incremental sync:")
    assert set(full) == set(ENTITY_ROWS)
    assert all(row[0] == "full" for row in full.values())
    assert all(row[0] == "incremental" for row in incremental.values())
    # mode, rows_read, rows_loaded, rows_rejected, rows_deleted, pages, api_calls
    assert int(full["contacts"][1]) >= 700
    assert int(incremental["contacts"][4]) == 3  # the three deletions
    # 5 updates, 1 insert, 1 late commit, the Contact a converted Lead became
    assert int(incremental["contacts"][1]) >= 8
    assert int(incremental["leads"][1]) >= 1  # the converted Lead
    assert int(full["tasks"][2]) > 0 and int(full["events"][2]) > 0
    assert _demo_meetings("Demo: discovery meeting") == 1  # logged between the syncs
    assert all(int(row[6]) == 2 for row in incremental.values())
    assert "person: fit_score → Fit_Score__c" in result.output
    written = _writeback_rows(result.output)
    assert list(written) == ["account", "person", "lead", "opportunity"]
    # total, success, failed, skipped_unchanged, requests: every live, clean record written
    for entity_type, row in written.items():
        total, success, failed, skipped, requests = map(int, row)
        assert success == total > 0 and failed == skipped == 0, entity_type
        assert requests == -(-total // 200)
    # Stored Contacts, not deleted: the full sync's rows, +insert +conversion -deletes (email
    # twins included).
    contacts, leads = _demo_people("Contact"), _demo_people("Lead")
    assert len(contacts) == int(full["contacts"][2]) + 2 - 3
    # Written: the live set, one person per email (the twins of each left out) and those with
    # none; a Lead sharing a Contact's email, or converted, is left out too.
    contact_emails = {e for e, _ in contacts if e is not None}
    assert int(written["person"][0]) == distinct_people(contacts) < len(contacts)
    open_leads = [(e, c) for e, c in leads if not c and e not in contact_emails]
    assert int(written["lead"][0]) == distinct_people(open_leads) < len(leads)


def distinct_people(rows: list[tuple[str | None, bool]]) -> int:
    """Rows without an email, plus one per distinct email."""
    present = [e for e, _ in rows if e is not None]
    return len(rows) - len(present) + len(set(present))


def _demo_people(source_object: str) -> list[tuple[str | None, bool]]:
    """The demo tenant's persons rows of one object not deleted: (email, converted)."""
    query = sa.select(persons.c.email, persons.c.is_converted).where(
        persons.c.tenant_id == "demo",
        persons.c.source_object == source_object,
        persons.c.is_deleted.is_(False),
    )
    engine = make_engine(Settings.from_process().database_url)
    try:
        with engine.connect() as conn:
            return [(r.email, bool(r.is_converted)) for r in conn.execute(query)]
    finally:
        engine.dispose()


def _demo_meetings(subject: str) -> int:
    """The demo tenant's live Events with this subject, with the person they were with."""
    query = sa.select(sa.func.count()).where(
        activities.c.tenant_id == "demo",
        activities.c.kind == "event",
        activities.c.subject == subject,
        activities.c.who_object == "Contact",
        activities.c.is_deleted.is_(False),
    )
    engine = make_engine(Settings.from_process().database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def _writeback_rows(output: str) -> dict[str, list[str]]:
    section = output.split("Scores computed and written back to Salesforce:\n", 1)[1]
    rows = {}
    for line in section.splitlines()[1:]:
        cells = line.split()
        if not cells or cells[0] not in ("account", "person", "lead", "opportunity"):
            break
        rows[cells[0]] = cells[1:]
    return rows


def test_bad_setting_is_one_line_and_non_zero(gtm_home, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://user:hunter2@db/x")
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: DATABASE_URL must be a sqlite:/// or postgresql:// URL (got an unsupported scheme)"
    ]


def test_a_command_reads_its_settings_once_and_embedding_code_the_process(monkeypatch):
    import click

    from gtm_pipeline.cli.common import program_settings

    seen = []

    @click.command()
    def probe() -> None:
        seen.append(program_settings())
        monkeypatch.setenv("GTM_BULK_THRESHOLD", "7")  # changed mid-command: not read again
        seen.append(program_settings())

    result = CliRunner().invoke(probe, env={"GTM_BULK_THRESHOLD": "3"})
    assert result.exit_code == 0, result.output
    assert seen[0] is seen[1] and seen[1].bulk_threshold == 3
    monkeypatch.setenv("GTM_BULK_THRESHOLD", "9")
    assert program_settings().bulk_threshold == 9  # outside a command: the process's, now
