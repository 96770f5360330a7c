"""What every reliability test checks after a run that stopped and after the run that followed.

Built on the sync suite's own checks (gtm_pipeline_tests/sync), so there is one definition of
"reconciles with the truth" in the repository.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from gtm_pipeline.emulator.testing import EmulatorHandle
from gtm_pipeline.sync.entities import SYNC_ORDER
from gtm_pipeline.sync.runner import PageProgress
from gtm_pipeline_tests.sync.test_crash import (
    assert_at_or_past_the_reported_pages,
    assert_counts_equal_the_truth,
    assert_nothing_lost_before_the_cursor,
    assert_nothing_lost_before_the_slice_positions,
)
from gtm_pipeline_tests.sync.test_faults import committed_cursor, reconcile_all


def assert_only_committed_data(
    engine: sa.Engine, emulator: EmulatorHandle, pages: list, *, cursor_held: bool = False
) -> None:
    """After a run that stopped: every page it reported is committed, and the cursor does not
    run ahead of the rows it covers.

    `cursor_held`: the run read through Bulk or in parallel slices, which commit rows before the
    entity's cursor (it moves with the last result set, the last slice), so rows with no cursor
    yet are expected; the slices' own positions and the rest still hold.
    """
    for entity in SYNC_ORDER:
        assert_at_or_past_the_reported_pages(engine, entity, pages)
        assert_nothing_lost_before_the_slice_positions(engine, emulator, entity)
        if cursor_held and committed_cursor(engine, entity.name) is None:
            continue
        assert_nothing_lost_before_the_cursor(engine, emulator, entity)


def assert_exactly_the_truth(engine: sa.Engine, emulator: EmulatorHandle) -> None:
    """After a run that completed: every live record with its values, deletions flagged, one row
    per record, nothing Salesforce does not have."""
    reconcile_all(engine, emulator)
    for entity in SYNC_ORDER:
        assert_counts_equal_the_truth(engine, emulator, entity)


def page_line(page: PageProgress) -> dict:
    """A committed page as the crash child reports it (and the checks above read it)."""
    cursor = page.cursor
    return {
        "entity": page.entity,
        "kind": page.kind,
        "cursor": None if cursor is None else [cursor.system_modstamp.isoformat(), cursor.id],
    }


class InjectAfter:
    """on_page: records committed pages and runs `inject` once, after page number `after`."""

    def __init__(self, after: int, inject: Callable[[], None] = lambda: None) -> None:
        self.after, self.inject = after, inject
        self.pages: list[dict] = []
        self.fired = False

    def __call__(self, page: PageProgress) -> None:
        self.pages.append(page_line(page))
        if len(self.pages) == self.after:
            self.fired = True
            self.inject()
