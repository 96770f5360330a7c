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
    assert config.checked_api_version(raw) == expected


@pytest.mark.parametrize("raw", ["latest", "5.0", "59.x", "-1"])
def test_bad_api_version(raw):
    with pytest.raises(config.ConfigError, match="SALESFORCE_API_VERSION"):
        config.checked_api_version(raw)


def test_ca_bundle_must_exist(tmp_path):
    assert config.SalesforceSettings.from_env({}).ca_bundle is None
    with pytest.raises(config.ConfigError, match="SALESFORCE_CA_BUNDLE"):
        config.SalesforceSettings.from_env({"SALESFORCE_CA_BUNDLE": str(tmp_path / "missing.pem")})
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert config.checked_ca_bundle(str(ca)) == str(ca)


def test_login_url_must_be_https():
    assert config.SalesforceSettings.from_env({}).login_url == "https://login.salesforce.com"
    with pytest.raises(config.ConfigError, match="SALESFORCE_LOGIN_URL"):
        config.SalesforceSettings.from_env({"SALESFORCE_LOGIN_URL": "http://login.salesforce.com"})


def test_salesforce_settings_hide_the_secret():
    settings = config.SalesforceSettings.from_env(
        {"SALESFORCE_CLIENT_ID": "id123", "SALESFORCE_CLIENT_SECRET": "s3cr3t-value"}
    )
    assert settings.client_secret == "s3cr3t-value"  # noqa: S105
    assert "s3cr3t-value" not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765/api/connectors/salesforce/callback",
        "http://localhost:8765/cb",
        "http://LOCALHOST/cb",
        "http://[::1]:8765/cb",
        "https://connect.example.com/api/connectors/salesforce/callback",
    ],
)
def test_callback_url_https_or_http_on_loopback(url):
    assert config.callback_url({"SALESFORCE_CALLBACK_URL": url}) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1.nip.io/cb",  # a public DNS name that merely starts like loopback
        "http://127.0.0.1@attacker.example/cb",  # user-info: the host is attacker.example
        "http://localhost.attacker.example/cb",
        "http://[::1].attacker.example/cb",
        "http://127.0.0.2:8765/cb",
        "http://0.0.0.0:8765/cb",
        "http://connect.example.com/cb",
        "https://user:pw@connect.example.com/cb",
        "http://127.0.0.1:notaport/cb",
        "ftp://127.0.0.1/cb",
        "127.0.0.1:8765/cb",
    ],
)
def test_callback_url_refuses_what_only_looks_like_loopback(url):
    with pytest.raises(config.ConfigError) as caught:
        config.callback_url({"SALESFORCE_CALLBACK_URL": url})
    assert "SALESFORCE_CALLBACK_URL" in str(caught.value)
    assert "attacker" not in str(caught.value) and "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0:0:0:0:0:0:0:1", True),  # the same address as ::1, written out
        ("127.0.0.2", False),
        ("127.1", False),
        ("0.0.0.0", False),  # noqa: S104 - a string under test, not a bind
        ("::", False),
        ("127.0.0.1.nip.io", False),
        ("[::1]", False),  # a bare host is expected: brackets belong to URLs
        ("192.168.1.5", False),
        ("", False),
    ],
)
def test_loopback_is_decided_by_parsing(host, loopback):
    assert config.is_loopback_host(host) is loopback


def test_allow_any_instance_is_off_unless_set_to_1():
    assert config.allow_any_instance({}) is False
    assert config.allow_any_instance({"SALESFORCE_ALLOW_ANY_INSTANCE": "0"}) is False
    assert config.allow_any_instance({"SALESFORCE_ALLOW_ANY_INSTANCE": "1"}) is True
    assert config.SalesforceSettings.from_env({}).allow_any_instance is False
    settings = config.SalesforceSettings.from_env({"SALESFORCE_ALLOW_ANY_INSTANCE": "1"})
    assert settings.allow_any_instance is True
    with pytest.raises(config.ConfigError, match="SALESFORCE_ALLOW_ANY_INSTANCE"):
        config.allow_any_instance({"SALESFORCE_ALLOW_ANY_INSTANCE": "yes"})
