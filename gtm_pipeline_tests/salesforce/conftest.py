"""One emulator for the client tests, reset between tests, talked to over real HTTPS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gtm_pipeline.emulator.testing import EmulatorHandle, obtain_tokens, running_emulator

COUNTS = {"Account": 150, "Contact": 1100, "Opportunity": 300}


@pytest.fixture(scope="module")
def sf_emulator(tmp_path_factory) -> Iterator[EmulatorHandle]:
    with running_emulator(tmp_path_factory.mktemp("emulator"), counts=COUNTS, seed=7) as handle:
        yield handle


@pytest.fixture()
def emulator(sf_emulator: EmulatorHandle) -> Iterator[EmulatorHandle]:
    """The module's emulator with no faults, default paging, a fresh budget and fresh stats."""
    control = sf_emulator.control
    control.clear_faults()
    control.configure(
        page_size=None, daily_api_limit=15000, reset_usage=True, session_lifetime=7200
    )
    control.reset_stats()
    yield sf_emulator
    control.clear_faults()


@pytest.fixture()
def tokens(emulator: EmulatorHandle) -> dict[str, str]:
    return obtain_tokens(emulator.info)
