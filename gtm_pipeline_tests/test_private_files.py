"""GTM_HOME, the Dagster home and the files the project writes there are private (0700/0600),
whatever the umask; looser modes found at start are tightened. The SQLite store's own modes are
tested in store/test_engine.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gtm_pipeline.cli.instance import dagster_home as configured_home
from gtm_pipeline.config import Settings
from gtm_pipeline.private_files import private_dir, private_file


def dagster_home() -> Path:
    return configured_home(Settings.from_process())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_default_dagster_home_and_gtm_home_are_private(gtm_home, monkeypatch, usual_umask):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    Path(gtm_home).chmod(0o755)  # as an earlier version left it
    home = dagster_home()
    assert home == Path(gtm_home) / "dagster_home"
    assert (_mode(Path(gtm_home)), _mode(home), _mode(home / "dagster.yaml")) == (
        0o700,
        0o700,
        0o600,
    )
    assert "run_retries" in (home / "dagster.yaml").read_text()  # the shipped settings


def test_a_configured_dagster_home_gets_private_new_folders_and_settings(
    tmp_path, monkeypatch, usual_umask
):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "new" / "home"))
    home = dagster_home()
    assert (_mode(tmp_path / "new"), _mode(home), _mode(home / "dagster.yaml")) == (
        0o700,
        0o700,
        0o600,
    )
    chosen = tmp_path / "chosen"
    chosen.mkdir(mode=0o755)
    monkeypatch.setenv("DAGSTER_HOME", str(chosen))
    assert dagster_home() == chosen
    assert (_mode(chosen), _mode(chosen / "dagster.yaml")) == (0o755, 0o600)  # the user's folder


def test_private_paths_ignore_a_permissive_or_a_strict_umask(tmp_path):
    previous = os.umask(0o000)
    try:
        assert _mode(private_file(tmp_path / "open.db")) == 0o600
        assert _mode(private_dir(tmp_path / "open")) == 0o700
    finally:
        os.umask(0o277)  # even an owner-write-less umask must leave a usable store
    try:
        assert _mode(private_file(tmp_path / "strict.db")) == 0o600
        assert _mode(private_dir(tmp_path / "strict")) == 0o700
    finally:
        os.umask(previous)


def test_tightening_keeps_the_owners_bits_and_the_content(tmp_path):
    path = tmp_path / "warehouse.db"
    path.write_text("rows")
    path.chmod(0o644)
    assert _mode(private_file(path)) == 0o600 and path.read_text() == "rows"
    path.chmod(0o400)
    assert _mode(private_file(path)) == 0o400  # nothing to take away: left as it is


def test_the_emulators_state_folders_are_created_private(tmp_path, usual_umask):
    """Run first, the emulator creates GTM_HOME and its state folder (which holds its keys)."""
    from gtm_pipeline.emulator.tls import create_tls_files

    state = tmp_path / "home" / "emulator"
    create_tls_files(state)
    assert _mode(tmp_path / "home") == _mode(state) == 0o700


def test_a_folder_that_cannot_be_tightened_is_reported_not_fatal(tmp_path, monkeypatch, caplog):
    """Another user's folder (a shared GTM_HOME): a warning naming it, no traceback."""
    from gtm_pipeline.private_files import tighten

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)

    def refused(self, mode):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(Path, "chmod", refused)
    tighten(shared, 0o700)
    assert "could not make" in caplog.text and str(shared) in caplog.text
