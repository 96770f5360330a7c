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

from gtm_pipeline.cli.demo import group_running, stop_process_group

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
        assert not group_running(process.pid)
    finally:
        if group_running(process.pid):
            os.killpg(process.pid, 9)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="zombies are told apart on Linux")
def test_a_group_left_with_an_unreaped_zombie_is_not_running():
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", "import time; time.sleep(0.2)"], start_new_session=True
    )
    try:
        assert group_running(process.pid)
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        os.killpg(process.pid, 0)  # still a member of its group, as a zombie
        assert not group_running(process.pid)
    finally:
        process.wait()
