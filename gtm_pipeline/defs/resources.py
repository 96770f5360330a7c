"""Dagster resources, filled from the code location's settings where it loads.

`definitions(settings)` builds them from the `Settings` that `gtm_pipeline/definitions.py` reads
once; the secrets (client id and secret, the encryption key) go in as `dg.EnvVar`s, so Dagster
resolves them in each run's process and never shows or stores their values. Every field can be
changed for one run in the launchpad's resource config.
"""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa
from pydantic import Field, PrivateAttr

from gtm_pipeline.config import (
    DEFAULT_API_VERSION,
    DEFAULT_BULK_THRESHOLD,
    DEFAULT_ERROR_RATE,
    DEFAULT_LIFETIME_SECONDS,
    DEFAULT_LOGIN_URL,
    DEFAULT_PARALLEL_READS,
    MAX_PARALLEL_READS,
    SalesforceSettings,
    Settings,
)
from gtm_pipeline.connect.tokens import TenantClients
from gtm_pipeline.salesforce.client import ClientConfig, SalesforceClient
from gtm_pipeline.salesforce.crypto import TokenCipher
from gtm_pipeline.store import make_engine, upgrade


class WarehouseResource(dg.ConfigurableResource):
    """The store: the canonical tables, cursors and quality failures.

    The schema is brought to the latest migration the first time the engine is asked for. A gate
    whose share of rejected rows is above `quality_error_rate` is an ERROR, else a WARN.
    """

    database_url: str
    quality_error_rate: float = Field(default=DEFAULT_ERROR_RATE, ge=0, le=1)
    _engine: sa.Engine | None = PrivateAttr(default=None)

    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = make_engine(self.database_url)
            upgrade(self._engine)
        return self._engine


class SalesforceResource(dg.ConfigurableResource):
    """How to reach Salesforce for a tenant: the connected app, TLS, API version and paging.

    Tokens are not configured here: each tenant's come from the encrypted vault in the store and
    refresh themselves (gtm_pipeline.connect.tokens). Full reads of more than `bulk_threshold`
    records go through Bulk API 2.0.
    """

    client_id: str
    client_secret: str = Field(repr=False)
    encryption_key: str = Field(repr=False)
    login_url: str = DEFAULT_LOGIN_URL
    api_version: str = DEFAULT_API_VERSION
    ca_bundle: str = ""
    """Empty: the system's CAs."""
    allow_any_instance: bool = False
    session_lifetime_seconds: float = Field(default=DEFAULT_LIFETIME_SECONDS, gt=0)
    batch_size: int = 2000
    usage_guard_share: float = 0.8
    bulk_threshold: int = Field(default=DEFAULT_BULK_THRESHOLD, ge=0)
    parallel_reads: int = Field(default=DEFAULT_PARALLEL_READS, ge=1, le=MAX_PARALLEL_READS)
    """Slices a large full read is split into and read at once (a run's config may lower it)."""

    def settings(self) -> SalesforceSettings:
        return SalesforceSettings(
            login_url=self.login_url,
            api_version=self.api_version,
            ca_bundle=self.ca_bundle or None,
            client_id=self.client_id,
            client_secret=self.client_secret,
            allow_any_instance=self.allow_any_instance,
        )

    def clients(self, engine: sa.Engine) -> TenantClients:
        """The client factory for the tenants of `engine`'s store, with this resource's settings."""
        settings = self.settings()
        return TenantClients(
            engine,
            settings,
            TokenCipher(self.encryption_key),
            self.session_lifetime_seconds,
            ClientConfig(
                api_version=settings.api_version,
                ca_bundle=settings.ca_bundle,
                batch_size=self.batch_size,
                usage_guard_share=self.usage_guard_share,
            ),
        )

    def client(self, engine: sa.Engine, tenant_id: str) -> SalesforceClient:
        return self.clients(engine).for_tenant(tenant_id)


def salesforce_resource(settings: Settings) -> SalesforceResource:
    """The resource as deployed: secrets through EnvVar, the rest from `settings`."""
    salesforce = settings.salesforce
    return SalesforceResource(
        client_id=dg.EnvVar("SALESFORCE_CLIENT_ID"),
        client_secret=dg.EnvVar("SALESFORCE_CLIENT_SECRET"),
        encryption_key=dg.EnvVar("CONNECTOR_ENCRYPTION_KEY"),
        login_url=salesforce.login_url,
        api_version=salesforce.api_version,
        ca_bundle=salesforce.ca_bundle or "",
        allow_any_instance=salesforce.allow_any_instance,
        session_lifetime_seconds=settings.session_lifetime,
        bulk_threshold=settings.bulk_threshold,
        parallel_reads=settings.parallel_reads,
    )


def shared_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources every domain shares, keyed as the assets ask for them."""
    return {
        "warehouse": WarehouseResource(
            database_url=settings.database_url, quality_error_rate=settings.quality_error_rate
        ),
        "salesforce": salesforce_resource(settings),
    }


def definitions(settings: Settings) -> dg.Definitions:
    """The resources every domain shares: the store and Salesforce."""
    return dg.Definitions(resources=shared_resources(settings))
