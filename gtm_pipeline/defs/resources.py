"""Dagster resources. Configuration comes from the environment through EnvVar, never literals."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr

from gtm_pipeline.config import database_url
from gtm_pipeline.store import make_engine, upgrade


class WarehouseResource(dg.ConfigurableResource):
    """The store: the canonical tables, cursors and quality failures.

    `database_url` empty means `DATABASE_URL`, or the SQLite file under `GTM_HOME`. The schema is
    brought to the latest migration the first time the engine is asked for.
    """

    database_url: str = ""
    _engine: sa.Engine | None = PrivateAttr(default=None)

    def resolved_url(self) -> str:
        return self.database_url or database_url()

    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = make_engine(self.resolved_url())
            upgrade(self._engine)
        return self._engine
