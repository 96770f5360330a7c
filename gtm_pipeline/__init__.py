"""gtm-pipeline: a Salesforce connector for go-to-market data teams, as a Dagster code location."""

__version__ = "0.1.0"
