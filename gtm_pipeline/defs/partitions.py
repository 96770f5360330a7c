"""Tenant partitions: one dynamic partition per connected tenant, keyed by tenant id."""

from __future__ import annotations

import dagster as dg

TENANT_TAG = "gtm/tenant"
"""Run tag carrying the tenant id; dagster.yaml limits runs to one per tag value."""

salesforce_tenants = dg.DynamicPartitionsDefinition(name="salesforce_tenants")
