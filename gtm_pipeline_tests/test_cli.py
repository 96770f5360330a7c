"""The command line: help on every command, the demo end to end, one-line errors."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from gtm_pipeline.cli import main

COMMANDS = ["demo", "emulator"]


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


def test_demo_reads_every_object_through_oauth_and_the_client(gtm_home):
    result = CliRunner().invoke(
        main, ["demo", "--accounts", "50", "--contacts", "2500", "--opportunities", "120"]
    )
    assert result.exit_code == 0, result.output
    assert "Connected through OAuth" in result.output
    rows = dict(
        (m.group(1), (int(m.group(2)), int(m.group(3))))
        for m in re.finditer(r"^(Account|Contact|Opportunity)\s+(\d+)\s+(\d+)", result.output, re.M)
    )
    assert set(rows) == {"Account", "Contact", "Opportunity"}
    # 2500 contacts (plus any served twice) at 2000 a page take two pages.
    assert rows["Contact"][0] == 2 and rows["Contact"][1] >= 2500
    assert rows["Account"][1] >= 50 and rows["Opportunity"][1] >= 120
    assert re.search(r"API calls made: 4 \(org usage 4/15000\)", result.output)


def test_bad_setting_is_one_line_and_non_zero(gtm_home, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://user:hunter2@db/x")
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: DATABASE_URL must be a sqlite:/// or postgresql:// URL (got an unsupported scheme)"
    ]
