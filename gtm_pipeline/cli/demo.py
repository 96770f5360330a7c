"""`gtm-pipeline demo`: the whole pipeline against a local Salesforce emulator, no org needed.

1. Start the emulator with a generated org (consent auto-approved) and point the settings at it.
2. Connect the `demo` tenant through the real OAuth web server flow (`gtm-pipeline connect`).
3. Full sync of accounts → contacts → leads → opportunities → tasks, events (Dagster,
   in-process, persistent instance).
4. Change records in the emulator (updates, deletes, a new contact, a late-visible commit, a
   meeting logged with a contact, a lead converted into a contact).
5. Incremental sync, and what it picked up.
6. Map the org's score fields for the tenant (checked against its describe), compute scores and
   write them back to Salesforce; print each entity type's WritebackResult.
7. Unless `--no-ui`: `dg dev` on the same instance, while the emulator keeps serving.

The demo tenant's synced data is cleared at the start, so each run tells the same story.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gtm_pipeline.cli.common import open_store, program_settings
from gtm_pipeline.cli.connect import connect
from gtm_pipeline.config import Settings
from gtm_pipeline.private_files import private_dir, private_file

if TYPE_CHECKING:
    import sqlalchemy as sa

    from gtm_pipeline.emulator.testing import EmulatorHandle

DEMO_TENANT = "demo"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _demo_secrets(home: Path) -> dict[str, str]:
    """The demo's encryption key and state secret, made once and kept (0600) under GTM_HOME."""
    path = home / "demo-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "CONNECTOR_ENCRYPTION_KEY": secrets.token_hex(32),
        "CLERK_SECRET_KEY": secrets.token_urlsafe(48),
    }
    private_file(path).write_text(json.dumps(values))
    return values


def _emulator_settings(emulator: EmulatorHandle, home: Path) -> dict[str, str]:
    """The variables that point the demo at the emulator, with the demo's own keys."""
    from gtm_pipeline.emulator.testing import salesforce_environment

    return {
        **_demo_secrets(home),
        **salesforce_environment(emulator.info),
        "SALESFORCE_CALLBACK_URL": (
            f"http://127.0.0.1:{_free_port()}/api/connectors/salesforce/callback"
        ),
    }


def _change_records(emulator: EmulatorHandle) -> list[str]:
    """A few realistic changes made in 'Salesforce' between the two syncs."""
    contacts = [r for r in emulator.control.truth("Contact") if not r["IsDeleted"]]
    clean = [r for r in contacts if not r.get("_dirty")]
    updated, deleted = clean[:5], clean[5:8]
    ops = [
        {"op": "update", "object": "Contact", "id": r["Id"], "fields": {"Title": "VP Revenue"}}
        for r in updated
    ]
    ops += [{"op": "delete", "object": "Contact", "id": r["Id"]} for r in deleted]
    ops.append(
        {
            "op": "insert",
            "object": "Contact",
            "fields": {"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"},
        }
    )
    ops.append(
        {
            "op": "late_commit",
            "object": "Contact",
            "id": clean[8]["Id"],
            "fields": {"Phone": "+1 555 0100"},
            "age_seconds": 120,
        }
    )
    ops.append(_meeting_with(updated[0]["Id"]))
    lead = _open_lead(emulator)
    if lead is not None:
        ops.append({"op": "convert", "object": "Lead", "id": lead})
    emulator.control.mutate(ops)
    converted = ["converted 1 lead into a contact (it leaves the live leads)"] if lead else []
    return [
        f"updated the title of {len(updated)} contacts",
        f"deleted {len(deleted)} contacts",
        "inserted 1 contact",
        "committed 1 phone change that became visible 2 minutes late",
        "logged a meeting with one of those contacts an hour ago (it raises their engagement)",
        *converted,
    ]


def _open_lead(emulator: EmulatorHandle) -> str | None:
    """A clean Lead not converted yet, with a company to make an account of; None if none."""
    leads = emulator.control.truth("Lead")
    return next(
        (
            r["Id"]
            for r in leads
            if not (r["IsDeleted"] or r["IsConverted"] or r.get("_dirty")) and r.get("Company")
        ),
        None,
    )


def _meeting_with(contact_id: str) -> dict:
    """An Event insert: a 30-minute meeting with the contact that started an hour ago."""
    start = datetime.now(UTC) - timedelta(hours=1)
    stamp = "%Y-%m-%dT%H:%M:%S.000+0000"
    return {
        "op": "insert",
        "object": "Event",
        "fields": {
            "Subject": "Demo: discovery meeting",
            "Type": "Meeting",
            "WhoId": contact_id,
            "DurationInMinutes": 30,
            "StartDateTime": start.strftime(stamp),
            "EndDateTime": (start + timedelta(minutes=30)).strftime(stamp),
        },
    }


def _map_score_fields(engine: sa.Engine) -> list[str]:
    """Map each entity type's scores to the org's score fields, as a tenant would."""
    from gtm_pipeline.connect.tokens import TenantClients
    from gtm_pipeline.writeback.mapping import (
        DEFAULT_FIELD_MAP,
        ENTITY_TYPES,
        save_writeback_map,
        validate_writeback_map,
    )

    client = TenantClients.from_settings(engine, program_settings()).for_tenant(DEMO_TENANT)
    lines = []
    for entity_type in ENTITY_TYPES:
        checked = validate_writeback_map(client, entity_type, DEFAULT_FIELD_MAP, refresh=True)
        with engine.begin() as conn:
            save_writeback_map(conn, DEMO_TENANT, entity_type, checked)
        lines.append(f"{entity_type}: {', '.join(f'{k} → {v}' for k, v in checked.items())}")
    return lines


UI_STOP_SECONDS = 6.0
"""How long `dg dev` gets to shut down after Ctrl-C before its processes are terminated (it
took about 1 s in the demo); with the escalation below, every process is gone within 10 s."""


def _serve_ui(port: int) -> None:
    # `dg dev` (Dagster's project CLI, installed beside this interpreter) with the code location
    # named, so it serves the same definitions from any folder; `dagster dev -m` works as well.
    dg = Path(sys.executable).with_name("dg")
    command = [str(dg), "dev", "-m", "gtm_pipeline.definitions", "-h", "127.0.0.1",
               "-p", str(port)]  # fmt: skip
    click.echo(f"Starting the Dagster UI on http://127.0.0.1:{port} (Ctrl-C stops it and the demo)")
    # In a session of its own, so a terminal's Ctrl-C reaches the demo alone, which then stops
    # the whole group: dg dev, its daemon, webserver and code server.
    process = subprocess.Popen(command, start_new_session=True)  # noqa: S603

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # A terminated demo, or one whose terminal closed, takes the UI down too.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        process.wait()
    except KeyboardInterrupt:
        click.echo("Stopping the Dagster UI ...")
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: no traceback
        try:
            stop_process_group(process, UI_STOP_SECONDS)
        finally:
            signal.signal(signal.SIGINT, interrupt)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_process_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """Stop `process` and every process of its group: SIGINT (a clean shutdown), then after
    `grace` seconds SIGTERM, then SIGKILL, each time until none of them is left."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 1.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        if _group_gone(process, wait):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=1)


def _group_gone(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether every process of `process`'s group has exited within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.poll()  # reap the leader, so it does not linger as a zombie of the group
        if not group_running(process.pid):
            return True
        time.sleep(0.1)
    return False


def group_running(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs. On Linux a zombie does not count: it has
    exited and waits to be reaped, and an orphan's zombie waits for PID 1, which in some
    containers reaps late or never. Elsewhere any member counts."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    return any(_running_in_group(stat, pgid) for stat in proc.glob("[0-9]*/stat"))


def _running_in_group(stat: Path, pgid: int) -> bool:
    try:  # after the command's closing parenthesis: state, parent, group, ...
        state, _parent, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
    except (OSError, IndexError, ValueError):
        return False  # the process ended while being read
    if int(group) != pgid:
        return False
    # A process whose main thread exited shows Z (or X) while its other threads run on.
    return state not in ("Z", "X") or _threads(stat.parent) > 1


def _threads(process: Path) -> int:
    try:
        return sum(1 for _ in (process / "task").iterdir())
    except OSError:
        return 0


@click.command("demo")
@click.option("--contacts", type=click.IntRange(1), default=5000, show_default=True)
@click.option("--accounts", type=click.IntRange(1), default=800, show_default=True)
@click.option("--opportunities", type=click.IntRange(1), default=1500, show_default=True)
@click.option("--leads", type=click.IntRange(0), default=2000, show_default=True)
@click.option("--tasks", type=click.IntRange(0), default=4000, show_default=True)
@click.option("--events", type=click.IntRange(0), default=1200, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--no-ui", is_flag=True, help="Stop after the syncs instead of starting dg dev.")
@click.option("--ui-port", type=click.IntRange(1, 65535), default=3000, show_default=True)
@click.pass_context
def demo(
    ctx: click.Context,
    contacts: int,
    accounts: int,
    opportunities: int,
    leads: int,
    tasks: int,
    events: int,
    seed: int,
    no_ui: bool,
    ui_port: int,
) -> None:
    """Run the pipeline end to end against a local Salesforce emulator."""
    from gtm_pipeline.cli.instance import local_instance
    from gtm_pipeline.cli.sync import run_sync, summary_table
    from gtm_pipeline.cli.writeback import results_table, run_writeback
    from gtm_pipeline.emulator.org import Org
    from gtm_pipeline.emulator.testing import running_emulator
    from gtm_pipeline.store import safe_url
    from gtm_pipeline.store.tenants import delete_synced_data

    home = private_dir(program_settings().gtm_home)
    engine = open_store()
    with engine.begin() as conn:
        delete_synced_data(conn, DEMO_TENANT)
    click.echo(f"Store: {safe_url(program_settings().database_url)}")
    counts = {
        "Account": accounts,
        "Contact": contacts,
        "Opportunity": opportunities,
        "Lead": leads,
        "Task": tasks,
        "Event": events,
    }
    started = time.perf_counter()
    org = Org.generate(seed=seed, counts=counts)
    click.echo(f"Generated a Salesforce org with {counts} in {time.perf_counter() - started:.1f} s")
    with (
        local_instance() as instance,
        running_emulator(home / "emulator", org=org, auto_approve=True) as emulator,
    ):
        click.echo(f"Emulator: {emulator.info['instance_url']}")
        # Into the process environment: the Dagster resources take the secrets through EnvVar
        # (so Dagster never stores their values), and the UI's processes inherit them.
        os.environ.update(_emulator_settings(emulator, home))
        ctx.find_root().obj = Settings.from_process()  # what every step below reads
        ctx.invoke(connect, tenant=DEMO_TENANT, auto_approve=True, timeout=60.0)
        click.echo("\nFull sync:")
        first = run_sync(DEMO_TENANT, full=True, instance=instance)
        click.echo(summary_table(first.summary))
        if not first.success:
            raise click.ClickException(first.failure or "the full sync failed")
        click.echo("\nChanges made in Salesforce meanwhile:")
        for line in _change_records(emulator):
            click.echo(f"  - {line}")
        click.echo("\nIncremental sync:")
        second = run_sync(DEMO_TENANT, instance=instance)
        click.echo(summary_table(second.summary))
        if not second.success:
            raise click.ClickException(second.failure or "the incremental sync failed")
        click.echo("\nScore fields mapped (checked against the org's describe):")
        for line in _map_score_fields(engine):
            click.echo(f"  {line}")
        click.echo("\nScores computed and written back to Salesforce:")
        written = run_writeback(DEMO_TENANT, instance=instance, log_level="WARNING")
        click.echo(results_table(written.results))
        if not written.success:
            raise click.ClickException(written.failure or "the writeback failed")
        click.echo(f"\nDagster home: {os.environ['DAGSTER_HOME']}")
        if not no_ui:
            _serve_ui(ui_port)
