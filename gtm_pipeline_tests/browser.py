"""Debian's Chromium for the browser tests, driven by Playwright (never a downloaded browser).

Tests skip when it is missing on a developer machine; under CI (`CI` set) they must run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Headless as root, and nothing that calls out: this machine's network is closed.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

needs_chromium = pytest.mark.skipif(
    not os.environ.get("CI") and not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (under CI this test must run)",
)
