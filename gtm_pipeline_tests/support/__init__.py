"""Code the test modules share, kept out of the conftest.py files (which hold fixtures and hooks).

- Plain helpers and constants, one module per folder that uses them first: `connect`, `defs`,
  `emulator`, `reliability`, `security`, `store`, `sync`, `web`, and `postgres` (the root's).
  Import them like any module, e.g. `from gtm_pipeline_tests.support.sync import client_for`.
- Fixture plugins, loaded for the whole suite by `pytest_plugins` in gtm_pipeline_tests/conftest.py:
  `connect_fixtures` (the emulator, store, keys and flow of connect/, web/ and security/) and
  `web_fixtures` (the session secret and operators of web/ and security/). A folder's conftest.py
  overrides any of them by defining a fixture of the same name.

The root conftest registers this package for pytest's assertion rewriting, so a failed `assert`
in a helper reads as it did when the helper lived in a conftest.
"""
