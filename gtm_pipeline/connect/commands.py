"""`gtm-pipeline rotate-key`: move every stored secret to a new encryption key.

Both keys come from the environment, never from the command line, because argv is visible to
every user on the machine through `ps`. The command prints counts and key fingerprints only.
"""

from __future__ import annotations

import click
import sqlalchemy as sa

from gtm_pipeline.config import ConfigError
from gtm_pipeline.connect.rotation import RotationError, rotate_key_report
from gtm_pipeline.salesforce.crypto import InvalidKeyError, TokenCipher
from gtm_pipeline.store import make_engine, safe_url, upgrade
from gtm_pipeline.store.errors import StoreError

CURRENT_KEY_VARIABLE = "CONNECTOR_ENCRYPTION_KEY"
NEW_KEY_VARIABLE = "CONNECTOR_ENCRYPTION_KEY_NEW"


@click.command("rotate-key")
def rotate_key_command() -> None:
    """Re-encrypt every stored token from CONNECTOR_ENCRYPTION_KEY to CONNECTOR_ENCRYPTION_KEY_NEW.

    One transaction: either every row moves to the new key (each verified to decrypt under it
    before the commit) or none does. Stop the web app and syncs first, then afterwards set
    CONNECTOR_ENCRYPTION_KEY to the new key and unset CONNECTOR_ENCRYPTION_KEY_NEW.
    """
    try:
        old = TokenCipher.from_env(variable=CURRENT_KEY_VARIABLE)
        new = TokenCipher.from_env(variable=NEW_KEY_VARIABLE)
        engine = make_engine()
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
