"""The latency profile over HTTPS: data calls wait, by body size, side by side; Bulk jobs run for
their duration; OAuth and the control API never wait; the CLI and the control API set it.

Timings are lower bounds measured with time.monotonic (the machine is shared and noisy); the
only upper bounds are many times the delays they guard, or the concurrency limit itself.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gtm_pipeline.cli.emulator import emulator as emulator_command
from gtm_pipeline.emulator import server as server_module
from gtm_pipeline.emulator.latency import NO_LATENCY, PROFILES
from gtm_pipeline.emulator.testing import EmulatorControlError, obtain_tokens
from gtm_pipeline_tests.support.emulator import Api, connect

CONTACTS = "SELECT Id, Email, FirstName, LastName, Title, Phone, SystemModstamp FROM Contact"
DESCRIBE = "/sobjects/Account/describe"


def timed(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


def create_job(api: Api, soql: str = CONTACTS) -> str:
    response = api.session.post(
        f"{api.base}/jobs/query",
        json={"operation": "query", "query": soql},
        headers=api.headers(),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["id"]


def job_state(api: Api, job_id: str) -> str:
    response = api.get(f"/jobs/query/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()["state"]


def test_the_default_profile_is_none_and_changes_no_byte(api: Api, emulator) -> None:
    assert emulator.control.latency() == NO_LATENCY.to_json()
    soql = "SELECT Id, Email FROM Contact ORDER BY Id LIMIT 50"
    plain = [api.get(DESCRIBE), api.query(soql)]
    emulator.control.set_latency(call_ms=20, json_ms_per_kb=0.1)
    delayed = [api.get(DESCRIBE), api.query(soql)]
    for before, after in zip(plain, delayed, strict=True):
        assert (after.status_code, after.content) == (before.status_code, before.content)
        changing = {"date", "sforce-limit-info"}  # the clock and the budget's count
        assert {k: v for k, v in after.headers.items() if k.lower() not in changing} == {
            k: v for k, v in before.headers.items() if k.lower() not in changing
        }
    # Bulk under `none` still completes by polls, as before the profile existed
    emulator.control.clear_latency()
    job_id = create_job(api)
    assert [job_state(api, job_id), job_state(api, job_id)] == ["InProgress", "JobComplete"]


def test_every_data_call_waits_at_least_the_base_delay(api: Api, emulator) -> None:
    emulator.control.set_latency(call_ms=50)
    calls = {
        "describe": lambda: api.get(DESCRIBE),
        "query": lambda: api.query("SELECT Id FROM Account LIMIT 1"),
        "queryAll": lambda: api.query("SELECT Id FROM Account LIMIT 1", all_rows=True),
        "unknown object": lambda: api.get("/sobjects/Nope/describe"),
        "bulk create": lambda: create_job(api),
    }
    for name, call in calls.items():
        _, elapsed = timed(call)
        assert elapsed >= 0.05, name
    first = api.query(CONTACTS, batch_size=200)
    _, elapsed = timed(api.more, first.json()["nextRecordsUrl"])
    assert elapsed >= 0.05


def test_the_delay_grows_with_the_json_body(api: Api, emulator) -> None:
    emulator.control.set_latency(json_ms_per_kb=2.0)  # no base: the body alone costs
    response, elapsed = timed(api.query, CONTACTS, batch_size=2000)
    assert response.status_code == 200 and len(response.json()["records"]) > 400
    expected = 2.0 * len(response.content) / 1024 / 1000
    assert expected > 0.1  # a body of tens of KB, so the bound below means something
    assert elapsed >= expected


def test_bulk_result_sets_cost_per_kb_of_csv(api: Api, emulator, clock) -> None:
    job_id = create_job(api)
    while job_state(api, job_id) != "JobComplete":
        pass
    emulator.control.set_latency(csv_ms_per_kb=5.0, json_ms_per_kb=1000.0)
    response, elapsed = timed(api.get, f"/jobs/query/{job_id}/results")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-encoding"] == "gzip"  # charged at its size uncompressed
    assert elapsed >= 5.0 * len(response.content) / 1024 / 1000 > 0.1
    assert elapsed < 0.5 * len(response.content) / 1024  # the CSV rate, not the JSON one


def test_concurrent_requests_wait_side_by_side(emulator) -> None:
    clients = [connect(emulator) for _ in range(8)]
    for client in clients:  # open every connection before the clock starts
        assert client.get(DESCRIBE).status_code == 200
    emulator.control.set_latency(call_ms=300)
    start = threading.Barrier(len(clients))

    def call(index: int) -> tuple[int, float]:
        client = clients[index]
        start.wait()
        if index % 2:  # half of them queries, which touch the org and its lock
            response, elapsed = timed(client.query, "SELECT Id, Name FROM Account")
        else:
            response, elapsed = timed(client.get, DESCRIBE)
        return response.status_code, elapsed

    begun = time.monotonic()
    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(call, range(len(clients))))
    total = time.monotonic() - begun
    assert [status for status, _ in results] == [200] * 8
    assert all(elapsed >= 0.3 for _, elapsed in results)
    assert total < 1.5  # served one after another they would take 8 x 0.3 s = 2.4 s
    for client in clients:
        client.session.close()


def test_a_bulk_job_runs_for_its_duration_whatever_the_polls(api: Api, emulator, clock) -> None:
    emulator.control.set_latency(bulk_base_seconds=10, bulk_seconds_per_100k_rows=1000)
    job_id = create_job(api)
    rows = emulator.org.execute_query(CONTACTS, include_deleted=False).total_size
    finish = 10 + 1000 * rows / 100_000  # 400 and more rows: 14 s and more
    assert api.get(f"/jobs/query/{job_id}/results").status_code == 412
    assert [job_state(api, job_id) for _ in range(5)] == ["InProgress"] * 5
    clock.advance(9.9)
    assert job_state(api, job_id) == "InProgress"
    clock.advance(0.2)  # past the minimum: the query ran, the rows set the rest
    assert job_state(api, job_id) == "InProgress"
    assert api.get(f"/jobs/query/{job_id}/results").status_code == 412
    clock.advance(finish - 10.1 - 0.05)
    assert job_state(api, job_id) == "InProgress"
    clock.advance(0.1)
    assert job_state(api, job_id) == "JobComplete"
    results = api.get(f"/jobs/query/{job_id}/results")
    assert int(results.headers["Sforce-NumberOfRecords"]) == rows


def test_a_failing_bulk_job_fails_after_the_minimum(api: Api, emulator, clock) -> None:
    emulator.control.set_latency(bulk_base_seconds=10)
    emulator.control.configure(bulk_fail_next=1)
    job_id = create_job(api)
    assert [job_state(api, job_id) for _ in range(3)] == ["InProgress"] * 3
    clock.advance(10)
    assert job_state(api, job_id) == "Failed"


def test_a_small_profile_completes_a_job_on_the_wall_clock(start_emulator) -> None:
    emulator = start_emulator(clock=time.time)
    api = connect(emulator)
    emulator.control.set_latency(call_ms=20, bulk_base_seconds=0.5)
    begun = time.monotonic()
    job_id = create_job(api)
    states = [job_state(api, job_id)]
    while states[-1] != "JobComplete":
        assert time.monotonic() - begun < 10, states
        states.append(job_state(api, job_id))
    assert time.monotonic() - begun >= 0.5
    assert states[0] == "InProgress" and len(states) > 2  # polled often, done only in time
    assert api.get(f"/jobs/query/{job_id}/results").status_code == 200


def test_oauth_and_control_calls_never_wait(emulator) -> None:
    emulator.control.set_latency(call_ms=10_000, json_ms_per_kb=100)
    _, elapsed = timed(obtain_tokens, emulator.info)  # authorize + token
    assert elapsed < 5
    for call in (emulator.control.latency, emulator.control.stats, emulator.control.config):
        _, elapsed = timed(call)
        assert elapsed < 5
    _, elapsed = timed(lambda: list(emulator.control.truth("Account")))
    assert elapsed < 5


def test_an_injected_error_waits_like_any_answer(api: Api, emulator) -> None:
    emulator.control.set_latency(call_ms=50)
    emulator.control.add_fault(kind="status", status=503, times=1)
    response, elapsed = timed(api.get, DESCRIBE)
    assert response.status_code == 503 and elapsed >= 0.05


def test_the_control_api_sets_reads_and_clears_the_profile(emulator) -> None:
    control = emulator.control
    assert control.set_latency("realistic") == PROFILES["realistic"].to_json()
    assert control.latency() == PROFILES["realistic"].to_json()
    chosen = control.set_latency(call_ms=20, bulk_base_seconds=0.5)
    assert chosen["name"] == "custom"
    assert (chosen["call_ms"], chosen["bulk_base_seconds"], chosen["json_ms_per_kb"]) == (
        20.0,
        0.5,
        0.0,
    )
    bad = [
        {"profile": "glacial"},
        {"call_ms": -5},
        {"call_ms": "20"},
        {"bulk_base_seconds": 10_000},
        {"latency_ms": 1},
    ]
    for spec in bad:
        with pytest.raises(EmulatorControlError) as caught:
            control.set_latency(**spec)
        assert caught.value.status == 400
        assert "latency" in str(caught.value)
    assert control.latency() == chosen  # a refused request changed nothing
    assert control.clear_latency() == NO_LATENCY.to_json()
    assert control.latency()["name"] == "none"


def test_the_control_api_refuses_a_body_that_is_not_an_object(emulator) -> None:
    session = emulator.session()
    response = session.post(
        f"{emulator.info['instance_url']}/__emulator/latency",
        json=["realistic"],
        headers={"X-Emulator-Token": emulator.info["control_token"]},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json() == {"error": "a latency profile must be a JSON object"}
    session.close()


def test_running_emulator_takes_a_profile_by_name(start_emulator) -> None:
    emulator = start_emulator(latency_profile="realistic")
    assert emulator.control.latency()["name"] == "realistic"


@pytest.mark.parametrize(
    ("given", "expected"), [([], "none"), (["--latency-profile", "realistic"], "realistic")]
)
def test_the_cli_option_chooses_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: list[str], expected: str
) -> None:
    seen: dict[str, Any] = {}

    def fake_serve(org: Any, state_dir: Any, **kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(server_module, "serve", fake_serve)
    arguments = ["--state-dir", str(tmp_path), "--accounts", "1", "--contacts", "1"]
    result = CliRunner().invoke(emulator_command, arguments + ["--opportunities", "0", *given])
    assert result.exit_code == 0, result.output
    assert seen["options"].latency_profile == PROFILES[expected]


def test_the_cli_refuses_an_unknown_profile() -> None:
    result = CliRunner().invoke(emulator_command, ["--latency-profile", "slow"])
    assert result.exit_code == 2
    assert "'slow' is not one of 'none', 'realistic'" in result.output
