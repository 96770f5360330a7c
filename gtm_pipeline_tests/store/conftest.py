"""Store fixtures: a migrated engine on each database of the shared `database_url` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from gtm_pipeline.store import make_engine, upgrade

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture()
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on an empty database that has been migrated to head."""
    store_engine = make_engine(database_url)
    upgrade(store_engine)
    yield store_engine
    store_engine.dispose()
