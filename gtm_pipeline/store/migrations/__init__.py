"""Alembic migrations for the store, shipped as a package so a wheel can upgrade a database."""
