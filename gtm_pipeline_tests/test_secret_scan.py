"""The suite-wide secret scan finds secrets (it also runs for real at the end of every session)."""

from __future__ import annotations

from gtm_pipeline_tests import secret_scan


def test_scan_finds_remembered_secrets_and_token_shapes(tmp_path, monkeypatch):
    log = tmp_path / "suite.log"
    secret = "k3Y-9fQz" * 5
    log.write_text(
        "INFO x: connected with 00DRO0000001TJP!ARabcdefghijklmnopqrstuvwxyz0123456789ABCDEF\n"
        "DEBUG y: refresh 5Aepabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH\n"
        f"DEBUG z: key {secret}\n"
    )
    monkeypatch.setattr(secret_scan, "_remembered", {secret: "encryption key"})
    lines, found = secret_scan._scan(log)
    assert lines == 3
    assert found == {"access token": 1, "refresh token": 1, "encryption key": 1}


def test_scan_of_a_clean_log_finds_nothing(tmp_path, monkeypatch):
    log = tmp_path / "suite.log"
    log.write_text("INFO x: synced 2000 contacts for tenant acme\n")
    monkeypatch.setattr(secret_scan, "_remembered", {"z" * 40: "state secret"})
    assert secret_scan._scan(log) == (1, {})
