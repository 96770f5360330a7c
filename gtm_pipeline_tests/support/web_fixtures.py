"""Fixtures of the web app that web/ and security/ share: the session secret and operators.

A plugin of the whole suite (`pytest_plugins` in gtm_pipeline_tests/conftest.py); the store comes
from `support/connect_fixtures.py`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from gtm_pipeline.store.connections import create_operator, operator_token_hash
from gtm_pipeline.web.auth import new_operator_token


@pytest.fixture()
def session_secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture()
def make_operator(store_engine: sa.Engine) -> Callable[..., str]:
    """Create an operator credential (admin when tenant_id is None); return its token."""

    def make(tenant_id: str | None = None, label: str = "ops@example.com") -> str:
        token = new_operator_token()
        with store_engine.begin() as conn:
            create_operator(
                conn, token_hash=operator_token_hash(token), tenant_id=tenant_id, label=label
            )
        return token

    return make
