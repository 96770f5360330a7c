"""A local Salesforce API: the generated org, describe, SOQL and writes, served over HTTPS."""
