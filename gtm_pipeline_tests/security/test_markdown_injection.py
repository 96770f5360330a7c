"""HTML, script and Markdown injection through record values and Salesforce messages into the
Markdown tables Dagster shows (quality check failures, writeback failures).

Each table is rendered with a real CommonMark renderer with raw HTML *enabled* (the worst case
for whatever renders it): the only HTML that comes out is the table itself, every row keeps its
four cells, and each cell reads back as the value's text (one line, shortened), so nothing a
record holds can add a tag, a link, an image or a column. Values come from hypothesis (any text)
and, end to end, from a record the emulator serves and the sync quarantines.

What other folders already cover is listed in the table of `security/__init__.py`.
"""

from __future__ import annotations

from html.parser import HTMLParser

import dagster as dg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from gtm_pipeline.defs.checks import quality_check_results
from gtm_pipeline.store.quarantine import failures_for
from gtm_pipeline.sync.entities import PERSONS
from gtm_pipeline.sync.quality import TYPE_COERCION
from gtm_pipeline.sync.quality import failures_markdown as quality_markdown
from gtm_pipeline.sync.runner import SyncOptions, sync_entity
from gtm_pipeline.writeback import WritebackResult
from gtm_pipeline_tests.modes import scaled
from gtm_pipeline_tests.security.attacks import attempt
from gtm_pipeline_tests.support.sync import client_for

RENDER = MarkdownIt("commonmark", {"html": True}).enable("table")
TABLE_TAGS = {"table", "thead", "tbody", "tr", "th", "td"}
HOSTILE = st.sampled_from(
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[click](javascript:alert(1))",
        "![x](http://e.vil/x.png)",
        "<http://e.vil>",
        "a | b | c",
        "`code` **bold** _it_ ~~s~~",
        "&lt;script&gt;",
        "&#60;script&#62;",
        "line\nbreak\r\nand\u2028more",
        "\\| escaped pipe \\",
        "<!-- comment -->",
        "<a href='x'>",
        "]]> <![CDATA[",
    ]
)
VALUES = st.one_of(HOSTILE, st.text(max_size=300), st.lists(HOSTILE, max_size=4).map(" ".join))


class Table(HTMLParser):
    """Tags seen, and the text of each body row's cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.tags.add(tag)
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._cell is not None:
            self._cell.append(data)

    def handle_comment(self, data):  # type: ignore[no-untyped-def]
        self.tags.add("!--")


def rendered(markdown: str) -> Table:
    table = Table()
    table.feed(RENDER.render(markdown))
    return table


def shown(value: object, limit: int) -> str:
    """What a cell should read as: the value's text on one line, shortened with an ellipsis
    (and NUL shown as U+FFFD, as CommonMark requires of every renderer)."""
    text = " ".join(str(value).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("\x00", "\ufffd")


def assert_inert(markdown: str, expected_rows: list[list[str]]) -> None:
    table = rendered(markdown)
    assert table.tags <= TABLE_TAGS, table.tags - TABLE_TAGS
    assert table.rows == expected_rows


@settings(
    max_examples=scaled(150, 3000), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(external_id=VALUES, field=VALUES, reason=VALUES, value=VALUES)
def test_quality_failure_tables_stay_inert(external_id, field, reason, value):
    failure = {"external_id": external_id, "field": field, "reason": reason, "raw": {field: value}}
    with attempt("markdown injection: quality table"):
        assert_inert(
            quality_markdown([failure, failure]),
            [[shown(v, 80) for v in (external_id, field, reason, value)]] * 2,
        )


@settings(
    max_examples=scaled(150, 3000), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(entity_id=VALUES, code=VALUES, field=VALUES, error=VALUES)
def test_writeback_failure_tables_stay_inert(entity_id, code, field, error):
    """A table of plain-text cells (no Markdown to render), each holding the value as given."""
    from gtm_pipeline.defs.writeback_assets import failures_as_table

    result = WritebackResult(
        "person", total=1, failed=1,
        errors=[{"entity_id": entity_id, "code": code, "fields": [field], "error": error}],
    )  # fmt: skip
    with attempt("markdown injection: writeback table"):
        table = failures_as_table([result])
        assert isinstance(table, dg.TableMetadataValue)
        assert {c.type for c in table.schema.columns} == {"string"}
        [record] = table.records
        assert record.data == {
            "entity_type": "person", "record": entity_id, "code": code, "fields": field,
            "error": error,
        }  # fmt: skip


def test_a_hostile_record_from_salesforce_reaches_the_check_table_inert(emulator, store_engine):
    """A Contact whose Title is markup and too long: quarantined by the sync, then tabled."""
    client = client_for(emulator)
    hostile = '<script>alert("t")</script> | <img src=x onerror=alert(1)> [x](javascript:y) '
    title = (hostile * 4)[:300]
    (contact,) = [r for r in emulator.control.truth("Contact") if not r.get("IsDeleted")][:1]
    emulator.control.mutate(
        {"op": "update", "object": "Contact", "id": contact["Id"], "fields": {"Title": title}}
    )
    stats = sync_entity(client, store_engine, "acme", PERSONS, SyncOptions(full=True))
    with store_engine.connect() as conn:
        failures = failures_for(conn, "acme", PERSONS.name)
    ours = [f for f in failures if f["external_id"] == contact["Id"]]
    assert [f["stage"] for f in ours] == [TYPE_COERCION]
    results = quality_check_results(dg.AssetKey(["salesforce", "contacts"]), stats.quality, ours)
    (coercion,) = [r for r in results if r.check_name == TYPE_COERCION]
    markdown = coercion.metadata["first_failures"].value
    with attempt("markdown injection: record from Salesforce"):
        table = rendered(markdown)
        assert table.tags <= TABLE_TAGS
        assert table.rows[0][0] == contact["Id"]
        assert table.rows[0][3] == shown(ours[0]["raw"]["title"], 80)
