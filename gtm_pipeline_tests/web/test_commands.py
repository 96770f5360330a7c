"""`connect` (against the emulator, end to end), `operator create/list/revoke` and `web`."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gtm_pipeline.cli.connect import connect
from gtm_pipeline.cli.operator import operator
from gtm_pipeline.cli.web import web
from gtm_pipeline.config import Settings
from gtm_pipeline.store.connections import (
    find_operator,
    get_connector,
    list_operators,
    load_token_row,
    operator_token_hash,
)
from gtm_pipeline.web.app import app_from_settings
from gtm_pipeline.web.listener import CallbackListener
from gtm_pipeline.web.serving import BackgroundServer
from gtm_pipeline.web.session import COOKIE_NAME
from gtm_pipeline_tests.support.connect import follow_authorize
from gtm_pipeline_tests.support.web import AppClient, free_loopback_port

TOKEN_LINE = re.compile(r"^gtmop_[A-Za-z0-9_-]{40,}$", re.M)


@pytest.fixture()
def cli_env(connect_env, monkeypatch) -> dict[str, str]:
    """The emulator's environment, with the callback on a free loopback port."""
    callback = f"http://127.0.0.1:{free_loopback_port()}/api/connectors/salesforce/callback"
    monkeypatch.setenv("SALESFORCE_CALLBACK_URL", callback)
    return {**connect_env, "SALESFORCE_CALLBACK_URL": callback}


def _run(command, args: list[str]):
    return CliRunner().invoke(command, args, catch_exceptions=False)


def test_connect_auto_approve_connects_the_tenant(cli_env, emulator, store_engine):
    result = _run(connect, ["--tenant", "acme", "--auto-approve", "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert f"{emulator.info['login_url']}/services/oauth2/authorize?" in result.output
    assert "Connected: tenant acme" in result.output
    assert emulator.info["client_secret"] not in result.output
    with store_engine.connect() as conn:
        assert get_connector(conn, "acme").status == "connected"
        assert load_token_row(conn, "acme") is not None


def test_connect_exits_1_when_the_token_exchange_fails(cli_env, emulator, store_engine):
    emulator.control.add_fault(kind="status", path="^/services/oauth2/token", status=400, times=5)
    result = _run(connect, ["--tenant", "acme", "--auto-approve", "--timeout", "30"])
    assert result.exit_code == 1, result.output
    with store_engine.connect() as conn:
        connector = get_connector(conn, "acme")
    assert connector.status == "failed"
    assert connector.status_detail in result.output  # the same plain words, on screen and stored


def test_listener_waits_past_callbacks_of_no_flow_it_knows(flow, emulator):
    listener = CallbackListener(flow, "/cb")
    with BackgroundServer(listener.app) as server:
        stray = AppClient(server.base_url, html=True).get("/cb", params={"state": "forged"})
        assert stray.status_code == 400
        assert listener.wait(0.05) is None  # still waiting for its own callback
        params = follow_authorize(emulator, flow.start("acme", "salesforce", listener.binding))
        done = AppClient(server.base_url, html=True).get("/cb", params=params)
        assert AppClient(server.base_url).get("/other").status_code == 404  # one route only
    assert done.status_code == 200 and "Back to connectors" not in done.text
    outcome = listener.wait(0)
    assert outcome is not None and outcome.ok and outcome.tenant_id == "acme"


def test_connect_auto_approve_explains_a_consent_page(cli_env, emulator):
    emulator.control.configure(auto_approve=False)
    result = CliRunner().invoke(connect, ["--tenant", "acme", "--auto-approve"])
    assert result.exit_code == 1
    assert "showed a consent page" in result.output


def test_connect_gives_up_after_the_timeout(cli_env, store_engine):
    result = CliRunner().invoke(connect, ["--tenant", "acme", "--timeout", "1"])
    assert result.exit_code == 1
    assert "open this URL in a browser" in result.output
    assert "no callback arrived within 1 seconds" in result.output
    with store_engine.connect() as conn:
        assert get_connector(conn, "acme") is None


def test_connect_refuses_an_https_callback_it_cannot_serve(cli_env, monkeypatch):
    monkeypatch.setenv("SALESFORCE_CALLBACK_URL", "https://app.example.com/callback")
    result = CliRunner().invoke(connect, ["--tenant", "acme"])
    assert result.exit_code == 1
    assert "must be http://127.0.0.1:PORT" in result.output


def test_connect_explains_a_taken_port(cli_env):
    port = int(re.search(r":(\d+)/", cli_env["SALESFORCE_CALLBACK_URL"]).group(1))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = CliRunner().invoke(connect, ["--tenant", "acme", "--timeout", "1"])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "gtm-pipeline web" in result.output


def test_connect_refuses_a_bad_tenant_id(cli_env):
    result = CliRunner().invoke(connect, ["--tenant", "a:b"])
    assert result.exit_code == 2
    assert "1 to 64 letters" in result.output


@pytest.fixture()
def store_env(gtm_home, database_url, monkeypatch, store_engine) -> Iterator[sa.Engine]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    yield store_engine


def test_operator_create_prints_the_token_once_and_stores_only_its_hash(store_env):
    result = _run(operator, ["create", "--admin", "--label", "ops@example.com"])
    assert result.exit_code == 0, result.output
    (token,) = TOKEN_LINE.findall(result.output)
    with store_env.connect() as conn:
        row = find_operator(conn, operator_token_hash(token))
        stored = conn.exec_driver_sql("SELECT * FROM operator_credentials").all()
    assert row is not None and row.tenant_id is None and row.label == "ops@example.com"
    assert row.credential_id in result.output
    assert token not in repr(stored)  # only the hash is in the table

    scoped = _run(operator, ["create", "--tenant", "acme", "--label", "acme team"])
    (scoped_token,) = TOKEN_LINE.findall(scoped.output)
    assert scoped_token != token and "tenant acme" in scoped.output
    with store_env.connect() as conn:
        assert find_operator(conn, operator_token_hash(scoped_token)).tenant_id == "acme"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--label", "x"], "exactly one of --tenant TENANT or --admin"),
        (["create", "--admin", "--tenant", "acme", "--label", "x"], "exactly one of"),
        (["create", "--tenant", "a b", "--label", "x"], "1 to 64 letters"),
        (["create", "--admin", "--label", "  "], "the label must be"),
        (["create", "--admin"], "Missing option '--label'"),
    ],
)
def test_operator_create_refuses_bad_arguments(store_env, args, message):
    result = CliRunner().invoke(operator, args)
    assert result.exit_code == 2
    assert message in result.output
    with store_env.connect() as conn:
        assert list_operators(conn) == []


def test_operator_list_and_revoke(store_env):
    token = TOKEN_LINE.findall(_run(operator, ["create", "--admin", "--label", "a"]).output)[0]
    with store_env.connect() as conn:
        (row,) = list_operators(conn)
    listed = _run(operator, ["list"]).output
    assert row.credential_id in listed and "admin" in listed and "active" in listed
    assert token not in listed and row.token_hash not in listed
    assert _run(operator, ["revoke", row.credential_id]).exit_code == 0
    assert "revoked" in _run(operator, ["list"]).output
    again = CliRunner().invoke(operator, ["revoke", row.credential_id])
    assert again.exit_code == 1 and "no active operator credential" in again.output
    with store_env.connect() as conn:
        assert find_operator(conn, operator_token_hash(token)) is None


def test_app_from_env_serves_the_app_with_cookies_matching_the_callback_scheme(
    cli_env, monkeypatch
):
    with BackgroundServer(app_from_settings(Settings.from_process())) as server:
        page = AppClient(server.base_url, html=True).get("/login")
    assert page.status_code == 200
    assert "; secure" not in page.headers["set-cookie"].lower()  # http loopback callback
    monkeypatch.setenv("SALESFORCE_CALLBACK_URL", "https://app.example.com/callback")
    with BackgroundServer(app_from_settings(Settings.from_process())) as server:
        page = AppClient(server.base_url, html=True).get("/login")
    cookie = page.headers["set-cookie"].lower()
    assert cookie.startswith(f"__host-{COOKIE_NAME}=") and "; secure" in cookie


def test_web_explains_a_taken_port(cli_env):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = CliRunner().invoke(web, ["--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "127.0.0.1.nip.io", "192.0.2.10"])  # noqa: S104
def test_web_refuses_plain_http_beyond_loopback_without_insecure(cli_env, host):
    result = CliRunner().invoke(web, ["--host", host, "--port", "0"])
    assert result.exit_code == 1
    assert f"refusing to serve plain http on {host}" in result.output
    assert "--insecure" in result.output
    assert "Connectors app on" not in result.output  # nothing was started


def test_web_insecure_serves_beyond_loopback_with_a_warning(cli_env, caplog):
    with socket.socket() as squatter:  # the port is taken, so the command stops after the check
        squatter.bind(("0.0.0.0", 0))  # noqa: S104 - the address under test
        squatter.listen()
        port = squatter.getsockname()[1]
        result = CliRunner().invoke(web, ["--host", "0.0.0.0", "--port", str(port), "--insecure"])  # noqa: S104
    assert f"cannot listen on 0.0.0.0:{port}" in result.output  # it went on to listen
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("serving plain http on 0.0.0.0 (--insecure)" in w for w in warnings), warnings
