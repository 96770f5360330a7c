"""Several entities of one tenant synced at once: what one sync run does.

A full sync spends most of its time waiting on Salesforce, and one entity's read leaves gaps
(its count and slice planning before its slices start, its last pages' gates and load after
they end). Reading the entities at once fills them: while one waits, another's pages
arrive or are loaded.

Entities that write one table sync one after another, in a lane of their own: Contacts then
Leads (`persons`, whose email twins are tenant-wide), Tasks then Events (`activities`). Lanes
run at once, one thread each; every entity keeps its own gates and writer (`sync/runner.py`), so
a table still has one writer at a time. An entity that points at others (activities point at
every scored entity) starts once those are done, and is skipped when one of them failed.

All lanes share one client (each entity counts its calls through a view of it) and one budget
of open query cursors (`ReadSlots` of `options.parallel_reads`): a REST slice or a serial read
holds a slot while its cursor is open, so the run never keeps more cursors open than one
entity's parallel read would, however many entities read at once.

Everything is handed to the caller in its own thread, in the order it happened: each committed
batch (`PageProgress`) and each entity's end (`EntityOutcome`). Closing the iterator early stops
each running entity after its next committed batch (its cursor stays with the rows it covers)
and waits for the lanes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.store.tables import entity_rows
from gtm_pipeline.sync.entities import ACTIVITY_ENTITIES, SCORED_ENTITIES, SYNC_ORDER, Entity
from gtm_pipeline.sync.heap import long_lived_heap_frozen
from gtm_pipeline.sync.runner import PageProgress, SyncOptions, SyncStats, sync_entity
from gtm_pipeline.sync.slice_reader import ReadSlots


@dataclass(frozen=True)
class EntityOutcome:
    """How one entity's sync ended: its stats, the error that stopped it, or why it never ran."""

    entity: Entity
    stats: SyncStats | None = None
    error: BaseException | None = None
    skipped: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.stats is not None


class SyncStopped(GtmError):
    """Raised in a lane when the caller stopped reading the run's events: the entity stops
    after the batch it just committed, and nobody is left to report it to."""

    retryable = False


def waits_for(entity: Entity) -> tuple[Entity, ...]:
    """The entities `entity` starts after: activities after every scored entity (they point at
    them); the scored ones after none."""
    return SCORED_ENTITIES if entity in ACTIVITY_ENTITIES else ()


def lanes(entities: Sequence[Entity]) -> list[list[Entity]]:
    """`entities` grouped by the table they write, each group in sync order."""
    by_table: dict[str, list[Entity]] = {}
    for entity in SYNC_ORDER:
        if entity in entities:
            by_table.setdefault(entity_rows(entity.name).table.name, []).append(entity)
    return list(by_table.values())


def sync_entities(
    client: SalesforceClient,
    engine: sa.Engine,
    tenant_id: str,
    entities: Sequence[Entity],
    options: SyncOptions,
) -> Iterator[PageProgress | EntityOutcome]:
    """Sync `entities` of one tenant at once (see the module's docstring); yields every
    committed batch and every entity's outcome, one outcome an entity."""
    with long_lived_heap_frozen():  # before the lanes start: it caps malloc's arenas too
        yield from _run_lanes(
            _Lanes(client, engine, tenant_id, options, [e for e in SYNC_ORDER if e in entities])
        )


def _run_lanes(run: _Lanes) -> Iterator[PageProgress | EntityOutcome]:
    threads = [
        threading.Thread(target=run.drive, args=(lane,), name=f"lane-{lane[0].name}", daemon=True)
        for lane in lanes(run.entities)
    ]
    for thread in threads:
        thread.start()
    try:
        ended = 0
        while ended < len(run.entities):
            event = run.events.get()
            ended += isinstance(event, EntityOutcome)
            yield event
    finally:
        run.stop.set()
        for thread in threads:
            thread.join()


@dataclass
class _Lanes:
    client: SalesforceClient
    engine: sa.Engine
    tenant_id: str
    options: SyncOptions
    entities: list[Entity]

    def __post_init__(self) -> None:
        self.events: queue.Queue[PageProgress | EntityOutcome] = queue.Queue()
        self.stop = threading.Event()
        self.slots = ReadSlots(self.options.parallel_reads)
        self._ended = {e.name: threading.Event() for e in self.entities}
        self._succeeded: set[str] = set()

    def drive(self, lane: Sequence[Entity]) -> None:
        for entity in lane:
            outcome = self._outcome(entity)
            if outcome.succeeded:
                self._succeeded.add(entity.name)
            self._ended[entity.name].set()
            self.events.put(outcome)

    def _outcome(self, entity: Entity) -> EntityOutcome:
        failed = self._failed_prerequisites(entity)
        if failed:
            return EntityOutcome(entity, skipped=f"{', '.join(failed)} did not sync")
        if self.stop.is_set():
            return EntityOutcome(entity, skipped="the run was stopped")
        try:
            stats = sync_entity(
                self.client.counting_view(),  # its own `api_calls`
                self.engine,
                self.tenant_id,
                entity,
                self.options,
                on_page=self._reported,
                read_slots=self.slots,
            )
        except Exception as exc:  # noqa: BLE001 - handed to the caller with its entity
            return EntityOutcome(entity, error=exc)
        return EntityOutcome(entity, stats=stats)

    def _failed_prerequisites(self, entity: Entity) -> list[str]:
        """The entities of this run `entity` waits for that did not sync, once all have ended."""
        prerequisites = [e.name for e in waits_for(entity) if e.name in self._ended]
        for name in prerequisites:
            self._ended[name].wait()
        return [name for name in prerequisites if name not in self._succeeded]

    def _reported(self, page: PageProgress) -> None:
        if self.stop.is_set():
            raise SyncStopped(f"{page.entity}: stopped after a committed batch")
        self.events.put(page)
