"""Settings fail fast with a message that names the variable and never echoes its value."""

from __future__ import annotations

import pytest

from gtm_pipeline import config


def test_database_url_defaults_to_sqlite_under_gtm_home(tmp_path):
    url = config.database_url({"GTM_HOME": str(tmp_path)})
    assert url == f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.mark.parametrize("scheme", ["postgres://", "postgresql://"])
def test_postgres_urls_use_psycopg3(scheme):
    url = config.database_url({"DATABASE_URL": f"{scheme}u:pw@db:5432/gtm"})
    assert url == "postgresql+psycopg://u:pw@db:5432/gtm"


def test_bad_database_url_names_the_variable_not_the_value():
    with pytest.raises(config.ConfigError) as info:
        config.database_url({"DATABASE_URL": "mysql://user:hunter2@db/x"})
    assert "DATABASE_URL" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("raw, expected", [("59.0", "59.0"), ("v60.0", "60.0"), ("61", "61.0")])
def test_api_version(raw, expected):
    assert config.api_version({"SALESFORCE_API_VERSION": raw}) == expected


@pytest.mark.parametrize("raw", ["latest", "5.0", "59.x", "-1"])
def test_bad_api_version(raw):
    with pytest.raises(config.ConfigError, match="SALESFORCE_API_VERSION"):
        config.api_version({"SALESFORCE_API_VERSION": raw})


def test_ca_bundle_must_exist(tmp_path):
    assert config.ca_bundle({}) is None
    with pytest.raises(config.ConfigError, match="SALESFORCE_CA_BUNDLE"):
        config.ca_bundle({"SALESFORCE_CA_BUNDLE": str(tmp_path / "missing.pem")})
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert config.ca_bundle({"SALESFORCE_CA_BUNDLE": str(ca)}) == str(ca)


def test_login_url_must_be_https():
    assert config.login_url({}) == "https://login.salesforce.com"
    with pytest.raises(config.ConfigError, match="SALESFORCE_LOGIN_URL"):
        config.login_url({"SALESFORCE_LOGIN_URL": "http://login.salesforce.com"})


def test_salesforce_settings_hide_the_secret():
    settings = config.SalesforceSettings.from_env(
        {"SALESFORCE_CLIENT_ID": "id123", "SALESFORCE_CLIENT_SECRET": "s3cr3t-value"}
    )
    assert settings.client_secret == "s3cr3t-value"  # noqa: S105
    assert "s3cr3t-value" not in repr(settings)
