"""Services that combine the Salesforce wire layer with the store: the token vault, the OAuth
connect flow, the token provider behind the client, and encryption-key rotation.

Modules are imported directly (`from gtm_pipeline.connect.vault import TokenVault`) so that
using one service does not pull in the others.
"""
