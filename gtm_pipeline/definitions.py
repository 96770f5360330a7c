"""The Dagster code location: `dagster dev -m gtm_pipeline.definitions` or workspace.yaml.

Each domain's module says what it defines (`definitions()`); this one merges them. The settings
are read here, once, when the code location loads (in `dagster dev`, the daemon and each run's
process alike), and handed to the domains that need them.
"""

from __future__ import annotations

import dagster as dg

from gtm_pipeline.config import Settings
from gtm_pipeline.defs import (
    assets,
    automation,
    reconciliation,
    resources,
    scoring_assets,
    table_checks,
    writeback_assets,
)
from gtm_pipeline.sync.heap import cap_malloc_arenas

cap_malloc_arenas()  # before Dagster's threads multiply them (sync/heap.py)
settings = Settings.from_process()
defs = dg.Definitions.merge(
    assets.definitions(),
    reconciliation.definitions(),
    table_checks.definitions(settings),
    scoring_assets.definitions(),
    writeback_assets.definitions(),
    automation.definitions(settings),
    resources.definitions(settings),
)
