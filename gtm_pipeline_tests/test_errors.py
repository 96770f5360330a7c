"""One root for the project's errors, each saying whether a later run may succeed."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import click
import pytest
from click.testing import CliRunner

import gtm_pipeline
from gtm_pipeline.cli import main
from gtm_pipeline.config import ConfigError
from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.errors import (
    ApiLimitExceeded,
    ApiUsageGuardTripped,
    ConcurrencyLimitExceeded,
    SalesforceUnavailable,
    SessionInvalid,
    TlsVerificationFailed,
)
from gtm_pipeline.salesforce.oauth import InvalidGrant, OAuthError
from gtm_pipeline.store.locks import TenantBusy
from gtm_pipeline.sync.mapping import MappingError
from gtm_pipeline.writeback.mapping import WritebackBlocked

# The emulator plays Salesforce: its errors are Salesforce's, answered on the wire.
OUTSIDE = ("gtm_pipeline.emulator",)


def _project_exceptions() -> list[type[BaseException]]:
    found = []
    for module_info in pkgutil.walk_packages(gtm_pipeline.__path__, "gtm_pipeline."):
        if module_info.name.startswith(OUTSIDE) or ".migrations" in module_info.name:
            continue
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, Exception) and value.__module__ == module.__name__:
                found.append(value)
    return found


def test_every_error_the_package_raises_on_purpose_is_a_gtm_error():
    exceptions = _project_exceptions()
    assert len(exceptions) > 20  # the walk found the package's errors
    assert [e.__qualname__ for e in exceptions if not issubclass(e, GtmError)] == []


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (ApiLimitExceeded("spent"), False),
        (ApiUsageGuardTripped(80, 100, 0.8), False),
        (SessionInvalid("reconnect"), False),
        (TlsVerificationFailed("ca"), False),
        (ConfigError("X must be set"), False),
        (MappingError("bad field"), False),
        (WritebackBlocked("bad target"), False),
        (InvalidGrant("invalid_grant"), False),
        (OAuthError("invalid_client"), False),
        (OAuthError("server_error"), True),
        (SalesforceUnavailable("503"), True),
        (ConcurrencyLimitExceeded("ConcurrentPerOrgLongTxn", 6), True),
        (TenantBusy("busy"), True),
    ],
)
def test_each_error_says_whether_a_later_run_may_succeed(error, retryable):
    assert isinstance(error, GtmError)
    assert error.retryable is retryable


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (TenantBusy("the writeback of tenant t is already running elsewhere"), "already running"),
        (OAuthError("access_denied"), "Access was denied in Salesforce"),
    ],
)
def test_the_cli_prints_any_project_error_as_one_line_and_exits_1(error, shown):
    @click.command("raise-for-test")
    def raise_for_test() -> None:
        raise error

    main.add_command(raise_for_test)
    try:
        result = CliRunner().invoke(main, ["raise-for-test"])
    finally:
        main.commands.pop("raise-for-test")
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and shown in result.output
    assert "Traceback" not in result.output


def test_the_user_message_is_one_line_that_keeps_every_line_of_the_message():
    error = GtmError("could not migrate: connection refused\n\tIs the server running?\n")
    assert error.user_message == "could not migrate: connection refused Is the server running?"
    assert GtmError().user_message == "GtmError"
