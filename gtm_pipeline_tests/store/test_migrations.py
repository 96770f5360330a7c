"""Migrations: from empty to head, idempotent, and matching the tables' metadata exactly."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gtm_pipeline.store import (
    MigrationError,
    current_revision,
    head_revision,
    make_engine,
    metadata,
    upgrade,
)
from gtm_pipeline.store.migrate import VERSION_TABLE, alembic_config
from gtm_pipeline.store.tables import accounts, opportunities, persons, quality_failures
from gtm_pipeline_tests.support.store import T0

EXPECTED_TABLES = {
    "connectors",
    "connector_tokens",
    "field_mappings",
    "sync_state",
    "accounts",
    "persons",
    "opportunities",
    "quality_failures",
    "scores",
    "writeback_state",
}


def _schema_differences(engine: sa.Engine, target: sa.MetaData) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": VERSION_TABLE,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        return compare_metadata(context, target)


def test_upgrade_from_empty_creates_every_table(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        tables = set(sa.inspect(engine).get_table_names())
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    assert tables >= EXPECTED_TABLES
    assert VERSION_TABLE in tables
    assert "alembic_version" not in tables


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO field_mappings (tenant_id, entity, direction, target_field, "
                    "source_path) VALUES ('t1', 'persons', 'sync', 'email', 'Email')"
                )
            )
        upgrade(engine)
        with engine.connect() as conn:
            kept = conn.execute(sa.text("SELECT count(*) FROM field_mappings")).scalar_one()
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    assert kept == 1


def test_migrated_schema_matches_the_metadata(engine: sa.Engine) -> None:
    assert _schema_differences(engine, metadata) == []


def test_schema_comparison_would_notice_a_difference(engine: sa.Engine) -> None:
    """Guards the test above: a column missing from the migrations must show up as a diff."""
    drifted = sa.MetaData()
    for table in metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["persons"].append_column(sa.Column("unmigrated_column", sa.Integer))
    differences = _schema_differences(engine, drifted)
    assert [(d[0], d[2], d[3].name) for d in differences] == [
        ("add_column", "persons", "unmigrated_column")
    ]


def test_downgrade_to_base_and_back(engine: sa.Engine) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert EXPECTED_TABLES.isdisjoint(sa.inspect(engine).get_table_names())
    upgrade(engine)
    assert set(sa.inspect(engine).get_table_names()) >= EXPECTED_TABLES


UNREAD_INDEXES = {
    "persons": "ix_persons_tenant_id_account_external_id",
    "opportunities": "ix_opportunities_tenant_id_account_external_id",
    "quality_failures": "ix_quality_failures_tenant_id_entity_last_seen_at",
    "writeback_state": "ix_writeback_state_tenant_id_last_status",
}


def _index_names(engine: sa.Engine, table: str) -> set[str]:
    return {index["name"] for index in sa.inspect(engine).get_indexes(table)}


def test_0004_drops_the_unread_indexes_and_its_downgrade_puts_them_back(engine: sa.Engine) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    for table, index in UNREAD_INDEXES.items():
        assert index in _index_names(engine, table)
    upgrade(engine)
    for table, index in UNREAD_INDEXES.items():
        assert index not in _index_names(engine, table)
    assert "ix_persons_tenant_id_system_modstamp" in _index_names(engine, "persons")


def test_every_table_has_its_documented_primary_key(engine: sa.Engine) -> None:
    inspector = sa.inspect(engine)
    for name, table in metadata.tables.items():
        reflected = inspector.get_pk_constraint(name)["constrained_columns"]
        assert reflected == [column.name for column in table.primary_key.columns], name
    assert inspector.get_pk_constraint("field_mappings")["constrained_columns"] == [
        "tenant_id",
        "entity",
        "direction",
        "target_field",
    ]


def test_a_revision_from_a_newer_release_is_reported_clearly(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE gtm_store_alembic_version SET version_num = 'f00dfeed'"))
    with pytest.raises(MigrationError, match="older than the one that last migrated"):
        upgrade(engine)


def test_unreachable_database_is_reported_without_the_password() -> None:
    url = "postgresql+psycopg://reader:hunter2@127.0.0.1:1/warehouse?connect_timeout=2"
    with pytest.raises(MigrationError, match="could not migrate the store") as raised:
        upgrade(url)
    assert "hunter2" not in str(raised.value)
    assert "reader:***@127.0.0.1:1/warehouse" in str(raised.value)


def test_no_store_module_shadows_a_table_of_the_same_name():
    """Importing a submodule binds its name on the package: it must not hide a table export."""
    import importlib
    import pkgutil

    import sqlalchemy as sa

    import gtm_pipeline.store as store

    for module in pkgutil.iter_modules(store.__path__):
        importlib.import_module(f"gtm_pipeline.store.{module.name}")
    for name in store.CANONICAL_TABLES | {"connectors": 0, "scores": 0, "writeback_state": 0}:
        assert isinstance(getattr(store, name), sa.Table), name


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns(table)}


def _0004_rows(engine: sa.Engine) -> None:
    """Rows as a 0004 store holds them: only the columns that revision has."""
    # Every row names every column: an executemany INSERT takes its columns from the first row.
    stamp = {"system_modstamp": T0, "synced_at": T0, "is_deleted": False, "deleted_at": None}
    gone = {"is_deleted": True, "deleted_at": T0}
    person_rows = [
        ("t1", "003B", "shared@x.io", {}),
        ("t1", "003A", "shared@x.io", {}),  # the smallest id of the group: the survivor
        ("t1", "003C", "shared@x.io", gone),  # deleted: no mark, and not a candidate
        ("t1", "003a", "case@x.io", {}),  # byte order: "003Z" < "003a" whatever the collation
        ("t1", "003Z", "case@x.io", {}),
        ("t1", "003D", "solo@x.io", {}),
        ("t1", "003E", None, {}),
        ("t2", "003F", "shared@x.io", {}),  # another tenant's twin is no twin
    ]
    with engine.begin() as conn:
        conn.execute(
            sa.insert(persons),
            [
                {"tenant_id": t, "external_id": i, "email": e, **stamp, **extra}
                for t, i, e, extra in person_rows
            ],
        )
        conn.execute(
            sa.insert(accounts),
            [
                {"tenant_id": "t1", "external_id": "001A", "name": "Live", **stamp},
                {"tenant_id": "t1", "external_id": "001X", "name": "Gone", **stamp, **gone},
            ],
        )
        conn.execute(
            sa.insert(opportunities),
            [{"tenant_id": "t1", "external_id": "006X", "name": "Gone", **stamp, **gone}],
        )
        failure = {"tenant_id": "t1", "field": "email", "reason": "r", "raw": {},
                   "first_seen_at": T0, "last_seen_at": T0}  # fmt: skip
        conn.execute(
            sa.insert(quality_failures),
            [
                {**failure, "entity": "persons", "external_id": "003G", "stage": "deduplication"},
                {**failure, "entity": "persons", "external_id": "003H", "stage": "required_fields"},
            ],
        )


def test_0005_marks_twins_and_reasons_and_its_downgrade_removes_the_columns(
    engine: sa.Engine,
) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    assert "duplicate_of" not in _columns(engine, "persons")
    assert "ix_persons_tenant_id_email" not in _index_names(engine, "persons")
    _0004_rows(engine)

    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    for table in ("accounts", "persons", "opportunities"):
        assert "deleted_reason" in _columns(engine, table), table
    assert "duplicate_of" in _columns(engine, "persons")
    assert "system_modstamp" in _columns(engine, "quality_failures")
    [index] = [i for i in sa.inspect(engine).get_indexes("persons")
               if i["name"] == "ix_persons_tenant_id_email"]  # fmt: skip
    assert index["column_names"] == ["tenant_id", "email"]
    with engine.connect() as conn:
        persons = conn.execute(
            sa.text("SELECT tenant_id, external_id, duplicate_of, deleted_reason FROM persons")
        ).all()
        reasons = {
            table.name: dict(
                conn.execute(sa.select(table.c.external_id, table.c.deleted_reason)).all()
            )
            for table in (accounts, opportunities)
        }
        failures = conn.execute(
            sa.text("SELECT external_id, stage, system_modstamp FROM quality_failures")
        ).all()
    assert {(t, i): d for t, i, d, _ in persons} == {
        ("t1", "003A"): None,
        ("t1", "003B"): "003A",
        ("t1", "003C"): None,
        ("t1", "003Z"): None,
        ("t1", "003a"): "003Z",
        ("t1", "003D"): None,
        ("t1", "003E"): None,
        ("t2", "003F"): None,
    }
    assert {i: r for _, i, _, r in persons if r is not None} == {"003C": "deleted"}
    assert reasons == {"accounts": {"001A": None, "001X": "deleted"},
                       "opportunities": {"006X": "deleted"}}  # fmt: skip
    # The former email-duplicate quarantine is gone; other entries stay, their stamp unknown.
    assert [tuple(f) for f in failures] == [("003H", "required_fields", None)]

    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    for table in ("accounts", "persons", "opportunities"):
        assert "deleted_reason" not in _columns(engine, table), table
    assert "duplicate_of" not in _columns(engine, "persons")
    assert "system_modstamp" not in _columns(engine, "quality_failures")
    assert "ix_persons_tenant_id_email" not in _index_names(engine, "persons")
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT count(*) FROM persons")).scalar_one()
    assert kept == len(persons)  # the rows stay; only the columns go
    upgrade(engine)
    assert _schema_differences(engine, metadata) == []


def test_0007_swaps_the_email_index_and_adds_the_pending_flag(engine: sa.Engine) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    assert "ix_persons_tenant_id_email" in _index_names(engine, "persons")
    assert "twin_marks_pending" not in _columns(engine, "sync_state")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO sync_state (tenant_id, entity) VALUES ('t1', 'persons')"))

    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0007")
    names = _index_names(engine, "persons")
    assert "ix_persons_email" in names and "ix_persons_tenant_id_email" not in names
    with engine.connect() as conn:
        pending = conn.execute(sa.text("SELECT twin_marks_pending FROM sync_state")).scalar_one()
        method = (
            conn.execute(sa.text(
                "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
                "WHERE c.relname = 'ix_persons_email'"
            )).scalar_one()
            if engine.dialect.name == "postgresql"
            else "btree"
        )  # fmt: skip
    assert not pending
    assert method == ("hash" if engine.dialect.name == "postgresql" else "btree")

    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    assert "ix_persons_tenant_id_email" in _index_names(engine, "persons")
    assert "twin_marks_pending" not in _columns(engine, "sync_state")
    upgrade(engine)
    assert _schema_differences(engine, metadata) == []


def test_0008_puts_the_tenant_back_in_front_of_the_email_index(engine: sa.Engine) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0007")
    names = _index_names(engine, "persons")
    assert "ix_persons_email" in names and "ix_persons_tenant_id_email" not in names
    upgrade(engine)
    names = _index_names(engine, "persons")
    assert "ix_persons_tenant_id_email" in names and "ix_persons_email" not in names
    assert _schema_differences(engine, metadata) == []


def test_0009_adds_the_activities_table_and_takes_it_away_again(engine: sa.Engine) -> None:
    assert "activities" in sa.inspect(engine).get_table_names()
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0008")
    assert "activities" not in sa.inspect(engine).get_table_names()
    upgrade(engine)
    assert "ix_activities_tenant_id_system_modstamp" in _index_names(engine, "activities")
    assert _schema_differences(engine, metadata) == []


def test_0010_adds_the_lead_columns_and_its_downgrade_drops_them_with_the_leads(
    engine: sa.Engine,
) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0009")
    assert "source_object" not in _columns(engine, "persons")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO persons (tenant_id, external_id, email, system_modstamp, synced_at) "
            "VALUES ('t1', '003A', 'a@x.io', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))  # fmt: skip
    upgrade(engine)
    assert _schema_differences(engine, metadata) == []
    with engine.begin() as conn:
        existing = conn.execute(sa.text(
            "SELECT source_object, is_converted FROM persons WHERE external_id = '003A'"
        )).one()  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO persons (tenant_id, external_id, source_object, is_converted, "
            "system_modstamp, synced_at) "
            "VALUES ('t1', '00QA', 'Lead', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))  # fmt: skip
    assert tuple(existing) == ("Contact", None)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO persons (tenant_id, external_id, source_object, system_modstamp, "
            "synced_at) VALUES ('t1', '001A', 'Account', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))  # fmt: skip

    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0009")
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT external_id FROM persons")).scalars().all()
    assert left == ["003A"]
    upgrade(engine)
    assert _schema_differences(engine, metadata) == []


def test_0011_adds_the_slice_plans_and_takes_them_away_again(engine: sa.Engine) -> None:
    assert "sync_slices" in sa.inspect(engine).get_table_names()
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0010")
    assert "sync_slices" not in sa.inspect(engine).get_table_names()
    upgrade(engine)
    assert _schema_differences(engine, metadata) == []


def test_0012_adds_the_partial_index_of_marked_twins_and_takes_it_away_again(
    engine: sa.Engine,
) -> None:
    assert "ix_persons_tenant_id_email_marked" in _index_names(engine, "persons")
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0011")
    assert "ix_persons_tenant_id_email_marked" not in _index_names(engine, "persons")
    upgrade(engine)
    assert _schema_differences(engine, metadata) == []
