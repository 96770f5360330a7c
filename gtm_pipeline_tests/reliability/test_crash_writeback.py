"""SIGKILL at seeded points of a score writeback (a child process), then an ordinary rerun.

Kills land before the Nth SQL statement or right after the Nth collection update's response,
before the store recorded its outcome. After the rerun every score must be in Salesforce and
every record updated exactly once (the emulator counts API updates per record): the batch
Salesforce had applied when the kill came before its outcomes were stored is read back by the
rerun and settled, not sent again; the test counts those records.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from gtm_pipeline.emulator.testing import EmulatorHandle
from gtm_pipeline.scoring import ScoringConfig, score_all
from gtm_pipeline.store.scoring import load_scoring_inputs, write_scores
from gtm_pipeline.store.tables import writeback_state
from gtm_pipeline.writeback.payloads import build_records
from gtm_pipeline.writeback.selection import scores_to_write
from gtm_pipeline_tests.modes import scaled
from gtm_pipeline_tests.reliability.crashing import StatementCounter, kill_point, run_child
from gtm_pipeline_tests.reliability.kill_hooks import KINDS
from gtm_pipeline_tests.reliability.writeback import write_all
from gtm_pipeline_tests.support.reliability import POSTGRES_ONLY, SEED, announce
from gtm_pipeline_tests.support.sync import client_for
from gtm_pipeline_tests.sync.test_crash import BATCH_SIZE
from gtm_pipeline_tests.sync.test_faults import TENANT, sync_all

SOBJECTS = {"account": "Account", "person": "Contact", "lead": "Lead", "opportunity": "Opportunity"}


def score(engine: sa.Engine, now: datetime) -> None:
    """The reference scoring, stamped `now`: a new stamp changes every record's values."""
    with engine.begin() as conn:
        accounts, persons, opportunities = load_scoring_inputs(conn, TENANT)
        write_scores(
            conn, TENANT, score_all(accounts, persons, opportunities, ScoringConfig(), now)
        )


def update_counts(emulator: EmulatorHandle) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sobject in SOBJECTS.values():
        counts.update(emulator.control.update_counts(sobject))
    return counts


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {i: n - before.get(i, 0) for i, n in after.items() if n != before.get(i, 0)}


def recorded_since(engine: sa.Engine, moment: datetime) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(writeback_state.c.external_id).where(
                writeback_state.c.tenant_id == TENANT,
                writeback_state.c.last_status == "success",
                writeback_state.c.written_at >= moment,
            )
        )
        return set(rows.scalars())


def expected_writes(engine: sa.Engine) -> dict[str, dict]:
    """Every record the writeback must land, by 18-char Id, with the field values to land."""
    wanted: dict[str, dict] = {}
    for entity_type in SOBJECTS:
        with engine.connect() as conn:
            scores, field_map, _left_out = scores_to_write(conn, TENANT, entity_type)
        for record in build_records(scores, entity_type, field_map):
            wanted[record["id"]] = record
    return wanted


def assert_landed(emulator: EmulatorHandle, wanted: dict[str, dict]) -> None:
    truth: dict[str, dict] = {}
    for sobject in SOBJECTS.values():
        truth.update({r["Id"]: r for r in emulator.control.truth(sobject)})
    for record_id, record in wanted.items():
        for field, value in record.items():
            if field in ("attributes", "id"):
                continue
            landed = truth[record_id][field]
            if isinstance(value, float):
                assert abs(landed - value) < 1e-9, (record_id, field)
            elif field.startswith("Scored_At"):
                wanted_at = datetime.fromisoformat(value.replace("Z", "+00:00"))
                assert stamp_of(landed) == wanted_at, (record_id, field)
            else:
                assert landed == value, (record_id, field)


def stamp_of(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def writeback_job(emulator: EmulatorHandle, database_url: str, kill: dict) -> dict:
    return {"info": emulator.info, "database_url": database_url, "tenant": TENANT,
            "task": "writeback", "batch_size": BATCH_SIZE, "kill": kill}  # fmt: skip


@POSTGRES_ONLY
def test_writeback_killed_at_seeded_points_lands_every_score_once(emulator, engine, database_url):
    rng = random.Random(SEED + 1)
    points = scaled(5, 50)
    client = client_for(emulator)
    sync_all(client, engine, batch_size=BATCH_SIZE)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    score(engine, base)
    with StatementCounter(engine) as counted:
        calls = client.calls_made
        write_all(client, engine, TENANT)
    statements, responses = counted.count, client.calls_made - calls

    killed, recovered = [], 0
    for step in range(1, points + 1):
        score(engine, base + timedelta(minutes=step))
        wanted = expected_writes(engine)
        before, started = update_counts(emulator), datetime.now(UTC)
        kill = kill_point(rng, statements, responses)
        run = run_child(writeback_job(emulator, database_url, kill))
        where = f"step {step}, kill {kill}, seed {SEED}"
        assert run.killed or run.done, where
        applied = delta(update_counts(emulator), before)
        recorded = recorded_since(engine, started)
        assert all(applied.get(i) == 1 for i in recorded), f"recorded but not applied: {where}"
        unrecorded = {i for i, n in applied.items() if n == 1} - recorded
        if run.killed:
            killed.append(kill)
            sending = [line["sending"] for line in run.lines if "sending" in line]
            in_flight = set(sending[-1]) if sending else set()
            assert unrecorded <= in_flight, f"only the batch in flight may be unrecorded: {where}"
        else:
            assert not unrecorded, where

        results = write_all(client, engine, TENANT)
        assert sum(r.failed for r in results) == 0, where
        assert sum(r.recovered for r in results) == len(unrecorded), where
        total = delta(update_counts(emulator), before)
        assert set(total) == set(wanted), f"records written that should not be, or missed: {where}"
        assert {i: total[i] for i in wanted} == dict.fromkeys(wanted, 1), where
        assert_landed(emulator, wanted)
        recovered += len(unrecorded)
    assert len(killed) >= points * 0.8, f"most points must kill the child: {killed}"
    kinds = {k: sum(1 for x in killed if x["kind"] == k) for k in KINDS}
    announce(
        "writeback_sigkill",
        f"survived {len(killed)} crash points {kinds} of {points}; every record written "
        f"exactly once ({recovered} applied before the kill were read back, not resent)",
    )
