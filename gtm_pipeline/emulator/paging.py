"""Query cursors (`nextRecordsUrl` locators) and the page-size policy.

Salesforce promises little here: the batch size asked for is a hint, cursors die after two days
(or when too many are open), and an unknown locator is a 400 `INVALID_QUERY_LOCATOR`. The policy
can make the emulator serve other page sizes than asked, deterministically, so connectors that
assume page sizes fail in tests instead of in production.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gtm_pipeline.emulator.errors import EmulatorError
from gtm_pipeline.emulator.ids import make_id

MIN_BATCH = 200
MAX_BATCH = 2000
DEFAULT_BATCH = 2000
QUERY_LOCATOR_PREFIX = "01g"
PAGE_MODES = ("asked", "fixed", "random")


class PagedResult(Protocol):
    """What the core's QueryResult offers: a snapshot to slice into pages.

    `total_size` is the query's totalSize; `served_size` how many records the pages hold
    together (the same, except for COUNT(): its totalSize is the count and it has no records).
    """

    total_size: int
    served_size: int

    def page(self, start: int, stop: int) -> list[dict]: ...


def invalid_locator() -> EmulatorError:
    return EmulatorError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")


def batch_size_from_header(header: str | None) -> int:
    """The batch size a client asked for in `Sforce-Query-Options`, clamped to 200..2000."""
    if not header:
        return DEFAULT_BATCH
    for option in header.split(","):
        name, _, value = option.partition("=")
        if name.strip().lower() != "batchsize":
            continue
        value = value.strip()
        if not value.isdigit():
            raise EmulatorError(
                400, "INVALID_QUERY_OPTIONS", "Sforce-Query-Options batchSize must be a number"
            )
        return max(MIN_BATCH, min(MAX_BATCH, int(value)))
    return DEFAULT_BATCH


@dataclass(frozen=True)
class PageSizePolicy:
    """How big a page really is. `asked`: the client's batch size; `fixed`: always `size`;
    `random`: a seeded draw in [minimum, asked], stable for a given cursor and offset so a
    retried page has the same size."""

    mode: str = "asked"
    size: int = DEFAULT_BATCH
    minimum: int = 1
    seed: int = 0

    @classmethod
    def from_json(cls, spec: Any) -> PageSizePolicy:
        """Read `null`, an integer (fixed size) or `{"mode", "size", "minimum", "seed"}`."""
        if spec is None:
            return cls()
        if isinstance(spec, int) and not isinstance(spec, bool):
            spec = {"mode": "fixed", "size": spec}
        if not isinstance(spec, dict):
            raise ValueError("page_size must be null, a positive integer or an object")
        unknown = set(spec) - {"mode", "size", "minimum", "seed"}
        if unknown:
            raise ValueError(f"unknown page_size field(s): {', '.join(sorted(unknown))}")
        mode = spec.get("mode", "fixed")
        if mode not in PAGE_MODES:
            raise ValueError(f"page_size mode must be one of {', '.join(PAGE_MODES)}")
        values = {k: spec[k] for k in ("size", "minimum", "seed") if k in spec}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"page_size {key} must be an integer")
        policy = cls(mode=mode, **values)
        if policy.size < 1 or policy.minimum < 1:
            raise ValueError("page_size size and minimum must be at least 1")
        if mode == "fixed" and "size" not in spec:
            raise ValueError("a fixed page_size needs a size")
        return policy

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "size": self.size, "minimum": self.minimum, "seed": self.seed}

    def page_size(self, asked: int, cursor_number: int, start: int) -> int:
        if self.mode == "fixed":
            return self.size
        if self.mode == "random":
            low = min(self.minimum, asked)
            draw = random.Random(f"{self.seed}:{cursor_number}:{start}")
            return draw.randint(low, asked)
        return asked


@dataclass
class Cursor:
    """An open query: its snapshot, the batch size asked at the start, and its birth time."""

    locator: str
    number: int
    result: PagedResult
    batch_size: int
    created_at: float


class CursorStore:
    """Open cursors, oldest evicted first once `max_open` is exceeded (as Salesforce does)."""

    def __init__(self, clock: Callable[[], float], lifetime: float, max_open: int) -> None:
        self._clock = clock
        self.lifetime = lifetime
        self.max_open = max_open
        self._lock = threading.Lock()
        self._cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._counter = secrets.randbelow(62**7)

    def new(self, result: PagedResult, batch_size: int) -> Cursor:
        """A cursor for a fresh query; it only takes a slot once `keep` is called."""
        with self._lock:
            self._counter += 1
            number = self._counter
        return Cursor(
            locator=make_id(QUERY_LOCATOR_PREFIX, number),
            number=number,
            result=result,
            batch_size=batch_size,
            created_at=self._clock(),
        )

    def keep(self, cursor: Cursor) -> None:
        """Register a cursor that has more pages, evicting the oldest beyond `max_open`."""
        with self._lock:
            self._cursors[cursor.locator] = cursor
            while len(self._cursors) > self.max_open:
                self._cursors.popitem(last=False)

    def resolve(self, token: str) -> tuple[Cursor, int]:
        """The cursor and start offset named by a `{locator}-{offset}` path segment."""
        locator, sep, offset = token.rpartition("-")
        if not sep or not offset.isdigit():
            raise invalid_locator()
        with self._lock:
            cursor = self._cursors.get(locator)
            if cursor is not None and self._clock() - cursor.created_at >= self.lifetime:
                del self._cursors[locator]
                cursor = None
        start = int(offset)
        if cursor is None or not 0 < start < cursor.result.served_size:
            raise invalid_locator()
        return cursor, start

    def open_count(self) -> int:
        with self._lock:
            return len(self._cursors)
