"""Pure pieces of the web app: signed sessions, CSRF comparison, ids, access-log redaction."""

from __future__ import annotations

import logging

import pytest

from gtm_pipeline.emulator.testing import ManualClock
from gtm_pipeline.web import identifiers
from gtm_pipeline.web.app import session_secret_from
from gtm_pipeline.web.auth import Operator, new_operator_token, plausible_token
from gtm_pipeline.web.csrf import csrf_matches
from gtm_pipeline.web.serving import QueryStringFilter
from gtm_pipeline.web.session import SessionCodec, SessionData

SECRET = "s" * 40


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture()
def codec(clock: ManualClock) -> SessionCodec:
    return SessionCodec(SECRET, max_age_seconds=3600, clock=clock)


def test_session_round_trips_and_login_rotates_the_csrf_token(codec, clock):
    anonymous = SessionData.anonymous(clock())
    assert codec.loads(codec.dumps(anonymous)) == anonymous
    logged_in = anonymous.logged_in("ab" * 32, clock())
    assert logged_in.csrf != anonymous.csrf
    assert codec.loads(codec.dumps(logged_in)) == logged_in


def test_tampered_foreign_and_malformed_cookies_are_no_session(codec, clock):
    value = codec.dumps(SessionData.anonymous(clock()).logged_in("ab" * 32, clock()))
    payload, signature = value.split(".")
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    other = SessionCodec("t" * 40, clock=clock)
    for bad in [
        f"{forged_payload}.{signature}",
        f"{payload}.{signature[:-1]}",
        payload,
        "",
        "x" * 5000,
        "é." + signature,
        other.dumps(SessionData.anonymous(clock())),
    ]:
        assert codec.loads(bad) is None, bad[:40]


def test_expired_and_future_sessions_are_refused(codec, clock):
    value = codec.dumps(SessionData.anonymous(clock()))
    clock.advance(3599)
    assert codec.loads(value) is not None
    clock.advance(2)
    assert codec.loads(value) is None
    future = codec.dumps(SessionData(csrf="c", issued_at=clock() + 3600))
    assert codec.loads(future) is None


def test_session_secret_is_checked_and_never_shown(clock):
    with pytest.raises(ValueError, match="at least 32"):
        SessionCodec("short")
    assert SECRET not in repr(SessionCodec(SECRET))


def test_session_secret_is_derived_not_reused():
    derived = session_secret_from("k" * 40)
    assert derived != "k" * 40 and len(derived) == 64
    assert derived == session_secret_from("k" * 40)
    assert derived != session_secret_from("j" * 40)


@pytest.mark.parametrize(
    ("expected", "presented", "ok"),
    [
        ("abc", "abc", True),
        ("abc", "abd", False),
        ("abc", "", False),
        ("abc", None, False),
        ("abc", ["abc"], False),
        ("", "", False),
        (None, "abc", False),
        ("abc", "ábc", False),
        ("abc", "a" * 10_000, False),
    ],
)
def test_csrf_matches_only_the_exact_token(expected, presented, ok):
    assert csrf_matches(expected, presented) is ok


@pytest.mark.parametrize("value", ["acme", "Acme-1", "a.b_c", "0", "x" * 64, "  acme  "])
def test_tenant_ids_accepted(value):
    assert identifiers.tenant_id(value) == value.strip()


@pytest.mark.parametrize(
    "value", ["", " ", "-acme", "a:b", "a b", "<script>", "x" * 65, "ténant", None, 7]
)
def test_tenant_ids_refused_with_a_clear_message(value):
    with pytest.raises(identifiers.InvalidIdentifier, match="1 to 64 letters"):
        identifiers.tenant_id(value)


def test_connector_id_defaults_to_salesforce_and_refuses_odd_ids():
    assert identifiers.connector_id("") == "salesforce"
    assert identifiers.connector_id(None) == "salesforce"
    assert identifiers.connector_id("salesforce-eu") == "salesforce-eu"
    with pytest.raises(identifiers.InvalidIdentifier):
        identifiers.connector_id("Sales:force")


def test_operator_tokens_are_random_and_scope_is_enforced():
    first, second = new_operator_token(), new_operator_token()
    assert first != second and first.startswith("gtmop_") and len(first) > 40
    assert plausible_token(first) and not plausible_token("") and not plausible_token("x" * 300)
    admin = Operator("op_1", None, "root")
    scoped = Operator("op_2", "acme", "acme ops")
    assert admin.may_access("anything") and admin.visible_tenant_ids() is None
    assert scoped.may_access("acme") and not scoped.may_access("globex")
    assert scoped.visible_tenant_ids() == ["acme"]


def test_access_log_lines_lose_their_query_string():
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5",
            "GET",
            "/api/connectors/salesforce/callback?code=SECRET&state=S",
            "1.1",
            200,
        ),
        None,
    )
    assert QueryStringFilter().filter(record)
    line = record.getMessage()
    assert "SECRET" not in line and "/api/connectors/salesforce/callback HTTP/1.1" in line
