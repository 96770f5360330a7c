"""Dagster objects: assets, asset checks, sensors, schedules, resources. Thin: they call sync/ and writeback/."""
