"""Fixtures for the web app: an app served over HTTP, API and logged-in clients.

The emulator, keys, store and `flow` come from the plugin `gtm_pipeline_tests/support/
connect_fixtures.py`, `session_secret` and `make_operator` from `support/web_fixtures.py` (both
listed in `pytest_plugins` of the root conftest, so web/, connect/ and security/ share one
definition); `AppClient`, `login`, `csrf_from` and the other helpers live in `support/web.py`.
`database_url` is narrowed to SQLite: the web layer adds no SQL of its own beyond one read of
`sync_state`, which `test_overview_reads_sync_state_on_postgres` checks on PostgreSQL.

There is no httpx in the environment, so the app is served by uvicorn on a free loopback port
(about 50 ms) and driven with requests, like a real client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from gtm_pipeline.connect.flow import ConnectFlow
from gtm_pipeline.web.app import create_app
from gtm_pipeline.web.serving import BackgroundServer
from gtm_pipeline_tests.support.web import AppClient, login, no_org


@pytest.fixture(autouse=True)
def _system_ca_bundle_in_env(_system_ca_bundle_in_env: None) -> None:
    """The shared fixture of support/connect_fixtures.py, on for every test in this folder."""


@pytest.fixture()
def database_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture()
def web_url(store_engine: sa.Engine, flow: ConnectFlow, session_secret: str) -> Iterator[str]:
    """The app served on a free loopback port; its base URL."""
    app = create_app(
        store_engine,
        flow,
        secure_cookies=False,
        session_secret=session_secret,
        tenant_client=no_org,
    )
    with BackgroundServer(app) as server:
        yield server.base_url


@pytest.fixture()
def client(web_url: str) -> Callable[..., AppClient]:
    """`client(token=None, html=False)`: an API client, or a browser-like one with html=True."""
    return lambda token=None, html=False: AppClient(web_url, token=token, html=html)


@pytest.fixture()
def logged_in(web_url: str) -> Callable[[str], AppClient]:
    return lambda token: login(web_url, token)
