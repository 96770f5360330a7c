"""Connector, token, OAuth-state and operator repositories, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from gtm_pipeline.store import current_revision, head_revision, upgrade
from gtm_pipeline.store.connections import (
    ConnectorRow,
    OAuthStateRow,
    OperatorRow,
    TokenRow,
    UnknownTenantError,
    consume_oauth_state,
    create_operator,
    delete_expired_oauth_states,
    delete_token_row,
    find_operator,
    get_connector,
    insert_oauth_state,
    list_connectors,
    list_operators,
    load_token_row,
    operator_token_hash,
    revoke_operator,
    save_token_row,
    set_connector_status,
    upsert_connector,
)
from gtm_pipeline.store.migrate import alembic_config
from gtm_pipeline.store.tables import connectors as connectors_table
from gtm_pipeline_tests.support.store import T0

SF = "salesforce"


def _register(conn: sa.Connection, tenant_id: str, **overrides) -> ConnectorRow:
    values = {
        "tenant_id": tenant_id,
        "connector_id": SF,
        "instance_url": f"https://{tenant_id}.my.salesforce.com",
        "org_id": "00D000000000001AAA",
        "status": "connected",
        "at": T0,
    }
    values.update(overrides)
    return upsert_connector(conn, **values)


def _token_row(tenant_id: str, access: str = "ct-access", **overrides) -> TokenRow:
    values = {
        "tenant_id": tenant_id,
        "connector_id": SF,
        "access_token_ct": access,
        "refresh_token_ct": "ct-refresh",
        "issued_at": T0,
        "key_id": "abc123def456",
        "instance_url": f"https://{tenant_id}.my.salesforce.com",
    }
    values.update(overrides)
    return TokenRow(**values)


def _state_row(nonce: str, tenant_id: str = "acme", minutes: int = 10) -> OAuthStateRow:
    return OAuthStateRow(
        nonce=nonce,
        tenant_id=tenant_id,
        connector_id=SF,
        code_verifier_ct="ct-verifier",
        redirect_uri="http://127.0.0.1:8765/api/connectors/salesforce/callback",
        issued_at=T0,
        expires_at=T0 + timedelta(minutes=minutes),
    )


# --- connectors ------------------------------------------------------------------------------


def test_register_and_read_back(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        written = _register(conn, "acme")
    with engine.connect() as conn:
        read = get_connector(conn, "acme")
    assert read == written
    assert read.status == "connected" and read.connected_at == T0 and read.updated_at == T0
    assert read.instance_url == "https://acme.my.salesforce.com"


def test_many_tenants_share_one_connector_id(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for tenant in ("acme", "globex", "initech"):
            _register(conn, tenant)
    with engine.connect() as conn:
        rows = list_connectors(conn)
    assert [(r.tenant_id, r.connector_id) for r in rows] == [
        ("acme", SF),
        ("globex", SF),
        ("initech", SF),
    ]


def test_update_keeps_what_it_was_not_told(engine: sa.Engine) -> None:
    later = T0 + timedelta(hours=1)
    with engine.begin() as conn:
        _register(conn, "acme")
        row = _register(
            conn,
            "acme",
            instance_url=None,
            org_id=None,
            status="failed",
            status_detail="Salesforce said the user denied access.",
            at=later,
        )
    assert row.status == "failed"
    assert row.status_detail == "Salesforce said the user denied access."
    assert row.instance_url == "https://acme.my.salesforce.com"  # kept
    assert row.org_id == "00D000000000001AAA"  # kept
    assert row.connected_at == T0  # "connected since" does not move on failure
    assert row.updated_at == later


def test_a_first_attempt_can_fail_before_any_connection(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        row = _register(
            conn, "acme", instance_url=None, org_id=None, status="failed", status_detail="denied"
        )
    assert (row.status, row.connected_at, row.instance_url) == ("failed", None, None)


def test_set_connector_status(engine: sa.Engine) -> None:
    later = T0 + timedelta(minutes=5)
    with engine.begin() as conn:
        _register(conn, "acme")
        row = set_connector_status(
            conn, "acme", "reconnect_needed", "The refresh token was revoked.", at=later
        )
    assert (row.status, row.status_detail, row.updated_at) == (
        "reconnect_needed",
        "The refresh token was revoked.",
        later,
    )
    assert row.connected_at == T0
    with engine.begin() as conn:
        again = set_connector_status(conn, "acme", "connected", at=later)
    assert again.status_detail is None and again.connected_at == later


def test_set_status_of_an_unknown_tenant(engine: sa.Engine) -> None:
    with engine.begin() as conn, pytest.raises(UnknownTenantError, match="ghost"):
        set_connector_status(conn, "ghost", "disconnected")


def test_unknown_status_is_refused_in_python_and_in_sql(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _register(conn, "acme")
        with pytest.raises(ValueError, match="connector status must be one of"):
            set_connector_status(conn, "acme", "sort-of-connected")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.update(connectors_table).values(status="sort-of-connected"))
    with engine.connect() as conn:
        assert get_connector(conn, "acme").status == "connected"


def test_list_connectors_for_some_tenants_only(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for tenant in ("acme", "globex", "initech"):
            _register(conn, tenant)
    with engine.connect() as conn:
        assert [r.tenant_id for r in list_connectors(conn, ["globex"])] == ["globex"]
        assert [r.tenant_id for r in list_connectors(conn, ("initech", "acme", "x"))] == [
            "acme",
            "initech",
        ]
        assert list_connectors(conn, []) == []
        assert get_connector(conn, "nobody") is None


# --- token rows ------------------------------------------------------------------------------


def test_token_row_round_trip_and_tenant_isolation(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _register(conn, "acme")
        _register(conn, "globex")
        save_token_row(conn, _token_row("acme", "ct-acme"))
        save_token_row(conn, _token_row("globex", "ct-globex"))
    with engine.connect() as conn:
        acme = load_token_row(conn, "acme")
        globex = load_token_row(conn, "globex")
        assert load_token_row(conn, "initech") is None
    assert acme == _token_row("acme", "ct-acme")
    assert globex.access_token_ct == "ct-globex"  # noqa: S105 - a fake ciphertext


def test_saving_replaces_the_previous_tokens(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _register(conn, "acme")
        save_token_row(conn, _token_row("acme", "first"))
        save_token_row(conn, _token_row("acme", "second", refresh_token_ct=None))
        save_token_row(conn, _token_row("acme", "third", connector_id="salesforce-sandbox"))
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM connector_tokens")).scalar_one()
        row = load_token_row(conn, "acme")
    assert count == 1
    assert (row.access_token_ct, row.connector_id) == ("third", "salesforce-sandbox")


def test_tokens_need_a_registered_connector(engine: sa.Engine) -> None:
    with engine.begin() as conn, pytest.raises(UnknownTenantError, match="register it"):
        save_token_row(conn, _token_row("ghost"))


def test_delete_token_row(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _register(conn, "acme")
        _register(conn, "globex")
        save_token_row(conn, _token_row("acme"))
        save_token_row(conn, _token_row("globex"))
        assert delete_token_row(conn, "acme") is True
        assert delete_token_row(conn, "acme") is False
    with engine.connect() as conn:
        assert load_token_row(conn, "acme") is None
        assert load_token_row(conn, "globex") is not None
        assert get_connector(conn, "acme") is not None


def test_token_row_repr_hides_the_ciphertexts() -> None:
    row = _token_row("acme", "CIPHERTEXT-ACCESS", refresh_token_ct="CIPHERTEXT-REFRESH")  # noqa: S106
    text = repr(row)
    assert "CIPHERTEXT" not in text
    assert "acme" in text and "abc123def456" in text


def test_token_row_lock_makes_a_second_locker_wait_and_see_the_first_ones_write(
    engine: sa.Engine,
) -> None:
    """Without the lock, PostgreSQL's second reader would see the old row (READ COMMITTED)."""
    with engine.begin() as conn:
        _register(conn, "acme")
        save_token_row(conn, _token_row("acme", "old"))
    holding = threading.Event()
    seen: dict[str, object] = {}

    def first() -> None:
        with engine.begin() as conn:
            load_token_row(conn, "acme", for_update=True)
            holding.set()
            time.sleep(0.6)
            save_token_row(conn, _token_row("acme", "new"))
            seen["first_committing_at"] = time.monotonic()

    def second() -> None:
        holding.wait(5)
        with engine.begin() as conn:
            row = load_token_row(conn, "acme", for_update=True)
            seen["second_got_it_at"] = time.monotonic()
            seen["second_saw"] = row.access_token_ct

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert seen["second_saw"] == "new"
    assert seen["second_got_it_at"] >= seen["first_committing_at"]


# --- OAuth states ----------------------------------------------------------------------------


def test_consume_once(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        insert_oauth_state(conn, _state_row("n1"))
    now = T0 + timedelta(minutes=1)
    with engine.begin() as conn:
        first = consume_oauth_state(conn, "n1", now)
    with engine.begin() as conn:
        second = consume_oauth_state(conn, "n1", now + timedelta(seconds=1))
    assert first == dataclasses.replace(_state_row("n1"), consumed_at=now)
    assert second is None


def test_consume_refuses_expired_and_unknown(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        insert_oauth_state(conn, _state_row("n1", minutes=10))
        assert consume_oauth_state(conn, "n1", T0 + timedelta(minutes=10)) is None
        assert consume_oauth_state(conn, "nope", T0) is None
        assert consume_oauth_state(conn, "", T0) is None
    with engine.connect() as conn:
        consumed = conn.execute(sa.text("SELECT consumed_at FROM oauth_states")).scalar_one()
    assert consumed is None


def test_a_rolled_back_consume_leaves_the_state_usable(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        insert_oauth_state(conn, _state_row("n1"))
    with pytest.raises(RuntimeError), engine.begin() as conn:
        assert consume_oauth_state(conn, "n1", T0) is not None
        raise RuntimeError("the exchange failed")
    with engine.begin() as conn:
        assert consume_oauth_state(conn, "n1", T0) is not None


def test_concurrent_consumers_one_wins(engine: sa.Engine) -> None:
    rounds = 8
    with engine.begin() as conn:
        for i in range(rounds):
            insert_oauth_state(conn, _state_row(f"race-{i}"))
    for i in range(rounds):
        barrier = threading.Barrier(2)
        results: list[object] = []

        def consume(nonce: str, barrier: threading.Barrier, results: list[object]) -> None:
            barrier.wait(5)
            with engine.begin() as conn:
                row = consume_oauth_state(conn, nonce, T0 + timedelta(seconds=1))
                time.sleep(0.02)  # hold the transaction so the other really overlaps
            results.append(row)  # list.append is atomic under the GIL

        threads = [
            threading.Thread(target=consume, args=(f"race-{i}", barrier, results)) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        winners = [r for r in results if r is not None]
        assert len(results) == 2 and len(winners) == 1, f"round {i}: {results}"


def test_insert_oauth_state_checks_its_input(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        insert_oauth_state(conn, _state_row("n1"))
        with pytest.raises(ValueError, match="expires_at must be after"):
            insert_oauth_state(conn, _state_row("n2", minutes=0))
        with pytest.raises(ValueError, match="nonce"):
            insert_oauth_state(conn, _state_row(""))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        insert_oauth_state(conn, _state_row("n1"))


def test_delete_expired_oauth_states(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        insert_oauth_state(conn, _state_row("fresh", minutes=30))
        insert_oauth_state(conn, _state_row("stale", minutes=1))
        insert_oauth_state(conn, _state_row("used", minutes=30))
        consume_oauth_state(conn, "used", T0)
    with engine.begin() as conn:
        assert delete_expired_oauth_states(conn, T0 + timedelta(minutes=5)) == 2
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT nonce FROM oauth_states")).scalars().all()
    assert left == ["fresh"]


def test_oauth_state_row_repr_hides_the_verifier() -> None:
    assert "ct-verifier" not in repr(_state_row("n1"))


# --- operators -------------------------------------------------------------------------------


def test_operator_lookup(engine: sa.Engine) -> None:
    admin_hash = operator_token_hash("admin-bearer-token")
    tenant_hash = operator_token_hash("acme-bearer-token")
    with engine.begin() as conn:
        admin = create_operator(conn, token_hash=admin_hash, tenant_id=None, label="ops", at=T0)
        scoped = create_operator(conn, token_hash=tenant_hash, tenant_id="acme", label="acme")
    with engine.connect() as conn:
        found_admin = find_operator(conn, admin_hash)
        found_scoped = find_operator(conn, tenant_hash)
        assert find_operator(conn, operator_token_hash("guess")) is None
        assert find_operator(conn, "") is None
    assert found_admin == admin and found_admin.is_admin
    assert found_scoped == scoped and not found_scoped.is_admin
    assert found_scoped.tenant_id == "acme"
    assert admin.credential_id != scoped.credential_id


def test_revoked_operators_are_not_found(engine: sa.Engine) -> None:
    token_hash = operator_token_hash("soon-revoked")
    with engine.begin() as conn:
        row = create_operator(conn, token_hash=token_hash, tenant_id="acme", label="old")
        assert revoke_operator(conn, row.credential_id, at=T0) is True
        assert revoke_operator(conn, row.credential_id, at=T0) is False
    with engine.connect() as conn:
        assert find_operator(conn, token_hash) is None
        [listed] = list_operators(conn)
    assert listed.revoked_at == T0


def test_operator_token_hash_must_be_a_sha256_hex(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for bad in ["plain-token", "A" * 64, "0" * 63]:
            with pytest.raises(ValueError, match="SHA-256"):
                create_operator(conn, token_hash=bad, tenant_id=None, label="x")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        token_hash = operator_token_hash("same")
        create_operator(conn, token_hash=token_hash, tenant_id=None, label="a")
        create_operator(conn, token_hash=token_hash, tenant_id="acme", label="b")


def test_operator_token_hash() -> None:
    digest = operator_token_hash("bearer")
    assert digest == hashlib.sha256(b"bearer").hexdigest()
    assert digest != operator_token_hash("bearer2")
    with pytest.raises(ValueError):
        operator_token_hash("")


def test_operator_row_repr_hides_the_hash() -> None:
    digest = operator_token_hash("bearer")
    text = repr(OperatorRow("op_1", digest, None, "ops", T0))
    assert digest not in text and "op_1" in text


# --- migration 0002 with data in it ----------------------------------------------------------


def _downgrade_to_0001(engine: sa.Engine) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")


def test_migration_0002_refuses_a_downgrade_that_would_lose_tenants(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _register(conn, "acme")
        _register(conn, "globex")
    with pytest.raises(RuntimeError, match="share the connector id salesforce"):
        _downgrade_to_0001(engine)
    assert current_revision(engine) == head_revision()
    assert "oauth_states" in sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert len(list_connectors(conn)) == 2


def test_migration_0002_down_and_up_keeps_tenants_and_tokens(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _register(conn, "acme")
        _register(
            conn,
            "globex",
            connector_id="salesforce-sandbox",
            status="failed",
            status_detail="denied",
            instance_url=None,
        )
        save_token_row(conn, _token_row("acme", "ct-acme"))
        insert_oauth_state(conn, _state_row("n1"))
    _downgrade_to_0001(engine)
    inspector = sa.inspect(engine)
    assert "oauth_states" not in inspector.get_table_names()
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT tenant_id, status FROM connectors")).all())
        tokens = conn.execute(sa.text("SELECT tenant_id, access_token_ct FROM connector_tokens"))
        assert tokens.all() == [("acme", "ct-acme")]
    assert statuses == {"acme": "connected", "globex": "disconnected"}

    upgrade(engine)
    with engine.begin() as conn:
        row = load_token_row(conn, "acme")
        # Backfilled from the connector, since 0001 stored no instance URL with the tokens.
        assert row.instance_url == "https://acme.my.salesforce.com"
        assert set_connector_status(conn, "globex", "failed", "denied again").status == "failed"
