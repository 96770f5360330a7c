"""Ctrl-C in the demo stops `dagster dev` and everything it started: no process of its group is
left, even one that ignores SIGINT, and nothing raises (the demo used to print a traceback and
leave the daemon, webserver and code server running)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gtm_pipeline.cli.demo import stop_process_group

# A stand-in for `dagster dev`: it starts a child (as dagster dev starts its daemon and servers)
# and waits. With `stubborn`, the child ignores SIGINT, so only the escalation can stop it.
UI = """
import signal, subprocess, sys, time
stubborn = sys.argv[2] == "stubborn"
setup = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); " if stubborn else ""
code = setup + "import pathlib, time; pathlib.Path(sys.argv[1]).write_text('up'); time.sleep(120)"
subprocess.Popen([sys.executable, "-c", "import sys; " + code, sys.argv[1]])
time.sleep(120)
"""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("kind", ["obliging", "stubborn"])
def test_the_whole_group_is_stopped(tmp_path: Path, kind: str):
    ready = tmp_path / "child-ready"
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", UI, str(ready), kind], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline, "the stand-in UI did not start its child"
            time.sleep(0.05)
        stop_process_group(process, grace=1.0)
        assert process.poll() is not None
        assert not _group_alive(process.pid)
    finally:
        if _group_alive(process.pid):
            os.killpg(process.pid, 9)
