"""Encryption-key rotation: re-seal every stored secret under a new key, all or nothing.

Everything happens in one transaction that first locks the tables against writers, so the store
is either entirely under the old key (any failure, a crash, or a kill before commit) or entirely
under the new one. Before committing, every rewritten row is read back and opened with the new
key and compared with what the old key produced; a mismatch aborts the transaction, so the store
can never end up holding a secret no key opens.

Rows that already open under the new key (a repeated run before the operator switched the
variables) are left alone and counted as such, so running the command twice is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from gtm_pipeline.connect.vault import verifier_aad
from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.crypto import TokenCipher, TokenDecryptError, token_aad
from gtm_pipeline.store.tables import connector_tokens, oauth_states


class RotationError(GtmError):
    """Rotation refused or aborted; nothing was changed. Messages carry no key material."""

    retryable = False


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did: rows re-encrypted per table, and rows already under the new key."""

    token_rows: int
    state_rows: int
    already_rotated: int
    new_key_id: str

    @property
    def rotated(self) -> int:
        return self.token_rows + self.state_rows


@dataclass(frozen=True)
class _Sealed:
    """One ciphertext column of one row, with the AAD it is bound to."""

    table: sa.Table
    key: dict[str, str]
    label: str
    column: str
    aad: str
    ciphertext: str


def rotate_key(
    engine: sa.Engine,
    old: TokenCipher,
    new: TokenCipher,
    *,
    before_commit: Callable[[int], None] | None = None,
) -> int:
    """Re-encrypt every token and pending PKCE verifier from `old` to `new`; the rows rotated.

    `before_commit` runs after verification, with the count, just before the commit: tests use
    it to kill the process at the worst moment; it may raise to abort.
    """
    return rotate_key_report(engine, old, new, before_commit=before_commit).rotated


def rotate_key_report(
    engine: sa.Engine,
    old: TokenCipher,
    new: TokenCipher,
    *,
    before_commit: Callable[[int], None] | None = None,
) -> RotationReport:
    """`rotate_key`, returning the per-table counts the command prints."""
    if not isinstance(old, TokenCipher) or not isinstance(new, TokenCipher):
        raise TypeError("old and new must be TokenCipher instances")
    if old.key_id == new.key_id:
        raise RotationError("the new key is the same as the current key; generate a new one")
    with engine.begin() as conn:
        _lock_tables(conn)
        sealed = _sealed_values(conn)
        plaintexts: list[str] = []
        rewritten: list[tuple[_Sealed, str]] = []
        already = 0
        for item in sealed:
            plaintext, under_new = _open_either(item, old, new)
            if under_new:
                already += 1
                continue
            plaintexts.append(plaintext)
            rewritten.append((item, new.encrypt(plaintext, aad=item.aad)))
        _write(conn, rewritten, new.key_id)
        _verify(conn, rewritten, plaintexts, new)
        report = RotationReport(
            token_rows=len(
                {tuple(i.key.values()) for i, _ in rewritten if i.table is connector_tokens}
            ),
            state_rows=sum(1 for i, _ in rewritten if i.table is oauth_states),
            already_rotated=already,
            new_key_id=new.key_id,
        )
        if before_commit is not None:
            before_commit(report.rotated)
    return report


def _lock_tables(conn: sa.Connection) -> None:
    """Keep writers out until commit, so no row is sealed with the old key meanwhile.

    PostgreSQL: SHARE ROW EXCLUSIVE blocks inserts, updates and deletes but not readers. SQLite:
    the store's transactions start with BEGIN IMMEDIATE, which already holds the write lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("LOCK TABLE connector_tokens, oauth_states IN SHARE ROW EXCLUSIVE MODE")
        )


def _sealed_values(conn: sa.Connection) -> list[_Sealed]:
    found: list[_Sealed] = []
    tokens = conn.execute(
        sa.select(connector_tokens).order_by(
            connector_tokens.c.tenant_id, connector_tokens.c.connector_id
        )
    )
    for row in tokens:
        key = {"tenant_id": row.tenant_id, "connector_id": row.connector_id}
        aad = token_aad(row.tenant_id, row.connector_id)
        for column in ("access_token_ct", "refresh_token_ct"):
            value = getattr(row, column)
            if value is not None:
                label = f"the tokens of tenant {row.tenant_id!r}"
                found.append(_Sealed(connector_tokens, key, label, column, aad, value))
    states = conn.execute(sa.select(oauth_states).order_by(oauth_states.c.nonce))
    for row in states:
        aad = verifier_aad(row.tenant_id, row.connector_id, row.nonce)
        # The nonce is the row's key but also half of a live OAuth state: not for messages.
        label = f"a pending connection of tenant {row.tenant_id!r}"
        found.append(
            _Sealed(
                oauth_states,
                {"nonce": row.nonce},
                label,
                "code_verifier_ct",
                aad,
                row.code_verifier_ct,
            )
        )
    return found


def _describe(item: _Sealed) -> str:
    return f"{item.label} ({item.table.name}.{item.column})"


def _open_either(item: _Sealed, old: TokenCipher, new: TokenCipher) -> tuple[str, bool]:
    """The plaintext, and whether it was already under the new key."""
    try:
        return old.decrypt(item.ciphertext, aad=item.aad), False
    except TokenDecryptError:
        pass
    try:
        return new.decrypt(item.ciphertext, aad=item.aad), True
    except TokenDecryptError:
        raise RotationError(
            f"{_describe(item)} opens under neither the current key ({old.key_id}) nor the new "
            f"key ({new.key_id}); nothing was changed"
        ) from None


def _write(conn: sa.Connection, rewritten: list[tuple[_Sealed, str]], new_key_id: str) -> None:
    for item, ciphertext in rewritten:
        values: dict[str, str] = {item.column: ciphertext}
        if item.table is connector_tokens:
            values["key_id"] = new_key_id
        conn.execute(sa.update(item.table).where(*_key_clause(item)).values(**values))


def _key_clause(item: _Sealed) -> list[sa.ColumnElement[bool]]:
    return [item.table.c[name] == value for name, value in item.key.items()]


def _verify(
    conn: sa.Connection,
    rewritten: list[tuple[_Sealed, str]],
    plaintexts: list[str],
    new: TokenCipher,
) -> None:
    """Read every rewritten value back from the database and open it with the new key."""
    for (item, _), expected in zip(rewritten, plaintexts, strict=True):
        stored = conn.execute(
            sa.select(item.table.c[item.column]).where(*_key_clause(item))
        ).scalar_one()
        try:
            reopened = new.decrypt(stored, aad=item.aad)
        except TokenDecryptError:
            reopened = None
        if reopened != expected:
            raise RotationError(
                f"{_describe(item)} did not read back under the new key; nothing was changed"
            )
