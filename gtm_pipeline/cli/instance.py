"""The Dagster instance the CLI and the demo use, so their runs show up in `dagster dev`'s UI.

`DAGSTER_HOME` when set; otherwise `$GTM_HOME/dagster_home`, created with the local instance
settings shipped in the package (the same as the repository's dagster.yaml: run retries, one run
per tenant).

The default home and GTM_HOME are private folders (0700, tightened if looser), so the run and
event databases Dagster writes there are out of other users' reach whatever mode Dagster gives
them; folders created for a configured DAGSTER_HOME are 0700 too, and the dagster.yaml written
into either is 0600.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import dagster as dg

# No public API sets the definitions-state storage that `materialize` reads for the instance a
# command entered (see `on_instance` below); this private context manager is Dagster's own.
from dagster._core.storage.defs_state.base import set_defs_state_storage

from gtm_pipeline.cli.common import program_settings
from gtm_pipeline.config import Settings
from gtm_pipeline.defs.partitions import salesforce_tenants
from gtm_pipeline.private_files import create_private_dirs, private_dir, private_file


def dagster_home(settings: Settings) -> Path:
    """The settings' DAGSTER_HOME, else GTM_HOME/dagster_home; with a dagster.yaml in it."""
    home = settings.dagster_home
    if home is not None:
        create_private_dirs(home)
    else:
        home = private_dir(private_dir(settings.gtm_home) / "dagster_home")
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists():
        shipped = resources.files("gtm_pipeline.defs") / "dagster_local.yaml"
        private_file(instance_yaml).write_bytes(shipped.read_bytes())
    return home


def program_resources() -> dict[str, Any]:
    """The store and Salesforce resources, from this command's settings."""
    from gtm_pipeline.defs.resources import shared_resources

    return shared_resources(program_settings())


def local_instance() -> dg.DagsterInstance:
    """The persistent local instance (sets DAGSTER_HOME for this process and its children)."""
    os.environ["DAGSTER_HOME"] = str(dagster_home(program_settings()))
    return dg.DagsterInstance.get()


@contextmanager
def on_instance(instance: dg.DagsterInstance) -> Iterator[None]:
    """Make `instance` the one Dagster consults while building definitions for a run.

    Dagster keeps the current instance's definitions-state storage in a context variable that
    `materialize` reads; when another (already disposed) instance was entered earlier in the
    same process, it would otherwise fail with "undefined DagsterInstance weakref".
    """
    with set_defs_state_storage(instance.defs_state_storage):
        yield


def add_tenant_partition(instance: dg.DagsterInstance, tenant_id: str) -> None:
    """Make `tenant_id` a partition of `salesforce_tenants` on `instance`, if it is not yet."""
    if not instance.has_dynamic_partition(salesforce_tenants.name, tenant_id):
        instance.add_dynamic_partitions(salesforce_tenants.name, [tenant_id])
