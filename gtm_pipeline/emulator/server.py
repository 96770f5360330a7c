"""Run the emulator: in a background thread (tests, demo) or blocking until Ctrl-C (CLI).

Both paths bind the socket and listen on it first, so `port=0` resolves to a real port before
the TLS files, the OAuth URLs and emulator.json are made, and a client reading emulator.json
can connect at once; then uvicorn serves on that socket.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from gtm_pipeline.emulator.app import build_app, quiet_dropped_connections
from gtm_pipeline.emulator.head_limits import HeadLimitProtocol
from gtm_pipeline.emulator.org import Org
from gtm_pipeline.emulator.state import EmulatorOptions, EmulatorState
from gtm_pipeline.emulator.tls import create_tls_files
from gtm_pipeline.private_files import create_private_dirs

LOOPBACK_HOSTS = {"127.0.0.1": socket.AF_INET, "localhost": socket.AF_INET, "::1": socket.AF_INET6}
INFO_FILE = "emulator.json"
LISTEN_BACKLOG = 2048  # uvicorn's default backlog
START_TIMEOUT = 20.0


class EmulatorStartError(RuntimeError):
    """The server could not start (port taken, bad host, startup failure)."""


def _bind(host: str, port: int) -> socket.socket:
    if host not in LOOPBACK_HOSTS:
        raise EmulatorStartError(
            f"the emulator only listens on loopback ({', '.join(LOOPBACK_HOSTS)}), not {host!r}"
        )
    if not 0 <= port <= 65535:
        raise EmulatorStartError("port must be between 0 and 65535")
    family = LOOPBACK_HOSTS[host]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    address = "127.0.0.1" if host == "localhost" else host
    try:
        sock.bind((address, port))
        # Listening now, before emulator.json announces the port: a client that starts as soon
        # as the file appears is queued by the kernel until uvicorn accepts, never refused.
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise EmulatorStartError(f"cannot listen on {address}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


def _base_url(sock: socket.socket) -> str:
    address, port = sock.getsockname()[:2]
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


def write_info(state_dir: Path, info: dict[str, Any]) -> Path:
    """Write emulator.json atomically, owner-only: it holds the client secret and control token."""
    path = state_dir / INFO_FILE
    temporary = state_dir / f".{INFO_FILE}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)
    return path


class _PromptShutdownProtocol(HeadLimitProtocol):
    """Abort idle keep-alive connections at shutdown instead of closing them politely.

    A polite TLS close waits for the client's close_notify, which a pooled, idle client
    connection never sends, so every stop would hang for the graceful-shutdown timeout.
    Connections with a request in flight still finish it.
    """

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.abort()
        else:
            super().shutdown()


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that reports once it really accepts connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self._on_started is not None and self.started:
            self._on_started()


class _Prepared:
    """A bound socket, fresh TLS files, the state and the uvicorn server that will serve it."""

    def __init__(
        self,
        org: Org,
        state_dir: Path,
        host: str,
        port: int,
        options: EmulatorOptions,
        clock: Callable[[], float],
        *,
        embedded: bool,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).expanduser().resolve()
        create_private_dirs(self.state_dir)  # holds the emulator's keys
        self.socket = _bind(host, port)
        try:
            tls = create_tls_files(self.state_dir)
            self.state = EmulatorState(
                org,
                base_url=_base_url(self.socket),
                ca_bundle=str(tls.ca_bundle),
                options=options,
                clock=clock,
            )
            self.info = self.state.connection_info()
            self.info_path = write_info(self.state_dir, self.info)
            config = uvicorn.Config(
                build_app(self.state),
                ssl_certfile=str(tls.certfile),
                ssl_keyfile=str(tls.keyfile),
                http=_PromptShutdownProtocol,
                lifespan="off",
                # Embedded servers must not reconfigure the host process's logging.
                log_config=None if embedded else uvicorn.config.LOGGING_CONFIG,
                log_level="warning" if embedded else "info",
                access_log=not embedded,
                timeout_keep_alive=30,
                timeout_graceful_shutdown=5,
            )
            quiet_dropped_connections()
            self.server = _AnnouncingServer(config, on_started)
        except BaseException:
            self.socket.close()
            raise


class EmulatorServer:
    """An emulator serving HTTPS from a background thread; use as a context manager.

    `info` is the emulator.json dict (it includes secrets: never log it whole).
    """

    def __init__(
        self,
        org: Org,
        state_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        options: EmulatorOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._org = org
        self._state_dir = Path(state_dir)
        self._host = host
        self._port = port
        self._options = options or EmulatorOptions()
        self._clock = clock
        self._prepared: _Prepared | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        url = self._prepared.state.base_url if self._prepared else "not started"
        return f"EmulatorServer({url})"

    @property
    def state(self) -> EmulatorState:
        if self._prepared is None:
            raise RuntimeError("the emulator is not running")
        return self._prepared.state

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.state.connection_info())

    @property
    def info_path(self) -> Path:
        if self._prepared is None:
            raise RuntimeError("the emulator is not running")
        return self._prepared.info_path

    def start(self) -> dict[str, Any]:
        """Start serving and return once the socket accepts TLS connections."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        prepared = _Prepared(
            self._org,
            self._state_dir,
            self._host,
            self._port,
            self._options,
            self._clock,
            embedded=True,
        )
        thread = threading.Thread(
            target=prepared.server.run,
            kwargs={"sockets": [prepared.socket]},
            name=f"emulator-{prepared.state.base_url}",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not prepared.server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                prepared.server.should_exit = True
                thread.join(timeout=5)
                prepared.socket.close()
                raise EmulatorStartError("the emulator did not start; see the log for why")
            time.sleep(0.01)
        self._prepared, self._thread = prepared, thread
        return self.info

    def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (5 s at most) and release the port."""
        if self._prepared is None or self._thread is None:
            return
        self._prepared.server.should_exit = True
        self._thread.join(timeout=15)
        if self._thread.is_alive():
            self._prepared.server.force_exit = True
            self._thread.join(timeout=5)
        self._prepared.socket.close()
        self._prepared, self._thread = None, None

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(
    org: Org,
    state_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    options: EmulatorOptions | None = None,
    on_ready: Callable[[dict[str, Any], Path], None] | None = None,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM; `on_ready` gets the info and its file path."""

    def announce() -> None:
        if on_ready is not None:
            on_ready(prepared.info, prepared.info_path)

    prepared = _Prepared(
        org,
        Path(state_dir),
        host,
        port,
        options or EmulatorOptions(),
        time.time,
        embedded=False,
        on_started=announce,
    )
    try:
        prepared.server.run(sockets=[prepared.socket])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it already handled; stopping is what was asked
    finally:
        prepared.socket.close()
