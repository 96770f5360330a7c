"""Fixtures of the attack suite: the real app on uvicorn with two connected tenants, clients
whose every page is secret-scanned, a snapshot of the whole store, and the attack tally.

The emulator, store (SQLite and PostgreSQL through `engine`), keys and flow come from the plugin
`gtm_pipeline_tests/support/connect_fixtures.py`; `session_secret` and `make_operator` from
`support/web_fixtures.py` (both listed in `pytest_plugins` of the root conftest). `WebApp`,
`ScannedClient` and `snapshot` live in `support/security.py`, the web helpers in `support/web.py`.
Unlike the web tests, `database_url` is not narrowed here: the attacks run against both databases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from gtm_pipeline.config import SalesforceSettings
from gtm_pipeline.web.serving import BackgroundServer
from gtm_pipeline_tests.support.security import WebApp, snapshot
from gtm_pipeline_tests.support.web import app_on_emulator

TENANTS = ("acme", "globex")


@pytest.fixture(autouse=True)
def _system_ca_bundle_in_env(_system_ca_bundle_in_env: None) -> None:
    """The shared fixture of support/connect_fixtures.py, on for every test in this folder."""


@pytest.fixture()
def web(
    store_engine: sa.Engine,
    flow,
    session_secret: str,
    sf_settings: SalesforceSettings,
    connect_env: dict[str, str],
) -> Iterator[WebApp]:
    """The app as `app_from_settings` builds it (mapping page on the emulator), on a free port."""

    app = app_on_emulator(store_engine, flow, session_secret, sf_settings, connect_env)
    with BackgroundServer(app) as server:
        yield WebApp(app, server.base_url)


@pytest.fixture()
def tenants(connect_tenant) -> tuple[str, ...]:
    """acme and globex, both connected through the emulator (real encrypted tokens stored)."""
    for tenant in TENANTS:
        outcome = connect_tenant(tenant)
        assert outcome.ok, outcome.message
    return TENANTS


@pytest.fixture()
def store_snapshot(store_engine: sa.Engine) -> Callable[[], dict[str, list[tuple]]]:
    return lambda: snapshot(store_engine)


@pytest.fixture()
def sqlite_only(tmp_path) -> str:
    """A `database_url` for modules whose attacks end at the web layer (no SQL of their own)."""
    return f"sqlite:///{tmp_path / 'warehouse.db'}"
