"""Process isolation for benchmarks: each scenario in its own child, the emulators in another.

Peak memory is a per-process high-water mark, so a scenario run in the benchmark's own process
would report the largest of everything run before it, and an emulator in the same process would
add the whole org it serves. Here every scenario runs in a fresh child (forked from a
`forkserver` that has the heavy libraries imported once, so a child starts in milliseconds, not
seconds) and reports its own peak; the emulators serve from yet another child.
"""

from __future__ import annotations

import gc
import multiprocessing
import resource
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# Imported once by the fork server: a child pays for these at most once, outside its timing.
# The peak memory each child reports includes them, as it would in any process running a sync.
PRELOAD = [
    "pandas",
    "pyarrow",
    "sqlalchemy",
    "gtm_pipeline.sync.runner",
    "benchmarks.sync_scenarios",
]
EMULATOR_START_TIMEOUT = 900.0


class ScenarioFailed(RuntimeError):
    """A scenario raised in its child; the message carries the child's traceback."""


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    `VmHWM` is the high-water mark of the process's own address space. `ru_maxrss` is the
    fallback: on Linux it can also carry the peak of the process it was exec'd from.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def _scenario_child(conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        result = fn(*args)
        conn.send(("ok", result, peak_rss_mb()))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", traceback.format_exc(), peak_rss_mb()))
    finally:
        conn.close()


def run_isolated(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Run `fn(*args)` in a fresh child process; return its result and the child's peak RSS (MB).

    `fn` must be a module-level function and its arguments and result picklable.
    """
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_scenario_child, args=(sender, fn, args))
    child.start()
    sender.close()
    try:
        status, payload, peak = receiver.recv()
    except EOFError:
        child.join()
        raise ScenarioFailed(f"{fn.__name__} died with exit code {child.exitcode}") from None
    finally:
        receiver.close()
    child.join()
    if status != "ok":
        raise ScenarioFailed(f"{fn.__name__} failed in its child process:\n{payload}")
    return payload, peak


def _emulator_child(
    conn: Connection,
    stop: Any,
    state_dir: str,
    orgs: Mapping[str, Mapping[str, Any]],
    options: Mapping[str, Any],
) -> None:
    from gtm_pipeline.emulator.org import Org
    from gtm_pipeline.emulator.testing import running_emulator

    try:
        started = time.perf_counter()
        generated = {name: Org.generate(**org_args) for name, org_args in orgs.items()}
        seconds = round(time.perf_counter() - started, 2)
        # The orgs live as long as the process: frozen, a full collection no longer walks their
        # objects (163,000 for the default orgs, 0.2 s) in the middle of a measured row.
        gc.freeze()
        with ExitStack() as stack:
            infos = {
                name: stack.enter_context(
                    running_emulator(Path(state_dir) / name, org=org, **options)
                ).info
                for name, org in generated.items()
            }
            conn.send(("ready", infos, seconds))
            stop.wait()
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", traceback.format_exc(), 0.0))


@contextmanager
def emulator_process(
    orgs: Mapping[str, Mapping[str, int]],
    *,
    seed: int = 42,
    dirty_ratio: float = 0.05,
    **options: Any,
) -> Iterator[tuple[dict[str, dict[str, Any]], float]]:
    """Emulators serving generated orgs (name → object counts) from one child process.

    Yields each org's emulator.json dict by name, and the seconds generating them all took.
    The dicts hold the client secret and the control token, so they travel through a pipe and
    are never printed. `options` are `running_emulator` options, the same for every org.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    stop = context.Event()
    org_args = {
        name: {"seed": seed, "counts": dict(counts), "dirty_ratio": dirty_ratio}
        for name, counts in orgs.items()
    }
    with tempfile.TemporaryDirectory(prefix="gtm_bench_emulator_") as state_dir:
        child = context.Process(
            target=_emulator_child,
            args=(sender, stop, state_dir, org_args, dict(options)),
            daemon=True,
        )
        child.start()
        sender.close()
        try:
            if not receiver.poll(EMULATOR_START_TIMEOUT):
                raise ScenarioFailed("the emulators did not start in time")
            status, payload, generated = receiver.recv()
            if status != "ready":
                raise ScenarioFailed(f"the emulator failed to start:\n{payload}")
            yield payload, generated
        finally:
            stop.set()
            child.join(30)
            if child.is_alive():
                child.terminate()
                child.join()
            receiver.close()
