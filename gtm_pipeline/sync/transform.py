"""Transform: raw Salesforce pages to canonical columns. Pure and vectorized (no per-row Python).

What happens here is normalisation that cannot fail: the field mapping (`apply_field_mappings`,
the only implementation of it: mapped fields, per-field transforms, trimming, compounds, the
`custom_fields` JSON), lowercasing emails, deriving the domain from the website and parsing
`SystemModstamp`. Anything that can fail (numbers,
dates, required fields, duplicates) is a quality gate's job, so a failure is reported, not hidden.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from gtm_pipeline.sync.derive import add_derived
from gtm_pipeline.sync.entities import Entity, FieldMapping
from gtm_pipeline.sync.mapping import (
    MappingError,
    apply_field_mappings,
    clean_text,
    source_column,
)

__all__ = [
    "MappingError",
    "clean_text",
    "domain_from_website",
    "parse_modstamp",
    "to_canonical",
]

# scheme, user info and "www." skipped; the host must be dot-separated labels ending in a
# letter-led top-level label, so "N/A", "-", "none" or "https:/x.com" give no domain at all.
_DOMAIN = (
    r"^(?:[a-z][a-z0-9+.\-]*:)?(?://)?(?:[^/?#\s@]*@)?(?:www\.)?"
    r"((?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_](?:[\w-]*[^\W_])?)\.?(?::\d+)?(?:[/?#]|$)"
)


def domain_from_website(website: pd.Series) -> pd.Series:
    """`https://www.Example.com/about` → `example.com`; missing when no host name can be read."""
    return website.str.lower().str.extract(_DOMAIN, expand=False)


def parse_modstamp(series: pd.Series) -> pd.Series:
    """Salesforce datetimes (`2024-01-01T00:00:00.000+0000`) to timezone-aware UTC timestamps."""
    return pd.to_datetime(series, utc=True, format="ISO8601")


def to_canonical(
    entity: Entity,
    raw: pd.DataFrame,
    mappings: Sequence[FieldMapping] | None = None,
    *,
    tenant_id: str | None = None,
) -> pd.DataFrame:
    """One page of raw records as the entity's canonical columns (typed later by the gates)."""
    mapped, _warnings = apply_field_mappings(  # warnings are reported once per run, not per page
        entity, raw, tuple(entity.mappings if mappings is None else mappings), tenant_id=tenant_id
    )
    out = add_derived(entity, raw, mapped.drop(columns=["custom_fields"]))
    for column in entity.email_columns:
        if column in out:
            out[column] = out[column].str.lower()
    if entity.name == "accounts" and "website" in out and "domain" not in out:
        out["domain"] = domain_from_website(out["website"])
    stamp = source_column(raw, "SystemModstamp")
    if stamp is None:
        raise MappingError(f"{entity.name}: the Salesforce data has no SystemModstamp")
    out["system_modstamp"] = parse_modstamp(stamp)
    deleted = source_column(raw, "IsDeleted")
    out["is_deleted"] = False if deleted is None else deleted.fillna(False).astype(bool).to_numpy()
    out["custom_fields"] = mapped["custom_fields"]
    return out.reset_index(drop=True)
