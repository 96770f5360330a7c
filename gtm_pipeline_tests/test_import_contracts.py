"""The package's import graph keeps its shape: the contracts in pyproject.toml, and a fast CLI.

`[tool.importlinter]` puts the entry points (cli, definitions, web and defs) above the library:
nothing below them imports them, and the packages of one layer do not import each other, so the
package graph has no cycle. The CLI's command modules import their heavy dependencies only when
a command runs, so `gtm-pipeline --help` loads neither Dagster nor pandas.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from gtm_pipeline.cli.writeback_mapping import ALLOW_STANDARD_FLAG, writeback_mapping
from gtm_pipeline.writeback import mapping as writeback_rules

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
HEAVY = ("dagster", "pandas", "pandera", "sqlalchemy", "uvicorn", "starlette")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter: import-linter reconfigures logging (disabling every logger
    already made), and the help probe must start with nothing imported."""
    return subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )


def test_the_import_contracts_are_kept():
    run = _python(
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(PYPROJECT)!r}, no_cache=True))"
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def test_the_cli_and_its_help_load_nothing_heavy():
    probe = (
        "import sys; from click.testing import CliRunner; from gtm_pipeline.cli import main; "
        "run = CliRunner().invoke; assert run(main, ['--help']).exit_code == 0; "
        "assert run(main, ['mapping', 'writeback', 'set', '--help']).exit_code == 0; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    run = _python(probe)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "[]"


def test_the_cli_names_the_flag_the_writeback_refusals_name():
    options = {o for p in writeback_mapping.commands["set"].params for o in p.opts}
    assert ALLOW_STANDARD_FLAG == writeback_rules.ALLOW_STANDARD_FLAG
    assert ALLOW_STANDARD_FLAG in options


# The process environment is read by `Settings.from_process()` alone; the demo also writes its
# emulator's settings into it, and the CLI points Dagster at its home (DAGSTER_HOME), because
# Dagster reads those from the process environment itself; the sync leaves glibc's malloc arenas
# alone when the environment set them for glibc (`sync/heap.py`).
ENVIRONMENT_READERS = {"config.py": 1, "cli/demo.py": 2, "cli/instance.py": 1, "sync/heap.py": 1}


def _reads_environment(path: Path) -> list[int]:
    """Lines of `path` that touch `os.environ` or call `os.getenv`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv")
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ]


def test_only_the_settings_read_the_environment():
    """Settings are read once where programs start (`Settings.from_process()` in the CLI, the
    web command and the Dagster definitions) and passed down: no other module reads them."""
    package = PYPROJECT.parent / "gtm_pipeline"
    found = {
        str(path.relative_to(package)): len(lines)
        for path in sorted(package.rglob("*.py"))
        if (lines := _reads_environment(path))
    }
    assert found == ENVIRONMENT_READERS
