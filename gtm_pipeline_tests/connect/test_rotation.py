"""Key rotation: all or nothing, verified before commit, survives a kill, and its command."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gtm_pipeline.cli.operator import rotate_key_command
from gtm_pipeline.connect.rotation import RotationError, rotate_key, rotate_key_report
from gtm_pipeline.connect.vault import StoredTokens, TokenVault
from gtm_pipeline.salesforce.crypto import TokenCipher, TokenDecryptError
from gtm_pipeline.store.connections import (
    OAuthStateRow,
    insert_oauth_state,
    list_connectors,
    upsert_connector,
)
from gtm_pipeline.store.tables import connector_tokens, oauth_states

ISSUED = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
SF = "salesforce"
TENANTS = ("acme", "globex", "initech", "umbrella")
STATE_NONCES = ("nonce-a", "nonce-b")


class Keys:
    def __init__(self) -> None:
        self.old_hex = secrets.token_hex(32)
        self.new_hex = secrets.token_hex(32)
        self.old = TokenCipher(self.old_hex)
        self.new = TokenCipher(self.new_hex)


@pytest.fixture()
def keys() -> Keys:
    return Keys()


@pytest.fixture()
def seeded(store_engine: sa.Engine, keys: Keys) -> dict[str, StoredTokens]:
    """Four connected tenants (one without a refresh token) and two pending OAuth states."""
    vault = TokenVault(keys.old)
    saved: dict[str, StoredTokens] = {}
    with store_engine.begin() as conn:
        for i, tenant in enumerate(TENANTS):
            upsert_connector(
                conn,
                tenant_id=tenant,
                connector_id=SF,
                instance_url=f"https://{tenant}.my.salesforce.com",
                org_id=None,
                status="connected",
            )
            saved[tenant] = StoredTokens(
                tenant_id=tenant,
                connector_id=SF,
                instance_url=f"https://{tenant}.my.salesforce.com",
                access_token=f"access-{tenant}-{secrets.token_urlsafe(16)}",
                refresh_token=None if i == 3 else f"refresh-{tenant}-{secrets.token_urlsafe(16)}",
                issued_at=ISSUED,
            )
            vault.save(conn, saved[tenant])
        for nonce in STATE_NONCES:
            insert_oauth_state(
                conn,
                OAuthStateRow(
                    nonce=nonce,
                    tenant_id="acme",
                    connector_id=SF,
                    code_verifier_ct=vault.encrypt_verifier(
                        f"verifier-{nonce}", tenant_id="acme", connector_id=SF, nonce=nonce
                    ),
                    redirect_uri="http://127.0.0.1:8765/cb",
                    issued_at=ISSUED,
                    expires_at=ISSUED + timedelta(minutes=10),
                ),
            )
    return saved


def _opens_under(engine: sa.Engine, cipher: TokenCipher, saved: dict[str, StoredTokens]) -> dict:
    """Per row: does it open under `cipher` (and give back exactly what was saved)?"""
    vault = TokenVault(cipher)
    result: dict[str, bool] = {}
    with engine.connect() as conn:
        for tenant, expected in saved.items():
            try:
                result[tenant] = vault.load(conn, tenant) == expected
            except TokenDecryptError:
                result[tenant] = False
        for row in conn.execute(sa.select(oauth_states)):
            state = OAuthStateRow(**row._mapping)
            try:
                result[row.nonce] = vault.decrypt_verifier(state) == f"verifier-{row.nonce}"
            except TokenDecryptError:
                result[row.nonce] = False
    return result


def _key_ids(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(connector_tokens.c.key_id)).scalars())


ALL_ROWS = len(TENANTS) + len(STATE_NONCES)


def test_rotation_moves_every_row_to_the_new_key(
    store_engine: sa.Engine, keys: Keys, seeded: dict[str, StoredTokens]
) -> None:
    assert all(_opens_under(store_engine, keys.old, seeded).values())
    report = rotate_key_report(store_engine, keys.old, keys.new)
    assert (report.token_rows, report.state_rows, report.already_rotated) == (4, 2, 0)
    assert report.rotated == ALL_ROWS and report.new_key_id == keys.new.key_id
    after_new = _opens_under(store_engine, keys.new, seeded)
    after_old = _opens_under(store_engine, keys.old, seeded)
    assert len(after_new) == ALL_ROWS and all(after_new.values())
    assert not any(after_old.values())
    assert _key_ids(store_engine) == {keys.new.key_id}
    with store_engine.connect() as conn:
        assert [c.status for c in list_connectors(conn)] == ["connected"] * 4


def test_running_it_again_changes_nothing(
    store_engine: sa.Engine, keys: Keys, seeded: dict[str, StoredTokens]
) -> None:
    assert rotate_key(store_engine, keys.old, keys.new) == ALL_ROWS
    with store_engine.connect() as conn:
        before = conn.execute(sa.select(connector_tokens)).fetchall()
    report = rotate_key_report(store_engine, keys.old, keys.new)
    assert report.rotated == 0
    assert report.already_rotated == 3 * 2 + 1 + 2  # token values + verifiers
    with store_engine.connect() as conn:
        assert conn.execute(sa.select(connector_tokens)).fetchall() == before


def test_an_empty_store_rotates_zero_rows(store_engine: sa.Engine, keys: Keys) -> None:
    assert rotate_key(store_engine, keys.old, keys.new) == 0


def test_the_same_key_twice_is_refused(store_engine: sa.Engine, keys: Keys) -> None:
    with pytest.raises(RotationError, match="same as the current key"):
        rotate_key(store_engine, keys.old, TokenCipher(keys.old_hex.upper()))


def test_a_row_no_key_opens_aborts_everything(
    store_engine: sa.Engine, keys: Keys, seeded: dict[str, StoredTokens]
) -> None:
    stranger = TokenCipher(secrets.token_hex(32))
    with store_engine.begin() as conn:
        conn.execute(
            sa.update(connector_tokens)
            .where(connector_tokens.c.tenant_id == "initech")
            .values(access_token_ct=stranger.encrypt("x", aad="initech:salesforce"))
        )
    del seeded["initech"]
    with pytest.raises(RotationError) as raised:
        rotate_key(store_engine, keys.old, keys.new)
    message = str(raised.value)
    assert "initech" in message and "nothing was changed" in message
    assert keys.old_hex not in message and keys.new_hex not in message
    assert all(_opens_under(store_engine, keys.old, seeded).values())
    assert _key_ids(store_engine) == {keys.old.key_id}


def test_a_failure_just_before_commit_rolls_everything_back(
    store_engine: sa.Engine, keys: Keys, seeded: dict[str, StoredTokens]
) -> None:
    counts: list[int] = []

    def fail(count: int) -> None:
        counts.append(count)
        raise RuntimeError("operator pressed Ctrl-C")

    with pytest.raises(RuntimeError):
        rotate_key(store_engine, keys.old, keys.new, before_commit=fail)
    assert counts == [ALL_ROWS]
    assert all(_opens_under(store_engine, keys.old, seeded).values())
    assert not any(_opens_under(store_engine, keys.new, seeded).values())


def test_a_bad_write_is_caught_by_the_verification(
    store_engine: sa.Engine, keys: Keys, seeded: dict[str, StoredTokens], monkeypatch
) -> None:
    """If what lands in the database is not what was sealed, the commit never happens."""
    import gtm_pipeline.connect.rotation as rotation

    real_write = rotation._write

    def corrupting_write(conn, rewritten, new_key_id):  # noqa: ANN001
        real_write(conn, rewritten, new_key_id)
        conn.execute(
            sa.update(connector_tokens)
            .where(connector_tokens.c.tenant_id == "globex")
            .values(access_token_ct=keys.new.encrypt("wrong", aad="globex:salesforce"))
        )

    monkeypatch.setattr(rotation, "_write", corrupting_write)
    with pytest.raises(RotationError, match="globex.*did not read back"):
        rotate_key(store_engine, keys.old, keys.new)
    assert all(_opens_under(store_engine, keys.old, seeded).values())


# --- killed before commit --------------------------------------------------------------------

ROTATE_AND_HANG = textwrap.dedent(
    """
    import os, sys, time
    from gtm_pipeline.config import Settings
    from gtm_pipeline.connect.rotation import rotate_key
    from gtm_pipeline.salesforce.crypto import TokenCipher
    from gtm_pipeline.store import make_engine

    def hang(count):
        print(f"ABOUT-TO-COMMIT {count}", flush=True)
        time.sleep(120)

    rotate_key(
        make_engine(os.environ["DATABASE_URL"]),
        TokenCipher.from_settings(Settings.from_process()),
        TokenCipher.from_settings(Settings.from_process(), variable="CONNECTOR_ENCRYPTION_KEY_NEW"),
        before_commit=hang,
    )
    print("COMMITTED", flush=True)
    """
)


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line:
        process.kill()
        raise AssertionError(f"the rotation did not reach its commit within {timeout} s")
    return line[0]


def test_killed_before_commit_leaves_the_old_key_in_charge(
    store_engine: sa.Engine, database_url: str, keys: Keys, seeded: dict[str, StoredTokens]
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CONNECTOR_ENCRYPTION_KEY": keys.old_hex,
        "CONNECTOR_ENCRYPTION_KEY_NEW": keys.new_hex,
    }
    process = subprocess.Popen(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", ROTATE_AND_HANG],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _read_line(process, 60).strip() == f"ABOUT-TO-COMMIT {ALL_ROWS}"
        if store_engine.dialect.name == "postgresql":
            # Mid-rotation, readers still see the committed (old-key) store. (On SQLite every
            # store transaction begins IMMEDIATE, so a reader would queue behind the rotation.)
            assert all(_opens_under(store_engine, keys.old, seeded).values())
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    after_old = _opens_under(store_engine, keys.old, seeded)
    assert len(after_old) == ALL_ROWS and all(after_old.values())
    assert not any(_opens_under(store_engine, keys.new, seeded).values())
    assert _key_ids(store_engine) == {keys.old.key_id}

    # The interrupted rotation left no lock behind: a normal run now succeeds.
    assert rotate_key(store_engine, keys.old, keys.new) == ALL_ROWS
    assert all(_opens_under(store_engine, keys.new, seeded).values())
    assert not any(_opens_under(store_engine, keys.old, seeded).values())


# --- the command -----------------------------------------------------------------------------


def _run(env: dict[str, str | None]) -> tuple[int, str]:
    result = CliRunner().invoke(rotate_key_command, [], env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_command_rotates_and_says_what_to_do_next(
    store_engine: sa.Engine, database_url: str, keys: Keys, seeded: dict[str, StoredTokens]
) -> None:
    code, output = _run(
        {
            "DATABASE_URL": database_url,
            "CONNECTOR_ENCRYPTION_KEY": keys.old_hex,
            "CONNECTOR_ENCRYPTION_KEY_NEW": keys.new_hex,
        }
    )
    assert code == 0, output
    assert f"Rotated {ALL_ROWS} rows to key {keys.new.key_id}" in output
    assert "4 token rows, 2 pending OAuth states" in output
    assert "set CONNECTOR_ENCRYPTION_KEY to the value of CONNECTOR_ENCRYPTION_KEY_NEW" in output
    assert keys.old_hex not in output and keys.new_hex not in output
    assert all(_opens_under(store_engine, keys.new, seeded).values())


@pytest.mark.parametrize(
    ("current", "new", "named"),
    [
        (None, "new", "CONNECTOR_ENCRYPTION_KEY is not set"),
        ("old", None, "CONNECTOR_ENCRYPTION_KEY_NEW is not set"),
        ("short", "new", "CONNECTOR_ENCRYPTION_KEY must be exactly 64 hex"),
        ("old", "g" * 64, "CONNECTOR_ENCRYPTION_KEY_NEW must be exactly 64 hex"),
        ("old", "old", "same as the current key"),
    ],
)
def test_command_refuses_bad_keys_in_one_line(
    store_engine: sa.Engine,
    database_url: str,
    keys: Keys,
    seeded: dict[str, StoredTokens],
    current: str | None,
    new: str | None,
    named: str,
) -> None:
    values = {"old": keys.old_hex, "new": keys.new_hex}
    current_value = values.get(current, current) if current else None
    new_value = values.get(new, new) if new else None
    code, output = _run(
        {
            "DATABASE_URL": database_url,
            "CONNECTOR_ENCRYPTION_KEY": current_value,
            "CONNECTOR_ENCRYPTION_KEY_NEW": new_value,
        }
    )
    assert code == 1
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and named in lines[0]
    for value in (keys.old_hex, keys.new_hex, current_value, new_value):
        if value:
            assert value not in output
    assert all(_opens_under(store_engine, keys.old, seeded).values())


def test_command_with_keys_that_do_not_match_the_store(
    store_engine: sa.Engine, database_url: str, keys: Keys, seeded: dict[str, StoredTokens]
) -> None:
    wrong = secrets.token_hex(32)
    code, output = _run(
        {
            "DATABASE_URL": database_url,
            "CONNECTOR_ENCRYPTION_KEY": wrong,
            "CONNECTOR_ENCRYPTION_KEY_NEW": keys.new_hex,
        }
    )
    assert code == 1
    assert len(output.strip().splitlines()) == 1
    assert "opens under neither" in output and "nothing was changed" in output
    assert wrong not in output and keys.new_hex not in output
    assert all(_opens_under(store_engine, keys.old, seeded).values())


def test_command_help_mentions_where_keys_come_from() -> None:
    result = CliRunner().invoke(rotate_key_command, ["--help"])
    assert result.exit_code == 0
    assert "CONNECTOR_ENCRYPTION_KEY_NEW" in result.output
