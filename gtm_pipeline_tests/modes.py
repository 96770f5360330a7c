"""Quick mode (CI, the default) and full mode (`pytest --full` or GTM_FULL_TESTS=1).

Long fault, crash and fuzz runs scale with the mode: `scaled(quick, full)` picks the count for
this run, so one test body serves both. Tests marked `slow` run only in full mode.
"""

from __future__ import annotations

import os

FULL_ENV = "GTM_FULL_TESTS"


def full_mode() -> bool:
    """True when this run is the full suite (set by `--full` or GTM_FULL_TESTS=1)."""
    return os.environ.get(FULL_ENV) == "1"


def scaled(quick: int, full: int) -> int:
    """`full` in full mode, `quick` otherwise."""
    return full if full_mode() else quick
