"""The Dagster code location: `dagster dev -m gtm_pipeline.definitions` or workspace.yaml.

Each domain's module says what it defines (`definitions()`); this one merges them.
"""

from __future__ import annotations

import dagster as dg

from gtm_pipeline.defs import (
    assets,
    automation,
    reconciliation,
    resources,
    scoring_assets,
    writeback_assets,
)

defs = dg.Definitions.merge(
    assets.definitions(),
    reconciliation.definitions(),
    scoring_assets.definitions(),
    writeback_assets.definitions(),
    automation.definitions(),
    resources.definitions(),
)
