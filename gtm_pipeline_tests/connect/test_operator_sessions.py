"""Logging out moves the credential's `sessions_valid_after`, on SQLite and PostgreSQL alike.

The web tests (SQLite only) show a copied cookie refused after logout; this pins the store side:
the moment round-trips through both databases at microsecond precision, so a session signed just
before a logout is refused and one signed at or after it is not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from gtm_pipeline.store.connections import (
    create_operator,
    end_sessions,
    find_operator,
    operator_token_hash,
)

LOGOUT = datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=UTC)


def test_sessions_signed_before_a_logout_are_refused(store_engine: sa.Engine):
    token_hash = operator_token_hash("gtmop_sessions-test")
    with store_engine.begin() as conn:
        row = create_operator(conn, token_hash=token_hash, tenant_id=None, label="ops")
    assert row.accepts_session_issued_at(LOGOUT - timedelta(days=1))  # never logged out

    with store_engine.begin() as conn:
        assert end_sessions(conn, row.credential_id, LOGOUT)
        assert not end_sessions(conn, "op_nobody", LOGOUT)
    with store_engine.connect() as conn:
        stored = find_operator(conn, token_hash)

    assert stored is not None and stored.sessions_valid_after == LOGOUT
    assert not stored.accepts_session_issued_at(LOGOUT - timedelta(microseconds=1))
    assert stored.accepts_session_issued_at(LOGOUT)
    assert stored.accepts_session_issued_at(LOGOUT + timedelta(seconds=1))
    assert stored.revoked_at is None  # the credential itself still works


def test_the_session_logging_out_ends_even_when_it_claims_a_later_time(store_engine: sa.Engine):
    """A session "issued" ahead of the server's clock (skew the codec accepts, or another app
    instance's clock) is not left alive by a logout stamped with this server's `now`."""
    from gtm_pipeline.web.auth import end_browser_sessions, session_operator
    from gtm_pipeline.web.session import SessionData

    token_hash = operator_token_hash("gtmop_skewed-session")
    with store_engine.begin() as conn:
        create_operator(conn, token_hash=token_hash, tenant_id=None, label="ops")
    now = LOGOUT.timestamp()
    ahead = SessionData(csrf="c", issued_at=now + 30, operator_hash=token_hash)
    assert session_operator(store_engine, ahead) is not None

    end_browser_sessions(store_engine, ahead, now)
    assert session_operator(store_engine, ahead) is None
