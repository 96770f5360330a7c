"""`gtm-pipeline demo`: the whole pipeline as far as it exists, against a local emulator.

It needs no Salesforce org: it starts the emulator with a generated org, connects through the real
OAuth web server flow (consent auto-approved), brings the store to the latest migration, and reads
every page of Accounts, Contacts and Opportunities with the production client, reporting pages,
records and API calls.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from gtm_pipeline.config import database_url, gtm_home
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.testing import obtain_tokens, running_emulator
from gtm_pipeline.salesforce.client import ClientConfig, Credentials, SalesforceClient
from gtm_pipeline.store import current_revision, make_engine, safe_url, upgrade

DEFAULT_FIELDS = {
    "Account": "Id, Name, Website, Industry, NumberOfEmployees, AnnualRevenue, SystemModstamp",
    "Contact": "Id, Email, FirstName, LastName, Title, Phone, AccountId, SystemModstamp",
    "Opportunity": "Id, Name, StageName, CloseDate, AccountId, Amount, SystemModstamp",
}


def _prepare_store() -> str:
    url = database_url()
    engine = make_engine(url)
    try:
        upgrade(engine)
        revision = current_revision(engine)
    finally:
        engine.dispose()
    click.echo(f"Store ready at {safe_url(url)} (schema revision {revision})")
    return url


def _read_object(client: SalesforceClient, sobject: str, batch_size: int) -> tuple[int, int]:
    # Object and field names come from the constant above, never from input.
    soql = f"SELECT {DEFAULT_FIELDS[sobject]} FROM {sobject} ORDER BY SystemModstamp, Id"  # noqa: S608
    pages = records = 0
    for page in client.query_pages(soql, batch_size=batch_size):
        pages += 1
        records += len(page.records)
    return pages, records


@click.command("demo")
@click.option("--contacts", type=click.IntRange(1), default=5000, show_default=True)
@click.option("--accounts", type=click.IntRange(1), default=800, show_default=True)
@click.option("--opportunities", type=click.IntRange(1), default=1500, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--batch-size",
    type=click.IntRange(200, 2000),
    default=2000,
    show_default=True,
    help="Records per query page asked of Salesforce.",
)
def demo(contacts: int, accounts: int, opportunities: int, seed: int, batch_size: int) -> None:
    """Run the pipeline end to end against a local Salesforce emulator."""
    _prepare_store()
    counts = {"Account": accounts, "Contact": contacts, "Opportunity": opportunities}
    started = time.perf_counter()
    org = Org.generate(seed=seed, counts=counts)
    click.echo(f"Generated an org with {counts} in {time.perf_counter() - started:.1f} s")
    state_dir = Path(gtm_home()) / "emulator"
    with running_emulator(state_dir, org=org) as emulator:
        info = emulator.info
        click.echo(f"Emulator serving {info['instance_url']} (CA file {info['ca_bundle']})")
        tokens = obtain_tokens(info)
        click.echo(f"Connected through OAuth: org {tokens['id'].rsplit('/', 2)[-2]}")
        client = SalesforceClient(
            Credentials(tokens["instance_url"], tokens["access_token"]),
            config=ClientConfig(ca_bundle=info["ca_bundle"], api_version=info["api_version"]),
        )
        click.echo(f"{'object':<12} {'pages':>6} {'records':>8} {'seconds':>8}")
        for sobject in DEFAULT_FIELDS:
            started = time.perf_counter()
            pages, records = _read_object(client, sobject, batch_size)
            took = time.perf_counter() - started
            click.echo(f"{sobject:<12} {pages:>6} {records:>8} {took:>8.2f}")
        usage = client.api_usage
        click.echo(
            f"API calls made: {client.calls_made}"
            + (f" (org usage {usage.used}/{usage.total})" if usage else "")
        )
