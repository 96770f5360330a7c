"""Tenant partitions: one dynamic partition per connected tenant, keyed by tenant id."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

TENANT_TAG = "gtm/tenant"
"""Run tag carrying the tenant id; dagster.yaml limits runs to one per tag value."""

salesforce_tenants = dg.DynamicPartitionsDefinition(name="salesforce_tenants")


@contextmanager
def partitioned_checks() -> Iterator[None]:
    """Around the definition of checks partitioned by tenant (`partitions_def` on a check is a
    preview feature in Dagster 1.13): its preview warning said once, here, instead of at every
    load of the code location. Every check of the project is partitioned by tenant, so the UI
    shows each tenant's own check history."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield
