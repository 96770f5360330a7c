"""`gtm-pipeline operator` and `rotate-key`: who may use the web app, and the key tokens are under.

`operator create` prints a new bearer token once; the store keeps only its hash. `rotate-key` moves
every stored secret to a new encryption key.

Both keys come from the environment, never from the command line, because argv is visible to
every user on the machine through `ps`. The command prints counts and key fingerprints only.
"""

from __future__ import annotations

import click

from gtm_pipeline.cli.common import GtmGroup, checked_tenant, open_store, program_settings
from gtm_pipeline.config import ConfigError

CURRENT_KEY_VARIABLE = "CONNECTOR_ENCRYPTION_KEY"
NEW_KEY_VARIABLE = "CONNECTOR_ENCRYPTION_KEY_NEW"


@click.command("rotate-key")
def rotate_key_command() -> None:
    """Re-encrypt every stored token from CONNECTOR_ENCRYPTION_KEY to CONNECTOR_ENCRYPTION_KEY_NEW.

    One transaction: either every row moves to the new key (each verified to decrypt under it
    before the commit) or none does. Stop the web app and syncs first, then afterwards set
    CONNECTOR_ENCRYPTION_KEY to the new key and unset CONNECTOR_ENCRYPTION_KEY_NEW.
    """
    import sqlalchemy as sa

    from gtm_pipeline.connect.rotation import RotationError, rotate_key_report
    from gtm_pipeline.salesforce.crypto import InvalidKeyError, TokenCipher
    from gtm_pipeline.store import make_engine, safe_url, upgrade
    from gtm_pipeline.store.errors import StoreError

    try:
        settings = program_settings()
        old = TokenCipher.from_settings(settings, variable=CURRENT_KEY_VARIABLE)
        new = TokenCipher.from_settings(settings, variable=NEW_KEY_VARIABLE)
        engine = make_engine(settings.database_url, home=settings.gtm_home)
    except (InvalidKeyError, ConfigError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        upgrade(engine)
        report = rotate_key_report(engine, old, new)
    except (RotationError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    except sa.exc.SQLAlchemyError as exc:
        # The driver's text can quote statement parameters (ciphertexts); name the failure only.
        cause = type(getattr(exc, "orig", None) or exc).__name__
        raise click.ClickException(
            f"the store at {safe_url(engine.url)} failed during rotation ({cause}); "
            "nothing was changed"
        ) from None
    finally:
        engine.dispose()
    click.echo(
        f"Rotated {report.rotated} rows to key {report.new_key_id}: "
        f"{report.token_rows} token rows, {report.state_rows} pending OAuth states"
        + (
            f" ({report.already_rotated} values were already under it)"
            if report.already_rotated
            else ""
        )
        + "."
    )
    click.echo(
        f"Now set {CURRENT_KEY_VARIABLE} to the value of {NEW_KEY_VARIABLE}, unset "
        f"{NEW_KEY_VARIABLE}, and restart the web app and syncs."
    )


# -- operator credentials -------------------------------------------------------------------

MAX_LABEL_CHARS = 200


@click.group("operator", cls=GtmGroup)
def operator() -> None:
    """Manage the operator credentials that log in to the connectors web app."""


@operator.command("create")
@click.option("--tenant", default=None, help="Scope the credential to this tenant.")
@click.option("--admin", is_flag=True, help="An admin credential: sees every tenant.")
@click.option("--label", required=True, help="Who or what holds it, e.g. an email address.")
def create(tenant: str | None, admin: bool, label: str) -> None:
    """Create a credential and print its bearer token (shown once)."""
    if admin == (tenant is not None):
        raise click.UsageError("give exactly one of --tenant TENANT or --admin")
    if tenant is not None:
        tenant = checked_tenant(tenant)
    label = label.strip()
    if not label or len(label) > MAX_LABEL_CHARS or not label.isprintable():
        raise click.BadParameter(
            f"the label must be 1 to {MAX_LABEL_CHARS} printable characters", param_hint="--label"
        )
    from gtm_pipeline.store.connections import create_operator
    from gtm_pipeline.web.auth import hash_token, new_operator_token

    token = new_operator_token()
    with open_store().begin() as conn:
        row = create_operator(conn, token_hash=hash_token(token), tenant_id=tenant, label=label)
    scope = "admin, every tenant" if tenant is None else f"tenant {tenant}"
    click.echo(f"Created operator credential {row.credential_id} ({scope}) labelled {label!r}.")
    click.echo("Its token follows. It is shown only now: the store keeps only its hash.")
    click.echo(token)


@operator.command("list")
def list_credentials() -> None:
    """List credentials (never their tokens): id, scope, label, created, revoked."""
    from gtm_pipeline.store.connections import list_operators

    with open_store().connect() as conn:
        rows = list_operators(conn)
    if not rows:
        click.echo("No operator credentials yet; create one with `operator create`.")
        return
    for row in rows:
        scope = "admin" if row.tenant_id is None else f"tenant {row.tenant_id}"
        revoked = f"revoked {row.revoked_at:%Y-%m-%d %H:%M} UTC" if row.revoked_at else "active"
        created = f"{row.created_at:%Y-%m-%d %H:%M} UTC"
        click.echo(f"{row.credential_id}  {scope}  {row.label!r}  created {created}  {revoked}")


@operator.command("revoke")
@click.argument("credential_id")
def revoke(credential_id: str) -> None:
    """Revoke a credential: its token and every browser session made with it stop working."""
    from gtm_pipeline.store.connections import revoke_operator

    with open_store().begin() as conn:
        revoked = revoke_operator(conn, credential_id)
    if not revoked:
        raise click.ClickException(f"no active operator credential {credential_id!r}")
    click.echo(f"Revoked operator credential {credential_id}.")
