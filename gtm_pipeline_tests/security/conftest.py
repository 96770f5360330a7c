"""Fixtures of the attack suite: the real app on uvicorn with two connected tenants, clients
whose every page is secret-scanned, a snapshot of the whole store, and the attack tally.

The emulator, store (SQLite and PostgreSQL through `engine`), keys and flow come from
`connect/conftest.py`; the operator and login helpers from `web/conftest.py`. Unlike the web
tests, `database_url` is not narrowed here: the attacks run against both databases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from starlette.applications import Starlette

from gtm_pipeline.config import SalesforceSettings
from gtm_pipeline.store.tables import metadata as store_metadata
from gtm_pipeline.web.serving import BackgroundServer
from gtm_pipeline_tests.connect.conftest import (  # noqa: F401 - fixtures shared with connect/
    _system_ca_bundle_in_env,
    cipher,
    clock,
    connect_env,
    connect_org,
    connect_tenant,
    emulator,
    encryption_key,
    flow,
    oauth_client,
    sf_settings,
    signer,
    start_emulator,
    state_secret,
    store_engine,
    vault,
)
from gtm_pipeline_tests.secret_scan import record_text, secrets_in
from gtm_pipeline_tests.web.conftest import (  # noqa: F401 - fixtures shared with web/
    AppClient,
    app_on_emulator,
    csrf_from,
    make_operator,
    session_secret,
)

TENANTS = ("acme", "globex")


class ScannedClient(AppClient):
    """An AppClient that adds every response body to the secret scan and fails on a secret."""

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        answer = super().request(method, url, *args, **kwargs)
        text = answer.text
        record_text(f"page {method} {answer.url} -> {answer.status_code}", text)
        found = secrets_in(text)
        assert not found, f"{method} {url} answered with secrets: {found}"
        return answer


@dataclass
class WebApp:
    """The app object (for its route table) and where it is served."""

    app: Starlette
    base_url: str

    def client(self, token: str | None = None, *, html: bool = False) -> ScannedClient:
        return ScannedClient(self.base_url, token=token, html=html)

    def login(self, token: str) -> ScannedClient:
        """A browser-like client logged in through the form."""
        browser = self.client(html=True)
        page = browser.get("/login")
        answer = browser.post("/login", data={"token": token, "csrf_token": csrf_from(page.text)})
        assert answer.status_code == 303, answer.text
        return browser


@pytest.fixture()
def web(
    store_engine: sa.Engine,  # noqa: F811
    flow,  # noqa: F811
    session_secret: str,  # noqa: F811
    sf_settings: SalesforceSettings,  # noqa: F811
    connect_env: dict[str, str],  # noqa: F811
) -> Iterator[WebApp]:
    """The app as `app_from_env` builds it (mapping page on the emulator), on a free port."""

    app = app_on_emulator(store_engine, flow, session_secret, sf_settings, connect_env)
    with BackgroundServer(app) as server:
        yield WebApp(app, server.base_url)


@pytest.fixture()
def tenants(connect_tenant) -> tuple[str, ...]:  # noqa: F811
    """acme and globex, both connected through the emulator (real encrypted tokens stored)."""
    for tenant in TENANTS:
        outcome = connect_tenant(tenant)
        assert outcome.ok, outcome.message
    return TENANTS


def snapshot(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every row of every store table, in a stable order: "nothing changed" means equal."""
    with engine.connect() as conn:
        return {
            table.name: sorted(
                (tuple(map(repr, row)) for row in conn.execute(sa.select(table))), key=repr
            )
            for table in store_metadata.sorted_tables
        }


@pytest.fixture()
def store_snapshot(store_engine: sa.Engine) -> Callable[[], dict[str, list[tuple]]]:  # noqa: F811
    return lambda: snapshot(store_engine)


@pytest.fixture()
def sqlite_only(tmp_path) -> str:
    """A `database_url` for modules whose attacks end at the web layer (no SQL of their own)."""
    return f"sqlite:///{tmp_path / 'warehouse.db'}"
