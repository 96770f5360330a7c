"""The Dagster instance the CLI and the demo use, so their runs show up in `dagster dev`'s UI.

`DAGSTER_HOME` when set; otherwise `$GTM_HOME/dagster_home`, created with the local instance
settings shipped in the package (the same as the repository's dagster.yaml: run retries, one run
per tenant).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import dagster as dg
from dagster._core.storage.defs_state.base import set_defs_state_storage

from gtm_pipeline.config import gtm_home


def dagster_home() -> Path:
    configured = os.environ.get("DAGSTER_HOME", "").strip()
    home = Path(configured) if configured else gtm_home() / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        with resources.as_file(resources.files("gtm_pipeline.defs") / "dagster_local.yaml") as src:
            shutil.copyfile(src, settings)
    return home


def local_instance() -> dg.DagsterInstance:
    """The persistent local instance (sets DAGSTER_HOME for this process and its children)."""
    os.environ["DAGSTER_HOME"] = str(dagster_home())
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
