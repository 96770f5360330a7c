"""Dagster resources. Secrets come from the environment through EnvVar, never from literals."""

from __future__ import annotations

import os

import dagster as dg
import sqlalchemy as sa
from pydantic import Field, PrivateAttr

from gtm_pipeline.config import SalesforceSettings
from gtm_pipeline.config import database_url as configured_database_url
from gtm_pipeline.connect.tokens import TenantClients, session_lifetime
from gtm_pipeline.salesforce.client import ClientConfig, SalesforceClient
from gtm_pipeline.salesforce.crypto import TokenCipher
from gtm_pipeline.store import make_engine, upgrade


class WarehouseResource(dg.ConfigurableResource):
    """The store: the canonical tables, cursors and quality failures.

    `database_url` empty means `DATABASE_URL`, or the SQLite file under `GTM_HOME`. The schema is
    brought to the latest migration the first time the engine is asked for.
    """

    database_url: str = ""
    _engine: sa.Engine | None = PrivateAttr(default=None)

    def resolved_url(self) -> str:
        return self.database_url or configured_database_url()

    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = make_engine(self.resolved_url())
            upgrade(self._engine)
        return self._engine


class SalesforceResource(dg.ConfigurableResource):
    """How to reach Salesforce for a tenant: the connected app, TLS, API version and paging.

    Tokens are not configured here: each tenant's come from the encrypted vault in the store and
    refresh themselves (gtm_pipeline.connect.tokens).
    """

    client_id: str
    client_secret: str = Field(repr=False)
    encryption_key: str = Field(repr=False)
    login_url: str = ""
    """Empty: SALESFORCE_LOGIN_URL, read when a run starts (default login.salesforce.com)."""
    api_version: str = ""
    """Empty: SALESFORCE_API_VERSION, read when a run starts."""
    ca_bundle: str = ""
    """Empty: SALESFORCE_CA_BUNDLE, read when a run starts (none: the system's CAs)."""
    session_lifetime_seconds: float = 0.0
    """0: SALESFORCE_SESSION_LIFETIME_SECONDS, read when a run starts (default 2 hours)."""
    batch_size: int = 2000
    usage_guard_share: float = 0.8

    def settings(self) -> SalesforceSettings:
        env = {
            "SALESFORCE_LOGIN_URL": self.login_url or os.environ.get("SALESFORCE_LOGIN_URL", ""),
            "SALESFORCE_API_VERSION": self.api_version
            or os.environ.get("SALESFORCE_API_VERSION", ""),
            "SALESFORCE_CA_BUNDLE": self.ca_bundle or os.environ.get("SALESFORCE_CA_BUNDLE", ""),
            "SALESFORCE_CLIENT_ID": self.client_id,
            "SALESFORCE_CLIENT_SECRET": self.client_secret,
            "SALESFORCE_ALLOW_ANY_INSTANCE": os.environ.get("SALESFORCE_ALLOW_ANY_INSTANCE", ""),
        }
        return SalesforceSettings.from_env(env)

    def clients(self, engine: sa.Engine) -> TenantClients:
        """The client factory for the tenants of `engine`'s store, with this resource's settings."""
        settings = self.settings()
        return TenantClients(
            engine,
            settings,
            TokenCipher.from_env({"CONNECTOR_ENCRYPTION_KEY": self.encryption_key}),
            self.session_lifetime_seconds or session_lifetime(),
            ClientConfig(
                api_version=settings.api_version,
                ca_bundle=settings.ca_bundle,
                batch_size=self.batch_size,
                usage_guard_share=self.usage_guard_share,
            ),
        )

    def client(self, engine: sa.Engine, tenant_id: str) -> SalesforceClient:
        return self.clients(engine).for_tenant(tenant_id)


def salesforce_resource_from_env() -> SalesforceResource:
    """The resource as deployed: secrets through EnvVar, every setting read when a run starts."""
    return SalesforceResource(
        client_id=dg.EnvVar("SALESFORCE_CLIENT_ID"),
        client_secret=dg.EnvVar("SALESFORCE_CLIENT_SECRET"),
        encryption_key=dg.EnvVar("CONNECTOR_ENCRYPTION_KEY"),
    )


def definitions() -> dg.Definitions:
    """The resources every domain shares: the store and Salesforce.

    An empty `database_url` means DATABASE_URL, read when a run needs the store."""
    return dg.Definitions(
        resources={"warehouse": WarehouseResource(), "salesforce": salesforce_resource_from_env()}
    )
