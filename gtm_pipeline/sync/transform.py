"""Transform: raw Salesforce pages to canonical columns. Pure and vectorized (no per-row Python).

What happens here is normalisation that cannot fail: picking the mapped fields, per-field
transforms, trimming text, lowercasing emails, deriving the domain from the website, parsing
`SystemModstamp`, carrying unmapped custom fields along as JSON. Anything that can fail (numbers,
dates, required fields, duplicates) is a quality gate's job, so a failure is reported, not hidden.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from gtm_pipeline.sync.entities import Entity, FieldMapping

TEXT_TRANSFORMS = {
    "none": lambda s: s,
    "trim": lambda s: s.str.strip(),
    "lowercase": lambda s: s.str.lower(),
    "uppercase": lambda s: s.str.upper(),
}
# scheme, user info and "www." skipped; the host must be dot-separated labels ending in a
# letter-led top-level label, so "N/A", "-", "none" or "https:/x.com" give no domain at all.
_DOMAIN = (
    r"^(?:[a-z][a-z0-9+.\-]*:)?(?://)?(?:[^/?#\s@]*@)?(?:www\.)?"
    r"((?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_](?:[\w-]*[^\W_])?)\.?(?::\d+)?(?:[/?#]|$)"
)


class MappingError(ValueError):
    """A mapping that cannot be applied to the data (for example a required field is absent)."""


def _column(raw: pd.DataFrame, source: str) -> pd.Series | None:
    """The raw column for a source path, matched case-insensitively as SOQL names are."""
    if source in raw.columns:
        return raw[source]
    lowered = {str(c).lower(): c for c in raw.columns}
    name = lowered.get(source.lower())
    return None if name is None else raw[name]


def clean_text(series: pd.Series) -> pd.Series:
    """Strings trimmed and blanks made missing; numbers in text fields become text."""
    text = series.astype("str").where(series.notna())
    text = text.str.strip()
    return text.where(text != "")


def domain_from_website(website: pd.Series) -> pd.Series:
    """`https://www.Example.com/about` → `example.com`; missing when no host name can be read."""
    return website.str.lower().str.extract(_DOMAIN, expand=False)


def parse_modstamp(series: pd.Series) -> pd.Series:
    """Salesforce datetimes (`2024-01-01T00:00:00.000+0000`) to timezone-aware UTC timestamps."""
    return pd.to_datetime(series, utc=True, format="ISO8601")


def _mapped(entity: Entity, raw: pd.DataFrame, mapping: FieldMapping) -> pd.Series:
    series = _column(raw, mapping.source)
    if series is None:
        if mapping.required:
            raise MappingError(
                f"{entity.name}: required source field {mapping.source!r} "
                f"(for {mapping.target!r}) is missing from the Salesforce data"
            )
        return pd.Series(pd.NA, index=raw.index, dtype="object")
    if mapping.target in entity.integer_columns + entity.number_columns + entity.date_columns:
        return series  # typed by the coercion gate, which can report what fails
    transform = TEXT_TRANSFORMS.get(mapping.transform)
    if transform is None:
        raise MappingError(f"{entity.name}: unknown transform {mapping.transform!r}")
    return transform(clean_text(series))


def _custom_fields(raw: pd.DataFrame, mapped_sources: set[str]) -> pd.Series:
    """Unmapped custom fields (`*__c`) of each record as a dict, or None when there are none."""
    custom = [c for c in raw.columns if c.endswith("__c") and c.lower() not in mapped_sources]
    if not custom:
        return pd.Series(None, index=raw.index, dtype="object")
    values = raw[custom].astype("object").where(raw[custom].notna(), None)
    return pd.Series(values.to_dict("records"), index=raw.index, dtype="object")


def to_canonical(
    entity: Entity, raw: pd.DataFrame, mappings: Sequence[FieldMapping] | None = None
) -> pd.DataFrame:
    """One page of raw records as the entity's canonical columns (typed later by the gates)."""
    mappings = tuple(mappings or entity.mappings)
    out = pd.DataFrame(index=raw.index)
    for mapping in mappings:
        out[mapping.target] = _mapped(entity, raw, mapping)
    for column in entity.email_columns:
        if column in out:
            out[column] = out[column].str.lower()
    if entity.name == "accounts" and "website" in out:
        out["domain"] = domain_from_website(out["website"])
    stamp = _column(raw, "SystemModstamp")
    if stamp is None:
        raise MappingError(f"{entity.name}: the Salesforce data has no SystemModstamp")
    out["system_modstamp"] = parse_modstamp(stamp)
    deleted = _column(raw, "IsDeleted")
    out["is_deleted"] = False if deleted is None else deleted.fillna(False).astype(bool).to_numpy()
    out["custom_fields"] = _custom_fields(raw, {m.source.lower() for m in mappings})
    return out.reset_index(drop=True)
