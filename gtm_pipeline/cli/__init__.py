"""`gtm-pipeline`: the command line. Exit 0 on success, else non-zero with a one-line reason.

One module per thing a user does (connect, web, operator, sync, reconcile, mapping, quality,
writeback, emulator, demo); `common` holds what they share. Nothing outside `cli/` imports it.
"""

from __future__ import annotations

import logging

import click

from gtm_pipeline.cli.common import GtmGroup


@click.group(cls=GtmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail to stderr.")
def main(verbose: bool) -> None:
    """gtm-pipeline: a Salesforce connector for go-to-market data, as a Dagster code location."""
    from gtm_pipeline.sync.heap import cap_malloc_arenas  # the standard library only

    cap_malloc_arenas()  # before any thread: glibc fixes its limit once it has made 8 arenas
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    """Every command, by what the user does. The command modules import click and little else;
    each imports Dagster, pandas or the store only when it runs, so `--help` answers at once."""
    from gtm_pipeline.cli.connect import connect
    from gtm_pipeline.cli.demo import demo
    from gtm_pipeline.cli.emulator import emulator
    from gtm_pipeline.cli.mapping import mapping
    from gtm_pipeline.cli.operator import operator, rotate_key_command
    from gtm_pipeline.cli.quality import quality
    from gtm_pipeline.cli.reconcile import reconcile
    from gtm_pipeline.cli.sync import sync
    from gtm_pipeline.cli.web import web
    from gtm_pipeline.cli.writeback import writeback
    from gtm_pipeline.cli.writeback_mapping import writeback_mapping

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
