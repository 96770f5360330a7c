"""Fixtures for the connect services.

The emulator, store, keys and wired flow (`emulator`, `store_engine`, `cipher`, `signer`,
`connect_env`, `flow`, `connect_tenant`, ...) are shared with web/ and security/ by the plugin
`gtm_pipeline_tests/support/connect_fixtures.py`, listed in `pytest_plugins` of the root
conftest. `BINDING`, `CALLBACK_URL`, `follow_authorize` and `settings_for` live in
`gtm_pipeline_tests/support/connect.py`.

REQUESTS_CA_BUNDLE stays set (the system store), so the emulator's CA only wins where the code
under test makes it win.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gtm_pipeline_tests.support.connect import follow_authorize


@pytest.fixture(autouse=True)
def _system_ca_bundle_in_env(_system_ca_bundle_in_env: None) -> None:
    """The shared fixture of support/connect_fixtures.py, on for every test in this folder."""


@pytest.fixture()
def browser() -> Callable[..., dict[str, str]]:
    """`follow_authorize` as a fixture, for tests that drive the authorize page themselves."""
    return follow_authorize
