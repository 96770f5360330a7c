"""A flow finishes only for the browser and operator that started it (issue 19, item 4).

The attack: a tenant-scoped operator starts a connection for their tenant and forwards the
genuine authorize link to a user of another org, who approves it. The callback then arrives with
a valid, fresh, single-use state, but from the wrong browser; before the binding it connected the
victim's org to the sender's tenant. These tests drive the flow directly (emulator over HTTPS,
SQLite and PostgreSQL); the web callback and a real browser are covered in web/.
"""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from gtm_pipeline.connect.flow import FlowBinding
from gtm_pipeline.salesforce.oauth_state import binding_matches
from gtm_pipeline.store.connections import get_connector, load_token_row
from gtm_pipeline.store.tables import oauth_states
from gtm_pipeline_tests.support.connect import follow_authorize

TENANT = "acme"
OPERATOR = "op_acme"


def _token_calls(emulator) -> int:
    return emulator.control.stats()["calls"].get("token", 0)


def _started(flow, emulator, binding: FlowBinding) -> dict[str, str]:
    """The callback parameters of a flow started with `binding` and approved at Salesforce."""
    return follow_authorize(emulator, flow.start(TENANT, "salesforce", binding))


def _nothing_connected(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return get_connector(conn, TENANT) is None and load_token_row(conn, TENANT) is None


def test_the_store_keeps_the_nonces_hash_and_the_operator_never_the_nonce(
    flow, emulator, store_engine
):
    binding = FlowBinding.new(OPERATOR)
    flow.start(TENANT, "salesforce", binding)
    with store_engine.connect() as conn:
        [row] = conn.execute(sa.select(oauth_states)).all()
    assert row.binding_hash == hashlib.sha256(binding.nonce.encode()).hexdigest()
    assert row.started_by == OPERATOR
    assert binding.nonce not in repr(tuple(row))
    assert len(binding.nonce) >= 43  # 256 bits, base64url


def others(binding: FlowBinding) -> dict[str, FlowBinding]:
    """What a callback may present instead of the binding that started the flow."""
    return {
        "no cookie, no session": FlowBinding(None, None),
        "no cookie, same operator": FlowBinding(None, binding.operator_id),
        "another flow's cookie": FlowBinding.new(binding.operator_id),
        "the right cookie, another operator": FlowBinding(binding.nonce, "op_other"),
        "the right cookie, no session": FlowBinding(binding.nonce, None),
        "the cookie's hash instead of it": FlowBinding(
            hashlib.sha256(str(binding.nonce).encode()).hexdigest(), binding.operator_id
        ),
        "an oversized cookie": FlowBinding("A" * 5000, binding.operator_id),
    }


@pytest.mark.parametrize("case", list(others(FlowBinding.new(OPERATOR))))
def test_a_callback_from_another_browser_or_operator_connects_nothing(
    flow, emulator, store_engine, case
):
    binding = FlowBinding.new(OPERATOR)
    params = _started(flow, emulator, binding)
    calls = _token_calls(emulator)

    outcome = flow.finish(params, others(binding)[case])

    assert (outcome.ok, outcome.http_status, outcome.tenant_id) == (False, 403, None)
    assert "started in another browser or by another operator" in outcome.message
    assert _token_calls(emulator) == calls  # the victim's code was never exchanged
    assert _nothing_connected(store_engine)  # not even a "failed" row on the tenant


def test_a_refused_callback_spends_the_state(flow, emulator, store_engine):
    """Else the sender could replay the victim's callback URL from the browser that started it."""
    binding = FlowBinding.new(OPERATOR)
    params = _started(flow, emulator, binding)
    assert flow.finish(params, FlowBinding(None, None)).http_status == 403

    again = flow.finish(params, binding)

    assert not again.ok and again.http_status == 400
    assert "already used or has expired" in again.message
    assert _nothing_connected(store_engine)


def test_the_starting_browser_and_operator_connect(flow, emulator, store_engine):
    binding = FlowBinding.new(OPERATOR)
    outcome = flow.finish(_started(flow, emulator, binding), FlowBinding(binding.nonce, OPERATOR))
    assert outcome.ok and outcome.tenant_id == TENANT
    with store_engine.connect() as conn:
        assert get_connector(conn, TENANT).status == "connected"


def test_a_terminal_flow_is_finished_only_with_the_commands_own_nonce(flow, emulator):
    command = FlowBinding.new(operator_id=None)
    params = _started(flow, emulator, command)
    assert flow.finish(params, FlowBinding(command.nonce, OPERATOR)).http_status == 403
    params = _started(flow, emulator, command)
    assert flow.finish(params, command).ok


def test_a_flow_stored_without_a_binding_is_refused(flow, emulator, store_engine):
    """States pending from before the binding existed cannot prove who started them."""
    binding = FlowBinding.new(OPERATOR)
    params = _started(flow, emulator, binding)
    with store_engine.begin() as conn:
        conn.execute(sa.update(oauth_states).values(binding_hash=None, started_by=None))
    assert flow.finish(params, binding).http_status == 403
    assert _nothing_connected(store_engine)


def test_start_needs_a_nonce(flow, store_engine):
    with pytest.raises(ValueError, match="FlowBinding.new"):
        flow.start(TENANT, "salesforce", FlowBinding(None, OPERATOR))
    with store_engine.connect() as conn:
        assert conn.execute(sa.select(oauth_states)).all() == []


def test_the_nonce_stays_out_of_reprs():
    binding = FlowBinding.new(OPERATOR)
    assert binding.nonce not in repr(binding) and OPERATOR in repr(binding)


@pytest.mark.parametrize(
    "presented", [None, "", 42, "é" * 10, "A" * 257], ids=["none", "empty", "int", "utf8", "long"]
)
def test_binding_matches_refuses_what_is_not_a_nonce(presented):
    nonce = FlowBinding.new(OPERATOR).nonce
    stored = hashlib.sha256(str(nonce).encode()).hexdigest()
    assert binding_matches(stored, nonce)
    assert not binding_matches(stored, presented)
    assert not binding_matches(None, nonce)
