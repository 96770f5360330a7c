"""`gtm-pipeline`: the command line. Exit 0 on success, else non-zero with a one-line reason."""

from __future__ import annotations

import logging
import sys

import click

from gtm_pipeline.errors import GtmError


class _Group(click.Group):
    """Turns the project's own errors (`GtmError`) into one clear line and exit code 1."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except GtmError as exc:
            click.echo(f"error: {exc.user_message}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail to stderr.")
def main(verbose: bool) -> None:
    """gtm-pipeline: a Salesforce connector for go-to-market data, as a Dagster code location."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    from gtm_pipeline.connect.cli import connect, operator, web
    from gtm_pipeline.connect.commands import rotate_key_command
    from gtm_pipeline.defs.commands import sync
    from gtm_pipeline.defs.reconcile_commands import reconcile
    from gtm_pipeline.defs.writeback_commands import writeback
    from gtm_pipeline.demo import demo
    from gtm_pipeline.emulator.command import emulator
    from gtm_pipeline.sync.mapping_cli import mapping
    from gtm_pipeline.sync.quality_cli import quality
    from gtm_pipeline.writeback.mapping_cli import writeback_mapping

    commands = (
        emulator,
        demo,
        web,
        connect,
        operator,
        sync,
        reconcile,
        rotate_key_command,
        mapping,
        quality,
        writeback,
    )
    for command in commands:
        main.add_command(command)
    mapping.add_command(writeback_mapping)


_register()
