"""`gtm-pipeline emulator`: serve a generated Salesforce org over HTTPS on loopback until Ctrl-C.

Secrets (client secret, control token) are never printed: they live in emulator.json, readable
only by its owner, and the command points at that file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from gtm_pipeline.cli.common import program_settings
from gtm_pipeline.emulator.latency import PROFILE_NAMES, profile_named


def _counts(given: dict[str, int | None]) -> dict | None:
    """The counts given on the command line, by object; None when none was given."""
    counts = {name: n for name, n in given.items() if n is not None}
    return counts or None


def _announce(info: dict[str, Any], info_path: Path, generated_in: float, latency: str) -> None:
    click.echo(f"Salesforce emulator ready (org generated in {generated_in:.1f} s)")
    click.echo(f"  login_url     {info['login_url']}")
    click.echo(f"  instance_url  {info['instance_url']}")
    click.echo(f"  ca_bundle     {info['ca_bundle']}")
    click.echo(f"  api_version   {info['api_version']}")
    if latency != "none":
        click.echo(f"  latency       {latency} profile")
    click.echo(f"  credentials   client id/secret and control token in {info_path}")
    click.echo("Press Ctrl-C to stop.")


@click.command("emulator")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Loopback address to listen on (127.0.0.1, ::1 or localhost).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port; 0 picks a free one.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where emulator.json and the TLS files go [default: $GTM_HOME/emulator].",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the generated org.")
@click.option("--accounts", type=click.IntRange(0), default=None, help="Accounts to generate.")
@click.option("--contacts", type=click.IntRange(0), default=None, help="Contacts to generate.")
@click.option(
    "--opportunities", type=click.IntRange(0), default=None, help="Opportunities to generate."
)
@click.option("--leads", type=click.IntRange(0), default=None, help="Leads to generate [0].")
@click.option("--tasks", type=click.IntRange(0), default=None, help="Tasks to generate [0].")
@click.option("--events", type=click.IntRange(0), default=None, help="Events to generate [0].")
@click.option(
    "--dirty-ratio",
    type=click.FloatRange(0.0, 1.0),
    default=0.05,
    show_default=True,
    help="Share of records with data-quality problems.",
)
@click.option("--auto-approve", is_flag=True, help="Skip the OAuth consent page.")
@click.option(
    "--session-lifetime",
    type=click.FloatRange(min=1.0),
    default=7200.0,
    show_default=True,
    help="Seconds an access token stays valid.",
)
@click.option(
    "--daily-api-limit",
    type=click.IntRange(0),
    default=15000,
    show_default=True,
    help="Data API calls allowed before 403 REQUEST_LIMIT_EXCEEDED.",
)
@click.option(
    "--page-size",
    type=click.IntRange(1),
    default=None,
    help="Serve query pages of this size whatever batchSize the client asks.",
)
@click.option(
    "--latency-profile",
    type=click.Choice(PROFILE_NAMES),
    default="none",
    show_default=True,
    help="Answer like a remote Salesforce: realistic waits 100 ms a data call + 0.6 ms per KB "
    "of JSON, and Bulk jobs run 10 s + 2 s per 100,000 rows (see emulator/latency.py).",
)
def emulator(
    host: str,
    port: int,
    state_dir: Path | None,
    seed: int,
    accounts: int | None,
    contacts: int | None,
    opportunities: int | None,
    leads: int | None,
    tasks: int | None,
    events: int | None,
    dirty_ratio: float,
    auto_approve: bool,
    session_lifetime: float,
    daily_api_limit: int,
    page_size: int | None,
    latency_profile: str,
) -> None:
    """Run a local Salesforce API (OAuth, REST query/describe/collections) over HTTPS."""
    from gtm_pipeline.emulator.org import Org
    from gtm_pipeline.emulator.paging import PageSizePolicy
    from gtm_pipeline.emulator.server import LOOPBACK_HOSTS, EmulatorStartError, serve
    from gtm_pipeline.emulator.state import EmulatorOptions

    if host not in LOOPBACK_HOSTS:
        allowed = ", ".join(sorted(LOOPBACK_HOSTS))
        raise click.BadParameter(
            f"{host!r} is not a loopback address ({allowed})", param_hint="--host"
        )
    started = time.perf_counter()
    counts = _counts(
        {
            "Account": accounts,
            "Contact": contacts,
            "Opportunity": opportunities,
            "Lead": leads,
            "Task": tasks,
            "Event": events,
        }
    )
    org = Org.generate(seed=seed, counts=counts, dirty_ratio=dirty_ratio)
    generated_in = time.perf_counter() - started
    options = EmulatorOptions(
        auto_approve=auto_approve,
        session_lifetime=session_lifetime,
        daily_api_limit=daily_api_limit,
        page_size=PageSizePolicy.from_json(page_size),
        latency_profile=profile_named(latency_profile),
    )
    try:
        serve(
            org,
            state_dir or program_settings().gtm_home / "emulator",
            host=host,
            port=port,
            options=options,
            on_ready=lambda info, path: _announce(info, path, generated_in, latency_profile),
        )
    except EmulatorStartError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("Emulator stopped.")
