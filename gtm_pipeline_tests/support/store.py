"""Store test constants; the migrated `engine` fixture lives in gtm_pipeline_tests/conftest.py."""

from __future__ import annotations

from datetime import UTC, datetime

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
