"""`gtm-pipeline emulator` as a process: prints where to connect, never secrets; Ctrl-C stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from gtm_pipeline.cli.emulator import emulator as emulator_command
from gtm_pipeline.emulator.testing import CAPinnedSession, obtain_tokens

LAUNCH = "from gtm_pipeline.cli.emulator import emulator; emulator()"


def _wait_for_line(process: subprocess.Popen, marker: str, timeout: float = 30) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} in output: {lines}")


def test_command_serves_until_interrupted(tmp_path: Path) -> None:
    state_dir = tmp_path / "emu"
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", LAUNCH]
        + ["--state-dir", str(state_dir), "--accounts", "5", "--contacts", "30"]
        + ["--opportunities", "3", "--auto-approve", "--daily-api-limit", "7"]
        + ["--page-size", "4", "--leads", "6", "--tasks", "9", "--events", "2"]
        + ["--dirty-ratio", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        printed = _wait_for_line(process, "Press Ctrl-C")
        info = json.loads((state_dir / "emulator.json").read_text())
        output = "\n".join(printed)
        assert info["instance_url"] in output and info["ca_bundle"] in output
        assert str(state_dir / "emulator.json") in output
        for secret in (info["client_secret"], info["control_token"], info["client_id"]):
            assert secret not in output
        session = CAPinnedSession(info["ca_bundle"])
        tokens = obtain_tokens(info, session=session)
        response = session.get(
            info["instance_url"] + "/services/data/v59.0/query",
            params={"q": "SELECT Id FROM Contact"},
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            timeout=10,
        )
        assert len(response.json()["records"]) == 4
        assert response.headers["Sforce-Limit-Info"] == "api-usage=1/7"
        for sobject, expected in (("Lead", 6), ("Task", 9), ("Event", 2)):
            every = session.get(
                info["instance_url"] + "/services/data/v59.0/queryAll",
                params={"q": f"SELECT Id FROM {sobject}"},  # noqa: S608 - fixed object names
                headers={"Authorization": f"Bearer {tokens['access_token']}"},
                timeout=10,
            )
            assert every.json()["totalSize"] == expected, sobject
        session.close()
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Emulator stopped." in stdout
    assert info["client_secret"] not in stderr and tokens["access_token"] not in stderr


def test_command_refuses_non_loopback_hosts() -> None:
    everywhere = "0.0.0.0"  # noqa: S104 - the address being refused
    result = CliRunner().invoke(emulator_command, ["--host", everywhere])
    assert result.exit_code == 2
    assert everywhere in result.output


def test_command_reports_a_taken_port(tmp_path: Path, emulator) -> None:
    port = emulator.info["instance_url"].rsplit(":", 1)[1]
    result = CliRunner().invoke(
        emulator_command,
        ["--port", port, "--state-dir", str(tmp_path), "--accounts", "1", "--contacts", "1"],
    )
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
