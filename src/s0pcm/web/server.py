"""Running the app with uvicorn inside an existing event loop (the logger's, or ``serve``'s).

No reload, no signal handlers of its own (the caller owns SIGINT/SIGTERM and sets ``stop``), no
access log (URLs and headers stay out of the logs), no trust in ``X-Forwarded-For`` unless
``[web] trusted_proxies`` names the proxy (a local client could otherwise dodge the login rate
limit).

The server shares a Pi with the logger, which must always be able to open its serial port and
database, so a flood of clients is bounded well below the process's file-descriptor limit:
at most ``max_connections`` at once (the rest get a 503 and are closed at once), a request's
head must arrive within :data:`HEAD_TIMEOUT` (a client that connects and dribbles is closed),
an idle keep-alive connection lasts :data:`KEEP_ALIVE` s, and the live stream takes at most
three quarters of the connections, so a page can still load beside a screen full of them.
With direct TLS a connection is counted only once its handshake is done (asyncio allows 60 s):
see docs/api.md on putting a proxy in front where that matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import resource
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..config import DEFAULT_MAX_CONNECTIONS, WebSettings
from . import shapes
from .context import Context

__all__ = ["Limits", "bind", "serve"]

log = logging.getLogger(__name__)

#: Seconds a client has to send a whole request head, from connecting or from its last answer.
HEAD_TIMEOUT: Final = 10.0
#: Seconds an idle keep-alive connection is kept.
KEEP_ALIVE: Final = 5
#: File descriptors kept for the logger (port, database, journal, locks, logs) and Python.
RESERVED_FDS: Final = 48
#: Connections asyncio accepts in one go (and the listen backlog): each is a descriptor before
#: the cap can turn it away, so a burst must stay well inside the room the cap leaves.
ACCEPT_BURST: Final = 16
_BUSY_BODY: Final = shapes.encode(shapes.Error("too many connections", "try again soon"))
BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\nretry-after: 1\r\ncontent-length: %d\r\n\r\n%s"
) % (len(_BUSY_BODY), _BUSY_BODY)


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of the machine the server may take."""

    connections: int
    live: int
    head_timeout: float

    @classmethod
    def of(cls, wanted: int = DEFAULT_MAX_CONNECTIONS) -> Limits:
        """``wanted`` connections, fewer when the fd limit (``ulimit -n``) is too low for them
        beside the logger's own files (each connection is one descriptor)."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        # Half the free descriptors: the other half takes bursts being turned away.
        room = wanted if soft == resource.RLIM_INFINITY else (soft - RESERVED_FDS) // 2
        connections = max(2, min(wanted, room))
        return cls(connections, max(1, connections * 3 // 4), HEAD_TIMEOUT)


def _protocol(limits: Limits) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol with a connection cap and a request-head deadline."""
    refused = {"count": 0, "logged": 0.0}

    class Guarded(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.connections:
                refused["count"] += 1
                now = time.monotonic()
                if now - refused["logged"] >= 60:  # one line a minute, however hard the flood
                    log.warning(
                        "refused %d connection(s): more than %d at once ([web] max_connections)",
                        refused["count"], limits.connections,
                    )  # fmt: skip
                    refused["count"], refused["logged"] = 0, now
                transport.write(BUSY)
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(limits.head_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()  # no request head in time: a slow or idle client

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # the head is in; the app's own timeouts take over

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return Guarded


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: asyncio.Event | None) -> None:
        super().__init__(config)
        self.ready = ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the caller handles signals

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.ready is not None:
            self.ready.set()


class _AcceptErrors(logging.Filter):
    """asyncio logs a traceback for every accept() that fails for want of descriptors (then
    pauses accepting for a second): at most one line a minute, without the traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.last = -math.inf
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "accept() out of system resource" not in str(record.msg):
            return True
        now = time.monotonic()
        if now - self.last < 60:
            self.dropped += 1
            return False
        error = record.exc_info[1] if record.exc_info else None
        record.msg = "cannot accept connections: %s (%d more since the last line)"
        record.args = (getattr(error, "strerror", None) or error, self.dropped)
        record.exc_info = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        self.last, self.dropped = now, 0
        return True


def _quiet_accept_errors() -> None:
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _AcceptErrors) for f in logger.filters):
        logger.addFilter(_AcceptErrors())


def _no_passphrase() -> str:
    """An encrypted key would make OpenSSL ask on the terminal, blocking the logger."""
    raise OSError(
        "the key is encrypted; give a key without a passphrase (readable by its owner only)"
    )


def _check_tls(certificate: Path, key: Path) -> None:
    """A certificate and key that do not load are a clear error now, not uvicorn's exit."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            certificate, key, password=_no_passphrase
        )
    except (OSError, ssl.SSLError) as e:
        reason = getattr(e, "reason", None) or e
        raise OSError(f"cannot use {certificate} with {key} for HTTPS: {reason}") from None


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one). Raises OSError with the
    reason (address in use, no such address) instead of uvicorn's exit."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(
    app: Starlette,
    *,
    host: str,
    port: int,
    stop: asyncio.Event,
    sock: socket.socket | None = None,
    ready: asyncio.Event | None = None,
    web: WebSettings | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` (or the already bound ``sock``) until ``stop`` is set.

    ``web``: TLS, trusted proxies and the connection cap (default: the app's configuration).
    On stop, live streams end first, then uvicorn finishes the requests in flight (at most 5 s).
    ``ready`` is set once the server accepts connections.
    """
    ctx = getattr(app.state, "context", None)
    if web is None and isinstance(ctx, Context):
        web = ctx.config.web
    limits = Limits.of(web.max_connections if web is not None else DEFAULT_MAX_CONNECTIONS)
    if isinstance(ctx, Context) and ctx.live is not None:
        ctx.live.max_clients = min(ctx.live.max_clients, limits.live)
    proxies = list(web.trusted_proxies) if web is not None else []
    certificate = web.tls_certificate if web is not None else None
    key = web.tls_key if web is not None else None
    if certificate is not None and key is not None:
        _check_tls(certificate, key)
    listener = sock or bind(host, port)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_protocol(limits),
        access_log=False,
        log_config=None,
        lifespan="on",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        server_header=False,
        backlog=ACCEPT_BURST,
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=5,
        ssl_certfile=certificate,
        ssl_keyfile=key,
        ws="none",
    )
    _quiet_accept_errors()
    # uvicorn decides per connection whether to log access from the logger's handlers; a test
    # harness (or a root handler) may add some. Off, whatever the logging set-up.
    logging.getLogger("uvicorn.access").disabled = True
    server = _Server(config, ready)

    async def watch() -> None:
        await stop.wait()
        ctx = getattr(app.state, "context", None)
        if isinstance(ctx, Context) and ctx.live is not None:
            ctx.live.close()
        server.should_exit = True

    watcher = asyncio.create_task(watch())
    try:
        await server.serve(sockets=[listener])
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if sock is None:
            listener.close()
