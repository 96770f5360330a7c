"""What every response carries (security headers, caching), escaping of everything shown,
and the per-tenant overview the connectors page and API are built from."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from gtm_pipeline.store import make_engine, mark_run_started, mark_run_succeeded, upgrade
from gtm_pipeline.store.connections import upsert_connector
from gtm_pipeline.web.app import create_app
from gtm_pipeline.web.headers import CONTENT_SECURITY_POLICY
from gtm_pipeline.web.overview import list_overviews, tenant_overview
from gtm_pipeline.web.serving import BackgroundServer
from gtm_pipeline_tests.support.postgres import _reset_postgres
from gtm_pipeline_tests.support.web import AppClient, csrf_from, no_org

EVIL_TENANT = '<script>alert("t")</script>'
EVIL_DETAIL = "<img src=x onerror=alert(1)> & more"
SYNCED = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)


def _connect(conn: sa.Connection, tenant: str, status: str = "connected", detail=None) -> None:
    upsert_connector(
        conn,
        tenant_id=tenant,
        connector_id="salesforce",
        instance_url=f"https://{abs(hash(tenant))}.my.salesforce.com",
        org_id="00D000000000001AAA",
        status=status,
        status_detail=detail,
    )


def _synced(conn: sa.Connection, tenant: str, entity: str, at: datetime, stats: dict) -> None:
    mark_run_started(conn, tenant, entity, "full", at=at)
    mark_run_succeeded(conn, tenant, entity, stats=stats, at=at)


def _assert_security_headers(answer, cache: str = "no-store") -> None:
    csp = answer.headers["Content-Security-Policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Cache-Control"] == cache


def test_every_kind_of_response_carries_the_security_headers(
    client, logged_in, make_operator, store_engine
):
    with store_engine.begin() as conn:
        _connect(conn, "acme")
    token = make_operator()
    browser = logged_in(token)
    api = client(token)
    anonymous = client()
    answers = {
        "login": client(html=True).get("/login"),
        "home": anonymous.get("/"),
        "connectors page": browser.get("/connectors"),
        "api list": api.get("/api/connectors"),
        "api detail": api.get("/api/connectors/acme"),
        "401": anonymous.get("/api/connectors"),
        "404 route": anonymous.get("/nowhere"),
        "404 tenant": api.get("/api/connectors/nobody"),
        "405": anonymous.delete("/connectors"),
        "403 form": browser.post("/connectors/acme/disconnect"),
        "callback 400": anonymous.get("/api/connectors/salesforce/callback?state=x&code=y"),
        "authorize 303": api.post("/api/connectors/salesforce/authorize", data={"tenant": "acme"}),
    }
    expected = {
        "home": 303,
        "401": 401,
        "404 route": 404,
        "404 tenant": 404,
        "405": 405,
        "403 form": 403,
        "callback 400": 400,
        "authorize 303": 303,
    }
    for name, answer in answers.items():
        assert answer.status_code == expected.get(name, 200), name
        _assert_security_headers(answer)
    stylesheet = anonymous.get("/static/style.css")
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")
    _assert_security_headers(stylesheet, cache="public, max-age=3600")


class _BrokenFlow:
    """A flow whose store fails in a way the app did not foresee."""

    callback_url = "http://127.0.0.1:8765/api/connectors/salesforce/callback"
    state_ttl_seconds = 600.0

    def start(self, tenant_id: str, connector_id: str, binding: object) -> str:
        raise RuntimeError("database exploded; secret=hunter2")


def test_an_unexpected_error_is_a_plain_500_with_the_headers(store_engine, make_operator, caplog):
    app = create_app(
        store_engine,
        _BrokenFlow(),  # type: ignore[arg-type]
        session_secret="x" * 32,
        tenant_client=no_org,
    )
    with BackgroundServer(app) as server:
        api = AppClient(server.base_url, token=make_operator(), html=True)
        answer = api.post("/api/connectors/salesforce/authorize", data={"tenant": "acme"})
    assert answer.status_code == 500
    assert "unexpected error" in answer.text
    assert "hunter2" not in answer.text and "Traceback" not in answer.text
    _assert_security_headers(answer)
    assert any("unhandled error" in r.getMessage() for r in caplog.records)


def test_pages_have_no_script_and_no_inline_style(logged_in, make_operator, store_engine, client):
    with store_engine.begin() as conn:
        _connect(conn, "acme")
        _synced(conn, "acme", "accounts", SYNCED, {"rows_loaded": 3})
    browser = logged_in(make_operator())
    pages = [
        client(html=True).get("/login").text,
        browser.get("/connectors").text,
        client(html=True).get("/api/connectors/salesforce/callback").text,
    ]
    for html in pages:
        assert "<script" not in html.lower()
        assert not re.search(r"\sstyle=", html)  # the CSP would block inline styles
        assert '<link rel="stylesheet" href="/static/style.css">' in html


def test_everything_shown_is_html_escaped(logged_in, make_operator, store_engine):
    with store_engine.begin() as conn:
        _connect(conn, EVIL_TENANT, status="reconnect_needed", detail=EVIL_DETAIL)
        _synced(conn, EVIL_TENANT, "<b>accounts</b>", SYNCED, {"<i>rows</i>": "<u>5</u>"})
    page = logged_in(make_operator(label="<em>ops</em>")).get("/connectors").text
    for raw in [EVIL_TENANT, "<img", "<b>", "<i>", "<u>", "<em>"]:
        assert raw not in page
    assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; more" in page
    assert "&lt;b&gt;accounts&lt;/b&gt; (full):" in page
    assert "&lt;i&gt;rows&lt;/i&gt; &lt;u&gt;5&lt;/u&gt;" in page
    assert "&lt;em&gt;ops&lt;/em&gt;" in page
    # In the disconnect form's URL the id is one percent-encoded path segment.
    assert 'action="/connectors/%3Cscript%3Ealert%28%22t%22%29%3C%2Fscript%3E/disconnect"' in page
    assert "Reconnect needed" in page


def test_connectors_page_shows_status_detail_and_last_sync(logged_in, make_operator, store_engine):
    with store_engine.begin() as conn:
        _connect(conn, "acme")
        _connect(conn, "globex", status="reconnect_needed", detail="Salesforce refused the token.")
        _connect(conn, "initech", status="disconnected")
        _synced(conn, "acme", "accounts", SYNCED, {"rows_loaded": 120, "rows_rejected": 2})
        _synced(conn, "acme", "persons", SYNCED.replace(hour=7), {"rows_loaded": 900})
    browser = logged_in(make_operator())
    page = browser.get("/connectors").text
    rows = dict(re.findall(r'<tr data-tenant="([^"]+)">(.*?)</tr>', page, re.S))
    assert set(rows) == {"acme", "globex", "initech"}
    assert "Connected" in rows["acme"] and "2026-03-04 07:06 UTC" in rows["acme"]
    assert "accounts (full): rows_loaded 120, rows_rejected 2" in rows["acme"]
    assert "persons (full): rows_loaded 900" in rows["acme"]
    assert (
        "Reconnect needed" in rows["globex"] and "Salesforce refused the token." in rows["globex"]
    )
    assert "never" in rows["globex"] and "never" in rows["initech"]
    for tenant, row in rows.items():
        assert "Connect Salesforce" in row
        assert (">Disconnect</button>" in row) == (tenant != "initech")  # nothing to revoke
        assert f'<input type="hidden" name="tenant" value="{tenant}">' in row
    assert csrf_from(rows["acme"]) == csrf_from(page)


def _overview_checks(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _connect(conn, "acme")
        _connect(conn, "globex")
        _synced(conn, "acme", "accounts", SYNCED, {"rows_loaded": 1})
        _synced(conn, "acme", "persons", SYNCED.replace(day=5), {"rows_loaded": 2})
    with engine.connect() as conn:
        everyone = list_overviews(conn, None)
        scoped = list_overviews(conn, ["acme", "nobody"])
        one = tenant_overview(conn, "acme")
        missing = tenant_overview(conn, "nobody")
    assert [t.tenant_id for t in everyone] == ["acme", "globex"]
    assert [(t.tenant_id, t.status) for t in scoped] == [("acme", "connected"), ("nobody", None)]
    assert one is not None and missing is None
    assert one.last_synced_at == SYNCED.replace(day=5)
    assert [(s.entity, dict(s.stats)) for s in one.syncs] == [
        ("accounts", {"rows_loaded": 1}),
        ("persons", {"rows_loaded": 2}),
    ]
    assert everyone[1].last_synced_at is None and everyone[1].syncs == ()
    json = one.to_json()
    assert json["last_synced_at"] == "2026-03-05T05:06:00+00:00"
    assert json["syncs"][0] == {
        "entity": "accounts",
        "mode": "full",
        "last_succeeded_at": "2026-03-04T05:06:00+00:00",
        "stats": {"rows_loaded": 1},
    }


def test_overview_reads_sync_state_on_sqlite(store_engine):
    _overview_checks(store_engine)


@pytest.mark.postgres
def test_overview_reads_sync_state_on_postgres(postgres_server_url):
    _reset_postgres(postgres_server_url)
    engine = make_engine(postgres_server_url)
    try:
        upgrade(engine)
        _overview_checks(engine)
    finally:
        engine.dispose()
