"""The control API: token check, mutations, config, call statistics and ground truth."""

from __future__ import annotations

import json

import pytest

from gtm_pipeline.emulator.testing import EmulatorControl, EmulatorControlError
from gtm_pipeline_tests.support.emulator import Api, connect


@pytest.mark.parametrize("token", [None, "", "wrong"])
def test_every_control_call_needs_the_token(emulator, token) -> None:
    session = connect(emulator).session
    headers = {} if token is None else {"X-Emulator-Token": token}
    base = emulator.info["instance_url"] + "/__emulator"
    calls = [
        ("GET", "/stats"),
        ("POST", "/stats/reset"),
        ("POST", "/mutations"),
        ("POST", "/faults"),
        ("DELETE", "/faults"),
        ("POST", "/config"),
        ("GET", "/truth/Contact"),
    ]
    for method, path in calls:
        response = session.request(method, base + path, headers=headers, json={}, timeout=10)
        assert response.status_code == 401, path
        assert response.json() == {"error": "missing or wrong X-Emulator-Token"}


def test_wrong_token_through_the_client_raises(emulator) -> None:
    control = EmulatorControl({**emulator.info, "control_token": "nope"})
    with pytest.raises(EmulatorControlError) as caught:
        control.stats()
    assert caught.value.status == 401


def test_mutations_one_or_many(start_emulator, fresh_org) -> None:
    handle = start_emulator(org=fresh_org)
    api = connect(handle)
    first_id = api.query("SELECT Id FROM Account ORDER BY Id LIMIT 1").json()["records"][0]["Id"]
    result = handle.control.mutate(
        {"op": "update", "object": "Account", "id": first_id, "fields": {"Industry": "Energy"}}
    )
    assert result[0]["id"] == first_id and result[0]["op"] == "update"
    rows = api.query("SELECT Id, Industry FROM Account").json()["records"]
    assert {r["Id"]: r["Industry"] for r in rows}[first_id] == "Energy"
    results = handle.control.mutate(
        [
            {"op": "insert", "object": "Account", "fields": {"Name": "Acme One"}},
            {"op": "insert", "object": "Account", "fields": {"Name": "Acme Two"}},
        ]
    )
    names = api.query("SELECT Name FROM Account WHERE Name LIKE 'Acme%'").json()["records"]
    assert sorted(r["Name"] for r in names) == ["Acme One", "Acme Two"]
    assert len({r["id"] for r in results}) == 2


def test_a_bad_mutation_is_a_400_naming_the_op(emulator) -> None:
    good = {"op": "insert", "object": "Account", "fields": {"Name": "Fine"}}
    with pytest.raises(EmulatorControlError, match=r"op 1: unknown mutation op 'explode'") as bad:
        emulator.control.mutate([good, {"op": "explode", "object": "Account"}])
    assert bad.value.status == 400 and "(1 op(s) applied)" in str(bad.value)
    response = connect(emulator).session.post(
        emulator.info["instance_url"] + "/__emulator/mutations",
        data=b"{not json",
        headers={"X-Emulator-Token": emulator.info["control_token"]},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json() == {"error": "the body must be JSON"}


def test_stats_count_each_endpoint_kind_and_reset(api: Api, emulator) -> None:
    first = api.query("SELECT Id FROM Contact", batch_size=200).json()
    api.more(first["nextRecordsUrl"])
    api.get("/queryAll", params={"q": "SELECT Id FROM Account"})
    api.get("/sobjects/Contact/describe")
    api.patch("/composite/sobjects", {"records": []})
    api.get("/nothing/here")
    emulator.control.configure(reset_usage=False)
    stats = emulator.control.stats()
    assert stats["calls"] == {
        "query": 1,
        "queryAll": 1,
        "query_more": 1,
        "describe": 1,
        "composite": 1,
        "token": 1,
        "authorize": 1,
        "revoke": 0,
        "other": 1,
    }
    assert stats["total"] == 8
    assert stats["api_usage"] == {"used": 5, "limit": 15000}
    reset = emulator.control.reset_stats()
    assert reset["total"] == 0 and set(reset["calls"].values()) == {0}
    assert emulator.control.stats()["total"] == 0  # control calls never count


def test_truth_streams_json_lines_with_deleted_rows(start_emulator, fresh_org) -> None:
    handle = start_emulator(org=fresh_org)
    rows = list(handle.control.truth("Contact"))
    assert len(rows) == fresh_org.count("Contact", include_deleted=True)
    handle.control.mutate({"op": "delete", "object": "Contact", "id": rows[0]["Id"]})
    after = {r["Id"]: r for r in handle.control.truth("Contact")}
    assert after[rows[0]["Id"]]["IsDeleted"] is True
    assert any("_dirty" in r for r in after.values())
    raw = connect(handle).session.get(
        handle.info["instance_url"] + "/__emulator/truth/Account",
        headers={"X-Emulator-Token": handle.info["control_token"]},
        timeout=10,
    )
    assert raw.headers["content-type"].startswith("application/x-ndjson")
    lines = raw.text.splitlines()
    assert len(lines) == fresh_org.count("Account", include_deleted=True)
    assert all(json.loads(line)["Id"].startswith("001") for line in lines)
    with pytest.raises(EmulatorControlError) as caught:
        list(handle.control.truth("Nope"))
    assert caught.value.status == 404


def test_config_reads_back_and_rejects_bad_values(emulator) -> None:
    config = emulator.control.configure(
        session_lifetime=60, daily_api_limit=10, auto_approve=False, rotate_refresh_tokens=True
    )
    assert config["session_lifetime"] == 60
    assert config["daily_api_limit"] == 10
    assert config["auto_approve"] is False and config["rotate_refresh_tokens"] is True
    bad_settings = [
        {"bogus": 1},
        {"session_lifetime": 0},
        {"daily_api_limit": -1},
        {"auto_approve": "yes"},
        {"max_open_cursors": 1.5},
        {"session_lifetime": 30, "daily_api_limit": "many"},
    ]
    for bad in bad_settings:
        with pytest.raises(EmulatorControlError) as caught:
            emulator.control.configure(**bad)
        assert caught.value.status == 400
    assert emulator.control.config() == config  # a refused request changed nothing
