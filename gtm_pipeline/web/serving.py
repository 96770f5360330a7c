"""Serve an ASGI app with uvicorn: in a background thread (tests, `connect`) or in the foreground.

The socket is bound before uvicorn starts, so port 0 resolves to a real port and a taken port
fails with a clear error instead of inside uvicorn's thread. Access logs drop the query string:
the OAuth callback's query carries an authorization code and the signed state.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from gtm_pipeline.errors import GtmError

START_TIMEOUT_SECONDS = 20.0
# The request line plus headers may take at most this much; larger is a 400 before the app runs.
# uvicorn's httptools parser (its default when installed) buffers headers of any size, so one
# request with a gigabyte header could exhaust memory; h11 enforces this limit.
MAX_REQUEST_HEAD_BYTES = 32 * 1024


class ServerStartError(GtmError, RuntimeError):
    """The server could not listen (port taken, bad address) or did not start."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port, or ServerStartError saying why not."""
    if not 0 <= port <= 65535:
        raise ServerStartError("port must be between 0 and 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServerStartError(f"cannot resolve {host!r}: {exc.strerror}") from exc
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ServerStartError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


class QueryStringFilter(logging.Filter):
    """Cut the query string from uvicorn access-log lines (codes and states live there)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def _config(app: ASGIApp, *, embedded: bool, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="off",
        # Embedded servers must not reconfigure the host process's logging.
        log_config=None if embedded else uvicorn.config.LOGGING_CONFIG,
        log_level="warning" if embedded else "info",
        access_log=not embedded,
        timeout_graceful_shutdown=5,
        http="h11",
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        **options,
    )


def serve_forever(app: ASGIApp, host: str, port: int) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM."""
    sock = bind_socket(host, port)
    server = uvicorn.Server(_config(app, embedded=False))
    logging.getLogger("uvicorn.access").addFilter(QueryStringFilter())
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class BackgroundServer:
    """An app served from a daemon thread; use as a context manager.

    Plain HTTP, or HTTPS given `tls` (certificate file, key file), as the browser tests of
    cookies that only travel over TLS need.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._tls = tls
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"BackgroundServer({self.base_url if self._socket else 'not started'})"

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the server is not running")
        return int(self._socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        address = self._socket.getsockname()[0] if self._socket else self._host
        host = f"[{address}]" if ":" in address else address
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> BackgroundServer:
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        sock = bind_socket(self._host, self._port)
        tls = {"ssl_certfile": self._tls[0], "ssl_keyfile": self._tls[1]} if self._tls else {}
        server = uvicorn.Server(_config(self._app, embedded=True, **tls))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="web-server", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(timeout=5)
                sock.close()
                raise ServerStartError("the web server did not start; see the log for why")
            time.sleep(0.01)
        self._socket, self._server, self._thread = sock, server, thread
        return self

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (5 s at most), release the port."""
        if self._server is None or self._thread is None or self._socket is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=15)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._socket.close()
        self._socket, self._server, self._thread = None, None, None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
