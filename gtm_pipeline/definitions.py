"""The Dagster code location: `dagster dev -m gtm_pipeline.definitions` or workspace.yaml."""

from __future__ import annotations

import dagster as dg

from gtm_pipeline.defs.resources import WarehouseResource

defs = dg.Definitions(
    # An empty database_url means DATABASE_URL, read when the run needs the store.
    resources={"warehouse": WarehouseResource()},
)
