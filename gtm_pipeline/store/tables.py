"""The store's schema as SQLAlchemy Core tables, the single source the migrations must match.

Canonical entity tables (`accounts`, `persons`, `opportunities`, `activities`) share one shape:
keyed by `(tenant_id, external_id)`, carrying the Salesforce `system_modstamp` that orders
versions of a record, soft-delete columns, mapped custom fields as JSON and when the store last
wrote the row. `persons` holds two entities (Contacts and Leads) and `activities` two more (Tasks
and Events); `EntityRows` says whose rows are whose.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from gtm_pipeline.store.types import UTCDateTime, json_type

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

TENANT_ID = sa.String(64)
RECORD_ID = sa.String(64)

# `failed`: the last connect attempt failed; `status_detail` says why in plain words.
CONNECTOR_STATUSES = ("connected", "reconnect_needed", "disconnected", "failed")
MAPPING_DIRECTIONS = ("sync", "writeback")
SLICE_EXTRACTIONS = ("rest", "bulk")


def _in_check(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name)


connectors = sa.Table(
    "connectors",
    metadata,
    sa.Column("tenant_id", TENANT_ID, primary_key=True),
    # Chosen by the caller ("salesforce"); many tenants share one, so it is not unique.
    sa.Column("connector_id", sa.String(64), nullable=False),
    sa.Column("instance_url", sa.Text, nullable=True),
    sa.Column("org_id", sa.String(18), nullable=True),
    sa.Column("status", sa.String(32), nullable=False, server_default="connected"),
    sa.Column("status_detail", sa.Text, nullable=True),
    sa.Column("connected_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    _in_check("status", CONNECTOR_STATUSES, "status"),
)

connector_tokens = sa.Table(
    "connector_tokens",
    metadata,
    sa.Column(
        "tenant_id",
        TENANT_ID,
        sa.ForeignKey("connectors.tenant_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("connector_id", sa.String(64), primary_key=True),
    # Ciphertext only, as text (e.g. base64 or a Fernet token); plaintext never reaches the store.
    sa.Column("access_token_ct", sa.Text, nullable=False),
    sa.Column("refresh_token_ct", sa.Text, nullable=True),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    # Where these tokens are valid; a refresh may move it, so it travels with the tokens.
    # Nullable only for rows written before revision 0002 (backfilled from `connectors`).
    sa.Column("instance_url", sa.Text, nullable=True),
)

field_mappings = sa.Table(
    "field_mappings",
    metadata,
    sa.Column("tenant_id", TENANT_ID, primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("direction", sa.String(16), primary_key=True),
    sa.Column("target_field", sa.String(255), primary_key=True),
    sa.Column("source_path", sa.String(255), nullable=False),
    sa.Column("transform", sa.String(64), nullable=True),
    sa.Column("required", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("sf_object", sa.String(64), nullable=True),
    # A writeback mapping to a standard Salesforce field, set on purpose (--allow-standard-field).
    sa.Column("allow_standard_field", sa.Boolean, nullable=False, server_default=sa.false()),
    _in_check("direction", MAPPING_DIRECTIONS, "direction"),
)

sync_state = sa.Table(
    "sync_state",
    metadata,
    sa.Column("tenant_id", TENANT_ID, primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("cursor_modstamp", UTCDateTime, nullable=True),
    sa.Column("cursor_id", RECORD_ID, nullable=True),
    sa.Column("mode", sa.String(16), nullable=True),
    sa.Column("last_started_at", UTCDateTime, nullable=True),
    sa.Column("last_succeeded_at", UTCDateTime, nullable=True),
    sa.Column("last_stats", json_type(), nullable=True),
    # Contacts and Leads: a first full sync is loading without marking email twins
    # (store/duplicates.py).
    sa.Column("twin_marks_pending", sa.Boolean, nullable=False, server_default=sa.false()),
)


# A full read split into SystemModstamp ranges read in parallel (`sync/slices.py`): one row per
# slice, its committed position moving with the rows it covers. The plan is removed in the
# transaction that moves the entity's cursor past every slice.
sync_slices = sa.Table(
    "sync_slices",
    metadata,
    sa.Column("tenant_id", TENANT_ID, primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("slice", sa.Integer, primary_key=True),
    # [lower, upper): None is open (the first slice has no lower bound, the last no upper one).
    sa.Column("lower_modstamp", UTCDateTime, nullable=True),
    sa.Column("upper_modstamp", UTCDateTime, nullable=True),
    sa.Column("cursor_modstamp", UTCDateTime, nullable=True),
    sa.Column("cursor_id", RECORD_ID, nullable=True),
    sa.Column("done", sa.Boolean, nullable=False, server_default=sa.false()),
    # How the slices are read: `rest` pages or one `bulk` job each.
    sa.Column("extraction", sa.String(8), nullable=False, server_default="rest"),
    sa.Column("planned_at", UTCDateTime, nullable=False),
    _in_check("extraction", SLICE_EXTRACTIONS, "extraction"),
)


PERSON_SOURCE_OBJECTS = ("Contact", "Lead")


def _canonical_table(name: str, *columns: sa.Column) -> sa.Table:
    """Build an entity table: key, entity columns, then the versioning and bookkeeping columns."""
    table = sa.Table(
        name,
        metadata,
        sa.Column("tenant_id", TENANT_ID, primary_key=True),
        sa.Column("external_id", RECORD_ID, primary_key=True),
        *columns,
        sa.Column("system_modstamp", UTCDateTime, nullable=False),
        sa.Column("is_deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("deleted_at", UTCDateTime, nullable=True),
        # "deleted" (seen in the recycle bin) or "purged" (gone even from queryAll).
        sa.Column("deleted_reason", sa.String(16), nullable=True),
        sa.Column("custom_fields", json_type(), nullable=True),
        sa.Column("synced_at", UTCDateTime, nullable=False),
    )
    # For readers' "what changed since" queries. REST and incremental reads come in SystemModstamp
    # order, so it fills mostly at its right edge: on the emulator (whose stamps follow creation
    # order), dropping it changed a 1,000,000-Contact REST sync into SQLite by under 2%, where
    # persons' account_external_id index (filled at random places, never read; dropped by
    # migration 0004) cost 19-24%.
    sa.Index(f"ix_{name}_tenant_id_system_modstamp", table.c.tenant_id, table.c.system_modstamp)
    return table


accounts = _canonical_table(
    "accounts",
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("domain", sa.Text, nullable=True),
    sa.Column("website", sa.Text, nullable=True),
    sa.Column("industry", sa.Text, nullable=True),
    sa.Column("employee_count", sa.Integer, nullable=True),
    sa.Column("annual_revenue", sa.Float, nullable=True),
)

persons = _canonical_table(
    "persons",
    sa.Column("email", sa.Text, nullable=True),
    sa.Column("first_name", sa.Text, nullable=True),
    sa.Column("last_name", sa.Text, nullable=True),
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("phone", sa.Text, nullable=True),
    sa.Column("account_external_id", RECORD_ID, nullable=True),
    # Set on every email twin but the survivor (store/duplicates.py says which row survives):
    # the survivor's external id. Such rows are not in the live set.
    sa.Column("duplicate_of", RECORD_ID, nullable=True),
    # The Salesforce object of the row: a Contact or a Lead (`EntityRows` owner).
    sa.Column("source_object", sa.String(16), nullable=False, server_default="Contact"),
    # Lead fields; empty on Contacts. A converted Lead names the Contact and Account it became
    # and is not in the live set: its Contact is the live person.
    sa.Column("company", sa.Text, nullable=True),
    sa.Column("lead_status", sa.Text, nullable=True),
    sa.Column("lead_source", sa.Text, nullable=True),
    sa.Column("is_converted", sa.Boolean, nullable=True),
    sa.Column("converted_contact_external_id", RECORD_ID, nullable=True),
    sa.Column("converted_account_external_id", RECORD_ID, nullable=True),
    _in_check("source_object", PERSON_SOURCE_OBJECTS, "source_object"),
)
# Each load of persons finds the rows of the tenant's emails it touches (store/duplicates.py). The
# tenant leads so that the index answers the whole filter: on the email alone (migration 0007),
# SQLite read every person of the tenant instead (migration 0008).
sa.Index("ix_persons_tenant_id_email", persons.c.tenant_id, persons.c.email)
# The emails of marked twins only (a partial index: unmarked rows, nearly all, never enter it), so
# that finding the emails holding a mark reads only the marked rows (migration 0012).
_MARKED = persons.c.duplicate_of.is_not(None)
sa.Index(
    "ix_persons_tenant_id_email_marked",
    persons.c.tenant_id,
    persons.c.email,
    sqlite_where=_MARKED,
    postgresql_where=_MARKED,
)

opportunities = _canonical_table(
    "opportunities",
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("stage", sa.Text, nullable=True),
    sa.Column("close_date", sa.Date, nullable=True),
    sa.Column("amount", sa.Float, nullable=True),
    sa.Column("account_external_id", RECORD_ID, nullable=True),
)


ACTIVITY_KINDS = ("task", "event")

activities = _canonical_table(
    "activities",
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("subtype", sa.Text, nullable=True),
    sa.Column("subject", sa.Text, nullable=True),
    sa.Column("status", sa.Text, nullable=True),
    # When it happened, as the sync derives it (sync/derive.py); the gates require it.
    sa.Column("occurred_at", UTCDateTime, nullable=True),
    sa.Column("duration_seconds", sa.Integer, nullable=True),
    # WhoId and WhatId are polymorphic: the object each points at, from the Id's key prefix.
    sa.Column("who_external_id", RECORD_ID, nullable=True),
    sa.Column("who_object", sa.String(32), nullable=True),
    sa.Column("what_external_id", RECORD_ID, nullable=True),
    sa.Column("what_object", sa.String(32), nullable=True),
    sa.Column("account_external_id", RECORD_ID, nullable=True),
    sa.Column("is_closed", sa.Boolean, nullable=True),
    # Salesforce archives activities after about a year; only queryAll returns them then.
    sa.Column("is_archived", sa.Boolean, nullable=True),
    _in_check("kind", ACTIVITY_KINDS, "kind"),
)


def is_live(table: sa.Table) -> sa.ColumnElement[bool]:
    """The live set of a canonical table: not deleted in Salesforce and, for persons, neither an
    email twin of another row nor a converted Lead. Scoring, writeback and row counts read only
    these rows."""
    live = table.c.is_deleted.is_(sa.false())
    if "duplicate_of" in table.c:
        live = sa.and_(live, table.c.duplicate_of.is_(None))
    if "is_converted" in table.c:
        live = sa.and_(live, table.c.is_converted.is_not(sa.true()))
    return live


CANONICAL_TABLES: dict[str, sa.Table] = {
    "accounts": accounts,
    "persons": persons,
    "opportunities": opportunities,
    "activities": activities,
}
"""By table name."""


@dataclass(frozen=True)
class EntityRows:
    """Where one synced entity's rows are: its canonical table and, when the table holds more
    than one entity, the column whose value marks this entity's rows (`owner`).

    Salesforce Ids are unique across an org's objects, so a statement about given external ids
    needs no owner filter; one about all of an entity's rows (counts, listings, the live set)
    does, through `of_tenant`. A row written for the entity carries `owner_values`."""

    table: sa.Table
    owner: tuple[str, str] | None = None

    def of_tenant(self, tenant_id: str) -> sa.ColumnElement[bool]:
        """The tenant's rows of this entity."""
        clause = self.table.c.tenant_id == tenant_id
        if self.owner is None:
            return clause
        column, value = self.owner
        return sa.and_(clause, self.table.c[column] == value)

    def stored_for(self, conn: sa.Connection, tenant_id: str) -> bool:
        """Whether the tenant has any row of this entity (deleted ones included)."""
        exists = sa.select(sa.literal(1)).where(self.of_tenant(tenant_id)).limit(1)
        return conn.execute(exists).first() is not None

    @property
    def owner_values(self) -> dict[str, str]:
        """The column values every row of this entity is written with."""
        return {} if self.owner is None else {self.owner[0]: self.owner[1]}


ENTITY_ROWS: dict[str, EntityRows] = {
    "accounts": EntityRows(accounts),
    "persons": EntityRows(persons, ("source_object", "Contact")),
    "leads": EntityRows(persons, ("source_object", "Lead")),
    "opportunities": EntityRows(opportunities),
    "tasks": EntityRows(activities, ("kind", "task")),
    "events": EntityRows(activities, ("kind", "event")),
}
"""By entity key (`sync.entities.Entity.name`)."""


def entity_rows(entity: str) -> EntityRows:
    """Where the rows of the entity keyed `entity` are."""
    try:
        return ENTITY_ROWS[entity]
    except KeyError:
        raise KeyError(f"no canonical rows for entity {entity!r}") from None


quality_failures = sa.Table(
    "quality_failures",
    metadata,
    sa.Column("tenant_id", TENANT_ID, primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("external_id", RECORD_ID, primary_key=True),
    sa.Column("stage", sa.String(64), primary_key=True),
    sa.Column("field", sa.String(255), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", json_type(), nullable=True),
    # The quarantined version's SystemModstamp (None when it could not be read).
    sa.Column("system_modstamp", UTCDateTime, nullable=True),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
)

scores = sa.Table(
    "scores",
    metadata,
    sa.Column("tenant_id", TENANT_ID, primary_key=True),
    sa.Column("entity_type", sa.String(32), primary_key=True),
    sa.Column("external_id", RECORD_ID, primary_key=True),
    sa.Column("fit_score", sa.Float, nullable=True),
    sa.Column("engagement_score", sa.Float, nullable=True),
    sa.Column("combined_score", sa.Float, nullable=True),
    sa.Column("tier", sa.String(16), nullable=True),
    sa.Column("scored_at", UTCDateTime, nullable=False),
)

writeback_state = sa.Table(
    "writeback_state",
    metadata,
    sa.Column("tenant_id", TENANT_ID, primary_key=True),
    sa.Column("entity_type", sa.String(32), primary_key=True),
    sa.Column("external_id", RECORD_ID, primary_key=True),
    # The field values last sent with a final answer: accepted (last_status 'success'), or refused
    # for good ('failed'), so neither is sent again until the values or the mapping change.
    sa.Column("last_written_values", json_type(), nullable=True),
    sa.Column("last_status", sa.String(16), nullable=True),
    sa.Column("last_error_code", sa.String(64), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    # The refused record's `errors[].fields`, as Salesforce sent them.
    sa.Column("last_error_fields", json_type(), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_attempt_at", UTCDateTime, nullable=True),
    sa.Column("written_at", UTCDateTime, nullable=True),
    # The values of the batch in flight: set before its request, cleared with its outcomes. Set
    # when a run starts, the last run died mid-request; the record is read back, not resent.
    sa.Column("sending_values", json_type(), nullable=True),
)

# One row per started OAuth flow; consuming it (setting `consumed_at`) makes the state single use.
oauth_states = sa.Table(
    "oauth_states",
    metadata,
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("tenant_id", TENANT_ID, nullable=False),
    sa.Column("connector_id", sa.String(64), nullable=False),
    # The PKCE code verifier, encrypted like the tokens (it is a credential until used).
    sa.Column("code_verifier_ct", sa.Text, nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("consumed_at", UTCDateTime, nullable=True),
    # SHA-256 (hex) of the nonce cookie of the browser that started the flow.
    sa.Column("binding_hash", sa.String(64), nullable=True),
    # The operator credential whose session started the flow.
    sa.Column("started_by", sa.String(64), nullable=True),
    sa.Index("ix_oauth_states_expires_at", "expires_at"),
)

# Bearer credentials for the web app, stored as SHA-256 hashes; tenant_id NULL means admin.
operator_credentials = sa.Table(
    "operator_credentials",
    metadata,
    sa.Column("credential_id", sa.String(64), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("tenant_id", TENANT_ID, nullable=True),
    sa.Column("label", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    # Sessions issued before this time are refused (logout ends them on the server).
    sa.Column("sessions_valid_after", UTCDateTime, nullable=True),
)
