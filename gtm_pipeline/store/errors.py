"""The store layer's exceptions, so callers can tell bad input from an unreachable database."""

from __future__ import annotations

from gtm_pipeline.errors import GtmError


class StoreError(GtmError):
    """Base class for every error the store raises on purpose."""


class StoreConfigError(StoreError, ValueError):
    """The database URL or engine settings are unusable. Messages never carry a password."""

    retryable = False


class InvalidRowsError(StoreError, ValueError):
    """Rows handed to an upsert do not fit the table: unknown columns, missing keys, bad values."""


class MigrationError(StoreError):
    """The schema could not be brought to the latest revision."""
