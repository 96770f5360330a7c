"""Attacks on the OAuth callback: tampered, truncated, foreign-key, replayed and swapped states,
and a genuine authorize link forwarded to someone else's browser.

Each attack goes through the real pieces: a state issued by the app's flow (nonce and PKCE
verifier stored), the emulator's authorize step, then the callback, on SQLite and PostgreSQL.
A refusal must be a 400 (403 for a callback from the wrong browser or operator, or a refused
outcome), store nothing and never reach the token endpoint.

What other folders already cover is listed in the table of `security/__init__.py`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading

import sqlalchemy as sa

from gtm_pipeline.store.connections import get_connector, load_token_row
from gtm_pipeline.store.tables import connector_tokens
from gtm_pipeline_tests.security.attacks import attempt
from gtm_pipeline_tests.support.connect import BINDING, follow_authorize
from gtm_pipeline_tests.support.security import snapshot
from gtm_pipeline_tests.web.connecting import approved_callback

CALLBACK = "/api/connectors/salesforce/callback"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token_calls(emulator) -> int:
    return emulator.control.stats()["calls"].get("token", 0)


def _pending_callback(flow, emulator, tenant: str = "acme") -> dict[str, str]:
    """The callback parameters of a flow the app started (nonce and verifier stored)."""
    return follow_authorize(emulator, flow.start(tenant, "salesforce", BINDING))


def test_every_byte_of_the_state_flipped_is_refused_and_stores_nothing(
    flow, emulator, store_engine
):
    params = _pending_callback(flow, emulator)
    payload_text, _, mac_text = params["state"].partition(".")
    payload, mac = _unb64(payload_text), _unb64(mac_text)
    before, calls = snapshot(store_engine), _token_calls(emulator)
    for part, raw in (("payload", payload), ("mac", mac)):
        for index in range(len(raw)):
            for mask in (0x01, 0x80):
                flipped = bytearray(raw)
                flipped[index] ^= mask
                pieces = {"payload": payload, "mac": mac, part: bytes(flipped)}
                state = f"{_b64(pieces['payload'])}.{_b64(pieces['mac'])}"
                with attempt("oauth state: byte flipped"):
                    outcome = flow.finish({**params, "state": state}, BINDING)
                    assert not outcome.ok and outcome.http_status == 400, (part, index, mask)
    with attempt("oauth state: byte flipped"):
        assert snapshot(store_engine) == before
        assert _token_calls(emulator) == calls
    assert flow.finish(
        params, BINDING
    ).ok  # the untouched state still works: the flips were refused


def test_every_truncation_and_extension_is_refused(flow, emulator, store_engine):
    params = _pending_callback(flow, emulator)
    state = params["state"]
    before, calls = snapshot(store_engine), _token_calls(emulator)
    variants = [state[:cut] for cut in range(len(state))]
    variants += [state[cut:] for cut in range(1, len(state))]
    variants += [state + extra for extra in ("A", "=", "==", ".", ".x", "\n", " ")]
    variants += [state.replace(".", ".."), state.replace(".", ""), state.swapcase()]
    variants += [" " + state, state.replace("-", "+").replace("_", "/")]
    for variant in variants:
        if variant == state:
            continue
        with attempt("oauth state: truncated or extended"):
            outcome = flow.finish({**params, "state": variant}, BINDING)
            assert not outcome.ok and outcome.http_status == 400, variant
    with attempt("oauth state: truncated or extended"):
        assert snapshot(store_engine) == before and _token_calls(emulator) == calls
    assert flow.finish(params, BINDING).ok


def test_a_state_signed_with_another_key_is_refused_though_its_nonce_is_pending(
    flow, emulator, store_engine
):
    params = _pending_callback(flow, emulator)
    payload_text = params["state"].partition(".")[0]
    payload = _unb64(payload_text)
    before = snapshot(store_engine)
    for other_key in (secrets.token_urlsafe(32), "", "x" * 32):
        forged_mac = hmac.new(other_key.encode(), payload, hashlib.sha256).digest()
        for state in (
            f"{payload_text}.{_b64(forged_mac)}",
            f"{payload_text}.{_b64(forged_mac[:16])}",
        ):
            with attempt("oauth state: other key"):
                outcome = flow.finish({**params, "state": state}, BINDING)
                assert not outcome.ok and outcome.http_status == 400
    with attempt("oauth state: other key"):
        assert snapshot(store_engine) == before
    assert flow.finish(params, BINDING).ok  # the real flow was not consumed by the forgeries


def test_every_character_of_the_state_changed_at_the_web_callback_is_a_400(
    web, make_operator, emulator, store_engine
):
    browser = web.login(make_operator())  # the browser that started it: it holds the cookie
    params = approved_callback(browser, emulator)
    state = params["state"]
    before, calls = snapshot(store_engine), _token_calls(emulator)
    for index, char in enumerate(state):
        replacement = "A" if char != "A" else "B"
        tampered = state[:index] + replacement + state[index + 1 :]
        with attempt("oauth state: web callback tampered"):
            answer = browser.get(CALLBACK, params={**params, "state": tampered})
            assert answer.status_code == 400, index
            assert answer.headers["Cache-Control"] == "no-store"
            assert tampered not in answer.text and params["code"] not in answer.text
    with attempt("oauth state: web callback tampered"):
        assert snapshot(store_engine) == before and _token_calls(emulator) == calls
    assert browser.get(CALLBACK, params=params).status_code == 200


def test_concurrent_replays_connect_once(web, make_operator, emulator, store_engine):
    """The same callback fired by eight copies of the starting browser at once: the nonce is
    taken exactly once."""
    starter = web.login(make_operator())
    params = approved_callback(starter, emulator)
    calls = _token_calls(emulator)
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def fire() -> None:
        browser = web.client(html=True)
        browser.cookies.update(starter.cookies)
        barrier.wait()
        statuses.append(browser.get(CALLBACK, params=params).status_code)

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with attempt("oauth state: concurrent replay"):
        assert sorted(statuses) == [200] + [400] * 7
        assert _token_calls(emulator) == calls + 1  # one code exchange, not eight
    with store_engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(connector_tokens))
        assert count.scalar_one() == 1


def test_a_state_of_one_tenant_with_another_tenants_code_connects_neither(
    flow, emulator, store_engine
):
    """Code swap: tenant A's state carried back with the code Salesforce issued for B's flow."""
    for_acme = _pending_callback(flow, emulator, "acme")
    for_globex = _pending_callback(flow, emulator, "globex")
    with attempt("oauth state: cross-tenant code swap"):
        outcome = flow.finish({**for_acme, "code": for_globex["code"]}, BINDING)
        assert not outcome.ok  # acme's PKCE verifier does not fit globex's code
        with store_engine.connect() as conn:
            assert load_token_row(conn, "acme") is None
            connector = get_connector(conn, "acme")
            assert connector is None or connector.status != "connected"
    with attempt("oauth state: cross-tenant state reuse"):
        # acme's state is spent: reusing it, now with acme's own code, is a replay.
        again = flow.finish(for_acme, BINDING)
        assert not again.ok and again.http_status == 400
        with store_engine.connect() as conn:
            assert load_token_row(conn, "acme") is None


def test_a_state_issued_for_one_tenant_never_stores_tokens_under_another(
    flow, emulator, store_engine
):
    """globex's state is valid; whatever else the callback carries, only globex is connected."""
    for_globex = _pending_callback(flow, emulator, "globex")
    with attempt("oauth state: cross-tenant state reuse"):
        outcome = flow.finish({**for_globex, "tenant": "acme", "tenant_id": "acme"}, BINDING)
        assert outcome.ok and outcome.tenant_id == "globex"
        with store_engine.connect() as conn:
            assert load_token_row(conn, "acme") is None
            assert load_token_row(conn, "globex") is not None


def test_a_forwarded_authorize_link_connects_nothing(web, make_operator, emulator, store_engine):
    """The issue's attack over HTTP: acme's operator hands the link for acme to someone else,
    who approves it in their own browser; nothing of theirs may land on acme."""
    attacker = web.login(make_operator("acme", label="acme ops"))
    victims = {
        "a stranger": lambda: web.client(html=True),
        "another operator with a flow of their own": lambda: _with_own_flow(
            web.login(make_operator("globex", label="globex ops")), emulator
        ),
        "a browser with a forged binding cookie": lambda: _with_cookie(
            web.client(html=True), attacker, secrets.token_urlsafe(32)
        ),
    }
    for name, victim in victims.items():
        with attempt("oauth binding: forwarded link"):
            params = approved_callback(attacker, emulator, "acme")  # approved by the victim
            browser, calls = victim(), _token_calls(emulator)
            answer = browser.get(CALLBACK, params=params)
            assert answer.status_code == 403, name
            assert "started in another browser" in answer.text, name
            assert _token_calls(emulator) == calls, name
            with store_engine.connect() as conn:
                assert get_connector(conn, "acme") is None, name
                assert load_token_row(conn, "acme") is None, name


def _with_own_flow(browser, emulator):
    approved_callback(browser, emulator, "globex")  # leaves globex's binding cookie behind
    return browser


def _with_cookie(browser, source, value: str):
    """`browser` holding a binding cookie named and scoped like `source`'s, with `value`."""
    [cookie] = [c for c in source.cookies if "binding" in c.name]
    browser.cookies.set(cookie.name, value, domain=cookie.domain, path=cookie.path)
    return browser
