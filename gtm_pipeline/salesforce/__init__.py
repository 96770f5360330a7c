"""The Salesforce wire: client, OAuth, token crypto, metadata discovery. No Dagster, no SQL."""
