"""Fixtures shared by the whole suite.

Databases: every store test runs on SQLite (a file in tmp_path) and on the real PostgreSQL named
by GTM_TEST_POSTGRES_URL (default: the machine's server on 127.0.0.1:5432, user postgres). The
suite creates one throw-away database per session on that server and drops it at the end.

Emulator: `emulator` starts the local Salesforce emulator over HTTPS in a background thread.
REQUESTS_CA_BUNDLE is left as the machine sets it, so tests see the wire as production does.
The emulator serves on 127.0.0.1, outside Salesforce's domains, so SALESFORCE_ALLOW_ANY_INSTANCE
is 1 for the whole session (and the processes it spawns), as the demo sets it; tests of the
refusal build their settings with it off.

Fixtures several folders share come from the plugins in `pytest_plugins` below; plain helpers and
constants that test modules import live in `gtm_pipeline_tests/support/`, never in a conftest.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gtm_pipeline_tests.modes import FULL_ENV, full_mode

# Helpers shared by test modules live in gtm_pipeline_tests.support (not in conftest files);
# rewrite their asserts as pytest rewrites a conftest's, so a failing helper explains itself.
pytest.register_assert_rewrite("gtm_pipeline_tests.support")

from gtm_pipeline_tests.support.postgres import _reset_postgres  # noqa: E402

pytest_plugins = [
    "gtm_pipeline_tests.secret_scan",
    "gtm_pipeline_tests.run_summary",
    # Fixtures shared across folders (connect/, web/, security/); a folder's conftest overrides.
    "gtm_pipeline_tests.support.connect_fixtures",
    "gtm_pipeline_tests.support.web_fixtures",
]

DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full",
        action="store_true",
        help="Full mode: long crash, fault and fuzz runs, and the tests marked slow "
        "(same as GTM_FULL_TESTS=1).",
    )


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: three workers for two cores (half as many again, at most 4). A third of a
    two-worker run was idle time (tests waiting on emulators, subprocesses, PostgreSQL and the
    browser), which a third worker fills."""
    return min(4, max(1, (os.cpu_count() or 1) * 3 // 2))


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--full"):
        os.environ[FULL_ENV] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _heavy_first(items, config)
    if full_mode():
        return
    skip = pytest.mark.skip(reason="slow: runs with --full or GTM_FULL_TESTS=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _heavy_first(items: list[pytest.Item], config: pytest.Config) -> None:
    """Tests marked `heavy` at the head of the workers' first queues, so they start at once on
    different workers instead of queueing behind each other on one. `make test` uses
    pytest-xdist's worksteal schedule, which first hands worker i the next
    `pending // (workers - i)` tests in order (an idle worker then takes tests from the end of a
    busy one's queue, never its head); heavy test j goes to the head of worker j % workers."""
    heavy = [item for item in items if "heavy" in item.keywords]
    light = [item for item in items if "heavy" not in item.keywords]
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    sizes, pending = [], len(items)
    for i in range(workers):
        sizes.append(pending // (workers - i))
        pending -= sizes[-1]
    queues = [heavy[i::workers] for i in range(workers)]
    if any(len(queue) > size for queue, size in zip(queues, sizes, strict=True)):
        items[:] = heavy + light
        return
    ordered, rest = [], iter(light)
    for queue, size in zip(queues, sizes, strict=True):
        ordered += queue + [next(rest) for _ in range(size - len(queue))]
    items[:] = ordered


def _admin_url() -> str:
    return os.environ.get("GTM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN_URL)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session; dropped afterwards."""
    admin = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"gtm_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL is not reachable at GTM_TEST_POSTGRES_URL: {exc.orig}")
    url = sa.engine.make_url(_admin_url()).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    url = request.getfixturevalue("postgres_server_url")
    _reset_postgres(url)
    return url


def _migrated(url: str) -> Iterator[sa.Engine]:
    """An engine on the empty database at `url`, migrated to head; disposed afterwards."""
    from gtm_pipeline.store import make_engine, upgrade

    migrated = make_engine(url)
    upgrade(migrated)
    yield migrated
    migrated.dispose()


@pytest.fixture()
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on an empty database migrated to head, once per database of `database_url`."""
    yield from _migrated(database_url)


@pytest.fixture()
def sqlite_engine(tmp_path) -> Iterator[sa.Engine]:
    """An engine on an empty SQLite store migrated to head, for tests of SQLite alone."""
    yield from _migrated(f"sqlite:///{tmp_path / 'store.db'}")


@pytest.fixture(scope="session", autouse=True)
def _emulator_instances_allowed() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SALESFORCE_ALLOW_ANY_INSTANCE", "1")
        yield


@pytest.fixture()
def usual_umask() -> Iterator[None]:
    """The umask most machines have (022): what SQLite and mkdir alone would make world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture()
def gtm_home(tmp_path, monkeypatch) -> str:
    """An isolated GTM_HOME so nothing a test does lands in the working tree."""
    home = tmp_path / "gtm-home"
    home.mkdir()
    monkeypatch.setenv("GTM_HOME", str(home))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return str(home)


@pytest.fixture(autouse=True)
def _fresh_describe_cache() -> Iterator[None]:
    """Every test starts and ends with an empty describe cache (a per-process cache of the
    org's field lists): no test sees another's org, and describe-call counts are per test."""
    from gtm_pipeline.salesforce.metadata import clear_describe_cache

    clear_describe_cache()
    yield
    clear_describe_cache()
