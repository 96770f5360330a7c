"""The signed OAuth state: issued here, fresh, untouched; everything else is a StateError."""

from __future__ import annotations

import base64
import hashlib
import hmac
import pickle
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from gtm_pipeline.salesforce.oauth_state import (
    MAX_STATE_LENGTH,
    StateError,
    StateSigner,
    VerifiedState,
)
from gtm_pipeline.store.connections import OAuthStateRow, consume_oauth_state, insert_oauth_state
from gtm_pipeline.store.tables import connector_tokens, connectors, oauth_states

STATE_SECRET = "s" * 16 + "0123456789abcdef0123456789"
OTHER_SECRET = "o" * 40
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def signer(clock: Clock) -> StateSigner:
    return StateSigner(STATE_SECRET, clock=clock)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _forge(payload: bytes, secret: str = STATE_SECRET) -> str:
    """A state signed the way the signer signs, for payloads the signer would never issue."""
    mac = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


# --- the good path ---------------------------------------------------------------------------


def test_issue_then_verify(signer: StateSigner) -> None:
    state, issued = signer.issue("acme", "salesforce")
    verified = signer.verify(state)
    assert verified == issued
    assert (verified.tenant_id, verified.connector_id) == ("acme", "salesforce")
    assert verified.issued_at == T0
    assert len(verified.nonce) >= 32
    assert state.isascii() and len(state) <= MAX_STATE_LENGTH
    assert all(c.isalnum() or c in "-_." for c in state)  # safe in a URL without escaping


def test_the_mac_covers_a_payload_starting_with_tenant_and_connector(signer: StateSigner) -> None:
    state, issued = signer.issue("acme", "salesforce")
    encoded_payload, _, encoded_mac = state.partition(".")
    payload = _unb64(encoded_payload)
    assert payload.startswith(b"acme:salesforce\n")
    assert issued.nonce.encode() in payload
    assert _unb64(encoded_mac) == hmac.new(STATE_SECRET.encode(), payload, hashlib.sha256).digest()


def test_every_state_is_unique(signer: StateSigner) -> None:
    issued = [signer.issue("acme", "salesforce") for _ in range(100)]
    assert len({state for state, _ in issued}) == 100
    assert len({v.nonce for _, v in issued}) == 100


def test_unicode_ids_round_trip(signer: StateSigner) -> None:
    state, _ = signer.issue("tënant-世界", "salesforce")
    assert state.isascii()
    assert signer.verify(state).tenant_id == "tënant-世界"


def test_still_valid_at_the_end_of_its_lifetime(signer: StateSigner, clock: Clock) -> None:
    state, _ = signer.issue("acme", "salesforce")
    clock.now = T0 + 600
    assert signer.verify(state).tenant_id == "acme"


# --- refusals --------------------------------------------------------------------------------


def test_expired(signer: StateSigner, clock: Clock) -> None:
    state, _ = signer.issue("acme", "salesforce")
    clock.now = T0 + 600.01
    with pytest.raises(StateError, match="expired"):
        signer.verify(state)


def test_custom_ttl(clock: Clock) -> None:
    short = StateSigner(STATE_SECRET, ttl_seconds=5, clock=clock)
    state, _ = short.issue("acme", "salesforce")
    clock.now = T0 + 5.5
    with pytest.raises(StateError, match="expired"):
        short.verify(state)


def test_from_the_future(signer: StateSigner, clock: Clock) -> None:
    clock.now = T0 + 3600
    state, _ = signer.issue("acme", "salesforce")
    clock.now = T0
    with pytest.raises(StateError, match="not valid yet"):
        signer.verify(state)


def test_wrong_secret(signer: StateSigner, clock: Clock) -> None:
    state, _ = signer.issue("acme", "salesforce")
    with pytest.raises(StateError, match="altered or is not ours"):
        StateSigner(OTHER_SECRET, clock=clock).verify(state)


@pytest.mark.parametrize("part", ["tenant", "connector", "issued_at", "nonce"])
def test_tampered_payload_parts(signer: StateSigner, part: str) -> None:
    state, issued = signer.issue("acme", "salesforce")
    payload = _unb64(state.partition(".")[0]).decode()
    replacements = {
        "tenant": ("acme:", "evil:"),
        "connector": (":salesforce", ":salesforcf"),
        "issued_at": (str(int(T0 * 1000)), str(int(T0 * 1000) + 1)),
        "nonce": (issued.nonce, issued.nonce[:-1] + ("A" if issued.nonce[-1] != "A" else "B")),
    }
    old, new = replacements[part]
    assert old in payload
    tampered = f"{_b64(payload.replace(old, new).encode())}.{state.partition('.')[2]}"
    with pytest.raises(StateError, match="altered or is not ours"):
        signer.verify(tampered)


def test_tampered_signature(signer: StateSigner) -> None:
    state, _ = signer.issue("acme", "salesforce")
    encoded_payload, _, encoded_mac = state.partition(".")
    mac = bytearray(_unb64(encoded_mac))
    mac[0] ^= 0x80
    with pytest.raises(StateError):
        signer.verify(f"{encoded_payload}.{_b64(bytes(mac))}")


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_single_character_change_is_refused(data: st.DataObject) -> None:
    signer = StateSigner(STATE_SECRET, clock=Clock())
    state, _ = signer.issue("acme", "salesforce")
    index = data.draw(st.integers(0, len(state) - 1), label="index")
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != state[index]))
    with pytest.raises(StateError):
        signer.verify(state[:index] + replacement + state[index + 1 :])


@pytest.mark.parametrize("cut", [1, 2, 10, 43, 44])
def test_truncated(signer: StateSigner, cut: int) -> None:
    state, _ = signer.issue("acme", "salesforce")
    with pytest.raises(StateError):
        signer.verify(state[:-cut])
    with pytest.raises(StateError):
        signer.verify(state[cut:])


def test_non_ascii(signer: StateSigner) -> None:
    state, _ = signer.issue("acme", "salesforce")
    with pytest.raises(StateError, match="malformed"):
        signer.verify(state[:-1] + "é")
    with pytest.raises(StateError, match="malformed"):
        signer.verify("ｓｔａｔｅ.ｍａｃ")


def test_oversized(signer: StateSigner) -> None:
    payload = b"acme:salesforce\n" + str(int(T0 * 1000)).encode() + b"\n" + b"n" * 800
    forged = _forge(payload)  # validly signed, still refused for its size
    assert len(forged) > MAX_STATE_LENGTH
    with pytest.raises(StateError, match="too long"):
        signer.verify(forged)
    with pytest.raises(StateError, match="too long"):
        signer.verify("A" * 100_000)


@pytest.mark.parametrize("empty", ["", None, 42, b"state.mac"])
def test_empty_or_not_a_string(signer: StateSigner, empty: object) -> None:
    with pytest.raises(StateError):
        signer.verify(empty)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "malformed",
    ["no-dot", ".", "abc.", ".abc", "a.b.c", "!!!.###", "YWJj.YWJj=", "YWJj.Y"],
)
def test_malformed(signer: StateSigner, malformed: str) -> None:
    with pytest.raises(StateError):
        signer.verify(malformed)


@pytest.mark.parametrize(
    "payload",
    [
        b"acme-salesforce\n1800000000000\nnonce",  # no colon
        b"acme:salesforce\n1800000000000",  # no nonce
        b"acme:salesforce\nsoon\nnonce",  # not a time
        b"acme:salesforce\n1800000000000\nnonce\nextra",
        b":salesforce\n1800000000000\nnonce",
        b"\xff\xfe:salesforce\n1800000000000\nnonce",  # not UTF-8
    ],
)
def test_signed_but_malformed_payloads(signer: StateSigner, payload: bytes) -> None:
    """Only a holder of the secret could produce these; they are still refused, not parsed."""
    with pytest.raises(StateError, match="malformed"):
        signer.verify(_forge(payload))


def test_messages_never_echo_the_state_or_the_secret(signer: StateSigner, clock: Clock) -> None:
    state, _ = signer.issue("acme", "salesforce")
    attempts = [state[:-1] + "x", state + "A", state[:20]]
    clock.now = T0 + 10_000
    attempts.append(state)
    for attempt in attempts:
        with pytest.raises(StateError) as raised:
            signer.verify(attempt)
        message = str(raised.value)
        assert STATE_SECRET not in message
        assert state.partition(".")[0][:16] not in message
        assert "start the connection again" in message


# --- construction ----------------------------------------------------------------------------


def test_short_or_missing_secret_is_refused() -> None:
    for bad in ["", "short", "x" * 31]:
        with pytest.raises(ValueError, match="at least 32 characters") as raised:
            StateSigner(bad)
        assert not bad or bad not in str(raised.value)


def test_bad_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        StateSigner(STATE_SECRET, ttl_seconds=0)


def test_bad_ids_are_refused_at_issue(signer: StateSigner) -> None:
    for tenant, connector in [
        ("", "sf"),
        ("acme", ""),
        ("a:b", "sf"),
        ("acme", "s:f"),
        ("a\n", "sf"),
    ]:
        with pytest.raises(ValueError):
            signer.issue(tenant, connector)


def test_no_secret_in_repr_or_pickle(signer: StateSigner) -> None:
    assert STATE_SECRET not in repr(signer)
    with pytest.raises(TypeError):
        pickle.dumps(signer)


def test_verified_state_is_immutable(signer: StateSigner) -> None:
    _, issued = signer.issue("acme", "salesforce")
    assert isinstance(issued, VerifiedState)
    with pytest.raises(AttributeError):
        issued.tenant_id = "other"  # type: ignore[misc]


# --- with the store: a refused state stores nothing, a replay gets nothing -------------------


def _callback(engine: sa.Engine, signer: StateSigner, state: str) -> OAuthStateRow | None:
    """What a callback does with a state: verify it, then consume its nonce exactly once."""
    verified = signer.verify(state)
    with engine.begin() as conn:
        return consume_oauth_state(conn, verified.nonce, datetime.fromtimestamp(T0 + 1, tz=UTC))


def _snapshot(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        return [
            conn.execute(sa.select(table)).fetchall()
            for table in (oauth_states, connectors, connector_tokens)
        ]


def test_bad_states_leave_the_store_untouched_and_replays_get_nothing(
    sqlite_engine: sa.Engine, signer: StateSigner, clock: Clock
) -> None:
    state, issued = signer.issue("acme", "salesforce")
    at = datetime.fromtimestamp(issued.issued_at, tz=UTC)
    with sqlite_engine.begin() as conn:
        insert_oauth_state(
            conn,
            OAuthStateRow(
                nonce=issued.nonce,
                tenant_id="acme",
                connector_id="salesforce",
                code_verifier_ct="sealed-verifier",
                redirect_uri="http://127.0.0.1:8765/cb",
                issued_at=at,
                expires_at=at + timedelta(seconds=600),
            ),
        )
    before = _snapshot(sqlite_engine)
    bad_states = [
        "",
        state[:-5],
        state + "é",
        "A" * 2000,
        state.replace(state[3], "A" if state[3] != "A" else "B", 1),
        StateSigner(OTHER_SECRET, clock=clock).issue("acme", "salesforce")[0],
    ]
    for bad in bad_states:
        with pytest.raises(StateError):
            _callback(sqlite_engine, signer, bad)
    assert _snapshot(sqlite_engine) == before

    first = _callback(sqlite_engine, signer, state)
    assert first is not None and first.nonce == issued.nonce
    assert _callback(sqlite_engine, signer, state) is None  # replayed
