"""Tests for the connectors web app, operator auth and the web/connect/operator commands."""
