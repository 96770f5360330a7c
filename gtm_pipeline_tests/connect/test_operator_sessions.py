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
