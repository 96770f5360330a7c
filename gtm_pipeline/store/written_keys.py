"""The keys one writer has sent to a table that held none of them when it began.

A tenant's first full sync of an object writes into a table holding none of the tenant's rows of
that object, so a row the sync has not written yet cannot be stored: PostgreSQL can COPY it
straight into the table instead of upserting it through a staging table (`upsert.write_upsert`;
`benchmarks/store_upsert.py`: 100,000 persons in 2,000-row pages 1.69 s instead of 2.28 s). The
exception is a record read twice in one run, which a sync must expect (the emulator serves a few
records twice): the keys written so far tell it apart, and its second version goes through the
upsert, which keeps the newer one.

Keys are kept as 64-bit hashes in one sorted array: 8 bytes a row, 8 MB for a 1,000,000-Contact
org, where a set of the ids would hold about ten times as much. Two keys sharing a hash only send
a new row through the upsert; a key stored by some other path than this writer makes its COPY
fail, and the rows are upserted instead. Neither changes what is stored.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import numpy as np


class WrittenKeys:
    """Hashes of the keys written so far, kept by the one thread that writes."""

    def __init__(self) -> None:
        self._hashes = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._hashes)

    def record(self, keys: Iterable[Hashable]) -> np.ndarray:
        """Add `keys`; return for each whether it may have been written before (a boolean array)."""
        hashes = np.fromiter(map(hash, keys), dtype=np.int64)
        seen = self._contains(hashes)
        added = np.unique(hashes[~seen])
        self._hashes = np.insert(self._hashes, np.searchsorted(self._hashes, added), added)
        return seen

    def _contains(self, hashes: np.ndarray) -> np.ndarray:
        if not len(self._hashes):
            return np.zeros(len(hashes), dtype=bool)
        positions = np.searchsorted(self._hashes, hashes)
        return self._hashes[np.minimum(positions, len(self._hashes) - 1)] == hashes
