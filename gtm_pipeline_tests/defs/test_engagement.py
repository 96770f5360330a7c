"""A meeting logged in Salesforce reaches the scores: the next sync reads the Event into
`activities` and the scores asset raises the person's and the account's engagement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from gtm_pipeline.cli.instance import on_instance
from gtm_pipeline.defs.assets import sync_assets
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.defs.scoring_assets import scores_asset
from gtm_pipeline.store.scoring import read_scores
from gtm_pipeline_tests.support.defs import TENANT

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def sync_and_score(instance, resources) -> None:
    with on_instance(instance):
        result = dg.materialize(
            [*sync_assets(), scores_asset],
            instance=instance,
            partition_key=TENANT,
            resources=resources,
        )
    assert result.success


def engagement(engine, entity_type: str) -> dict[str, float]:
    with engine.connect() as conn:
        scores = read_scores(conn, TENANT, entity_type)
    return dict(zip(scores.external_id, scores.engagement_score, strict=True))


def test_a_logged_meeting_raises_the_persons_and_the_accounts_engagement(
    resources, emulator, engine
):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(salesforce_tenants.name, [TENANT])
        sync_and_score(instance, resources)
        people, accounts = engagement(engine, "person"), engagement(engine, "account")
        contact = next(
            r for r in emulator.control.truth("Contact")
            if r["Id"] in people and r["AccountId"] in accounts
        )  # fmt: skip
        start = datetime.now(UTC) - timedelta(hours=2)
        emulator.control.mutate([{"op": "insert", "object": "Event", "fields": {
            "Subject": "Discovery meeting", "Type": "Meeting", "WhoId": contact["Id"],
            "DurationInMinutes": 45, "StartDateTime": stamp(start),
            "EndDateTime": stamp(start + timedelta(minutes=45)),
        }}])  # fmt: skip
        sync_and_score(instance, resources)
        assert engagement(engine, "person")[contact["Id"]] > people[contact["Id"]]
        account = contact["AccountId"]
        assert engagement(engine, "account")[account] > accounts[account]
