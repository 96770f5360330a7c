"""What the commands share: the settings, the store, a checked tenant id, and a tenant's org.

Imports of the store, the web identifiers and the Salesforce client happen inside the functions,
so that `gtm-pipeline --help` and a command's `--help` load click and nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from gtm_pipeline.errors import GtmError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from gtm_pipeline.config import Settings
    from gtm_pipeline.salesforce.metadata import DescribeClient


class ShownError(GtmError, click.ClickException):
    """A `GtmError` as the CLI shows it, like click's own errors: `Error: <its user message>` on
    stderr, exit 1."""


class GtmGroup(click.Group):
    """A command group whose commands' `GtmError`s end as one line and exit 1, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GtmError as exc:
            raise ShownError(exc.user_message) from exc


def program_settings() -> Settings:
    """The settings of this run of `gtm-pipeline`: read from the environment the first time a
    command asks, kept on the root click context, the same object for every later ask. Called
    outside a command (a program embedding the runners), the process environment's."""
    from gtm_pipeline.config import Settings

    context = click.get_current_context(silent=True)
    if context is None:
        return Settings.from_process()
    root = context.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings.from_process()
    return root.obj


def open_store() -> sa.Engine:
    """The store (DATABASE_URL, else the SQLite file under GTM_HOME), migrated; the caller
    disposes it."""
    from gtm_pipeline.store import open_store as migrated

    settings = program_settings()
    return migrated(settings.database_url, home=settings.gtm_home)


def checked_tenant(value: str, param: str = "--tenant") -> str:
    """`value` as a tenant id, or a usage error naming `param`."""
    from gtm_pipeline.web import identifiers

    try:
        return identifiers.tenant_id(value)
    except identifiers.InvalidIdentifier as exc:
        raise click.BadParameter(str(exc), param_hint=param) from None


def _tenant_client(engine: sa.Engine, tenant_id: str) -> DescribeClient:
    from gtm_pipeline.connect.tokens import TenantClients

    return TenantClients.from_settings(engine, program_settings()).for_tenant(tenant_id)


client_factory: Callable[[sa.Engine, str], DescribeClient] = _tenant_client
"""How commands reach a tenant's org; replaced by tests and embedding programs."""


def org_client(engine: sa.Engine, tenant: str) -> DescribeClient:
    """The tenant's org client. Whatever stops it (not connected, bad settings, an answer that
    is not Salesforce's) reaches the user as one line, as the project's own errors do."""
    try:
        return client_factory(engine, tenant)
    except GtmError:
        raise
    except Exception as exc:
        raise ShownError(f"cannot reach the org of tenant {tenant}: {type(exc).__name__}") from exc
