"""SOQL injection through everything that can reach a query: mapping sources, targets and
transforms stored behind the app's back, field and relationship names in describe results, the
stored sObject name, the sync cursor and the tenant id.

Each attack runs a real sync (or the mapping page) against the emulator, which counts the calls it
serves: a refused attack has sent no query at all, and a harmless one sent exactly the query the
builder makes, which the emulator's own parser reads back field by field.

What other folders already cover is listed in the table of `security/__init__.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from gtm_pipeline.emulator.errors import EmulatorError
from gtm_pipeline.emulator.soql_syntax import parse
from gtm_pipeline.store.mappings import replace_mapping_rows
from gtm_pipeline.store.tables import field_mappings, persons, sync_state
from gtm_pipeline.sync.entities import PERSONS
from gtm_pipeline.sync.mapping import MappingError
from gtm_pipeline.sync.runner import SyncOptions, sync_entity
from gtm_pipeline.sync.soql import SoqlBuildError
from gtm_pipeline_tests.security.attacks import attempt
from gtm_pipeline_tests.support.security import snapshot
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.web.test_mapping_page import form_state

TENANT = "acme"
INJECTIONS = [
    "Title FROM Contact WHERE Id != null",
    "Title, (SELECT Id FROM User)",
    "Title' OR Name != '",
    "Title--",
    "Title;DELETE",
    "Title\nFROM User",
    "Title\u200b",
    "Account.Name FROM User",
    "Account..Name",
    "A.B.C.D.E.F",
    "Title)",
    "Title%27",
    "Ti tle",
    "",
    "x" * 81,
]


def _calls(emulator) -> dict[str, int]:
    calls = emulator.control.stats()["calls"]
    return {kind: calls.get(kind, 0) for kind in ("query", "queryAll", "query_more", "describe")}


def _store_raw_mapping(engine: sa.Engine, **row: Any) -> None:
    """A mapping row written straight to the table, as a bug or a hand edit could."""
    full = {"target_field": "title", "source_path": "Title", "transform": "none",
            "required": False, "sf_object": "Contact", **row}  # fmt: skip
    with engine.begin() as conn:
        replace_mapping_rows(conn, TENANT, PERSONS.name, [full])


class SoqlSpy:
    """Records every SOQL text the client is asked to run (then runs it)."""

    def __init__(self, client, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[str] = []
        real = client.query_pages

        def query_pages(soql: str, **kwargs: Any):
            self.sent.append(soql)
            return real(soql, **kwargs)

        monkeypatch.setattr(client, "query_pages", query_pages)


@pytest.fixture()
def client(emulator):  # noqa: F811 - the connect emulator, with a plain token client
    return client_for(emulator)


HOSTILE_ROWS = [{"source_path": s} for s in INJECTIONS] + [
    {"target_field": "custom_fields.x') OR 1=1"},
    {"target_field": "title FROM User"},
    {"transform": "custom:__import__('os')"},
    {"source_path": "Name", "target_field": "external_id"},
]


def test_a_hostile_stored_mapping_stops_the_sync_before_any_call(emulator, client, store_engine):
    for row in HOSTILE_ROWS:
        _store_raw_mapping(store_engine, **row)
        before = _calls(emulator)
        with attempt("soql injection: stored mapping"):
            with pytest.raises(MappingError):
                sync_entity(client, store_engine, TENANT, PERSONS, SyncOptions(full=True))
            assert _calls(emulator) == before, row  # not even a describe: names come first
            with store_engine.connect() as conn:
                count = conn.execute(sa.select(sa.func.count()).select_from(persons))
                assert count.scalar_one() == 0


def test_a_hostile_stored_sobject_name_is_never_used(emulator, client, store_engine, monkeypatch):
    _store_raw_mapping(store_engine, sf_object="User WHERE Id != null", source_path="Title")
    spy = SoqlSpy(client, monkeypatch)
    with attempt("soql injection: stored sObject name"):
        sync_entity(client, store_engine, TENANT, PERSONS, SyncOptions(full=True))
        assert spy.sent and all(parse(soql).sobject == "Contact" for soql in spy.sent)
        assert not any("User" in soql for soql in spy.sent)


def _sent_is_the_builders(sent: list[str]) -> None:
    for soql in sent:
        query = parse(soql)  # the emulator reads it back: one object, plain paths
        assert query.sobject == "Contact"
        assert all(all(part.isidentifier() for part in p.parts) for p in query.select)


def test_a_hostile_cursor_id_never_reaches_the_query(emulator, client, store_engine, monkeypatch):
    sync_entity(client, store_engine, TENANT, PERSONS, SyncOptions(full=True))
    hostile = "003' OR Id != null OR Id = '"
    with store_engine.begin() as conn:
        conn.execute(sa.update(sync_state).values(cursor_id=hostile))
    spy = SoqlSpy(client, monkeypatch)
    with attempt("soql injection: cursor id"):
        sync_entity(client, store_engine, TENANT, PERSONS)
        assert spy.sent and not any(" OR " in soql or "'" in soql for soql in spy.sent)
        _sent_is_the_builders(spy.sent)


def test_a_hostile_cursor_stamp_on_sqlite_is_refused_before_any_query(
    emulator, client, store_engine, monkeypatch
):
    if store_engine.dialect.name != "sqlite":
        # PostgreSQL's timestamptz column cannot hold text at all: the write itself is refused.
        with (
            attempt("soql injection: cursor stamp"),
            pytest.raises(sa.exc.DBAPIError),
            store_engine.begin() as conn,
        ):
            conn.execute(
                    sa.text("INSERT INTO sync_state (tenant_id, entity, cursor_modstamp) "
                            "VALUES ('acme', 'persons', '2024-01-01T00:00:00Z OR Id != null')")
                )  # fmt: skip
        return
    with store_engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO sync_state (tenant_id, entity, cursor_modstamp, cursor_id) "
                    "VALUES ('acme', 'persons', '2024-01-01 00:00:00 OR Id != null', 'x')")
        )  # fmt: skip
    before = _calls(emulator)
    with attempt("soql injection: cursor stamp"):
        with pytest.raises(ValueError):
            sync_entity(client, store_engine, TENANT, PERSONS)
        assert _calls(emulator) == before


def test_a_hostile_tenant_id_is_data_not_soql_or_sql(emulator, client, store_engine, monkeypatch):
    hostile = "acme'; DROP TABLE persons; --"
    spy = SoqlSpy(client, monkeypatch)
    with attempt("soql injection: tenant id"):
        stats = sync_entity(client, store_engine, hostile, PERSONS, SyncOptions(full=True))
        assert not any(hostile in soql or "DROP" in soql for soql in spy.sent)
        _sent_is_the_builders(spy.sent)
        with store_engine.connect() as conn:
            tenants = conn.execute(sa.select(persons.c.tenant_id).distinct()).scalars().all()
        assert tenants == [hostile] and stats.rows_loaded > 0  # bound as a value, table intact


# -- names that come from the org's describe ---------------------------------------------------

HOSTILE_FIELDS = [
    {"name": "Title FROM User WHERE Id != null", "label": "<script>alert(1)</script>",
     "type": "string", "custom": True, "updateable": True},
    {"name": "Evil__c, (SELECT Id FROM User)", "label": "Evil <img src=x onerror=alert(2)>",
     "type": "string", "custom": True, "updateable": True},
    {"name": "Evil_Ref__c", "label": "Evil ref", "type": "reference", "custom": True,
     "relationshipName": "Evil_Ref__r", "referenceTo": ["../../query?q=SELECT+Id+FROM+User"]},
]  # fmt: skip


class HostileDescribe:
    """A tenant client whose Contact describe lists hostile fields next to the real ones."""

    def __init__(self, client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def describe(self, sobject: str) -> dict[str, Any]:
        document = self._client.describe(sobject)
        if sobject == "Contact":
            return {**document, "fields": [*document["fields"], *HOSTILE_FIELDS]}
        return document


@pytest.fixture()
def hostile_web(web, monkeypatch):
    real = web.app.state.tenant_client
    monkeypatch.setattr(web.app.state, "tenant_client", lambda t: HostileDescribe(real(t)))
    return web


DESCRIBED_INJECTIONS = ["Title FROM User WHERE Id != null", "Evil__c, (SELECT Id FROM User)",
                        "Evil_Ref__r.Name", "Evil_Ref__r.Id"]  # fmt: skip


def test_hostile_names_in_describe_are_shown_escaped_and_refused_when_picked(
    hostile_web, tenants, make_operator, emulator, store_engine
):
    admin = hostile_web.login(make_operator())
    path = f"/connectors/{TENANT}/mapping?entity=persons"
    page = admin.get(path)
    assert page.status_code == 200
    with attempt("html injection: describe labels"):
        assert "<script>alert(1)" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    for source in DESCRIBED_INJECTIONS:
        form = {**form_state(page.text).values, "new_key": "evil", "new_source": source}
        before, calls = snapshot(store_engine), _calls(emulator)
        with attempt("soql injection: describe names"):
            answer = admin.post(path, data=form)
            assert answer.status_code == 400, (source, answer.status_code)
            assert "The mapping was not saved" in answer.text
            assert snapshot(store_engine) == before
            assert _calls(emulator)["query"] == calls["query"]
            assert _calls(emulator)["query_more"] == calls["query_more"]


def test_stored_mappings_are_checked_before_each_run_even_when_describe_lists_the_name(
    emulator, client, store_engine
):
    with store_engine.begin() as conn:
        conn.execute(sa.delete(field_mappings))
    hostile = HostileDescribe(client)
    for source in DESCRIBED_INJECTIONS:
        _store_raw_mapping(store_engine, target_field="custom_fields.evil", source_path=source)
        before = _calls(emulator)
        with attempt("soql injection: describe names"):
            with pytest.raises(MappingError):
                sync_entity(hostile, store_engine, TENANT, PERSONS)
            after = _calls(emulator)
            assert after["query"] == before["query"] and after["queryAll"] == before["queryAll"]


def test_the_builder_refuses_what_the_emulator_would_parse_differently():
    """A last line: even if validation were skipped, the builder refuses every injection."""
    from gtm_pipeline.sync.soql import modified_query

    for text in INJECTIONS:
        with attempt("soql injection: builder"):
            with pytest.raises(SoqlBuildError):
                modified_query("Contact", [text], datetime(2024, 1, 1, tzinfo=UTC))
            with pytest.raises(SoqlBuildError):
                modified_query(text, ["Title"], None)
    with pytest.raises(EmulatorError):
        parse("SELECT Id FROM Contact WHERE")  # the parser does refuse broken SOQL
