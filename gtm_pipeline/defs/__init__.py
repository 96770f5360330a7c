"""Dagster objects: assets, checks, sensors, schedules, resources.

Thin: they call sync/ and writeback/, which know nothing of Dagster.
"""
