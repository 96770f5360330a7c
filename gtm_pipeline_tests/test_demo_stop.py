"""Ctrl-C in the demo stops `dagster dev` and everything it started: no process of its group is
left, even one that ignores SIGINT, and nothing raises (the demo used to print a traceback and
leave the daemon, webserver and code server running)."""

from __future__ import annotations

import contextlib
import os
import signal
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
code = setup + (
    "import os, pathlib, time; pathlib.Path(sys.argv[1]).write_text(str(os.getpid())); "
    "time.sleep(120)"
)
subprocess.Popen([sys.executable, "-c", "import sys; " + code, sys.argv[1]])
time.sleep(120)
"""


def _exited(pid: int) -> bool:
    """Whether `pid` is gone or a zombie (read from /proc where it exists, not through the
    function under test)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


@pytest.mark.parametrize("kind", ["obliging", "stubborn"])
def test_the_whole_group_is_stopped(tmp_path: Path, kind: str):
    ready = tmp_path / "child-ready"
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", UI, str(ready), kind], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() or not ready.read_text():
            assert time.monotonic() < deadline, "the stand-in UI did not start its child"
            time.sleep(0.05)
        child = int(ready.read_text())
        stop_process_group(process, grace=1.0)
        assert process.poll() is not None
        assert _exited(child), "the UI's child (a member of its group) still runs"
        assert not group_running(process.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="zombies are told apart on Linux")
def test_a_group_left_with_an_unreaped_zombie_is_not_running():
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert group_running(process.pid)  # waiting for its standard input to end
        process.stdin.close()
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        os.killpg(process.pid, 0)  # still a member of its group, as a zombie
        assert not group_running(process.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# The main thread ends (pthread_exit) while another thread waits for standard input: /proc then
# shows the process as a zombie, though it still runs.
MAIN_THREAD_GONE = """
import ctypes, pathlib, sys, threading
threading.Thread(target=sys.stdin.read).start()
pathlib.Path(sys.argv[1]).write_text("up")
ctypes.CDLL(None).pthread_exit(None)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="zombies are told apart on Linux")
def test_a_process_whose_main_thread_exited_still_runs(tmp_path: Path):
    ready = tmp_path / "ready"
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", MAIN_THREAD_GONE, str(ready)],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not _exited(process.pid) or not ready.exists():
            assert time.monotonic() < deadline, "the main thread did not exit"
            time.sleep(0.05)
        assert process.poll() is None
        assert group_running(process.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
