"""Running the app with uvicorn inside an existing event loop (the logger's, or ``serve``'s).

No reload, no signal handlers of its own (the caller owns SIGINT/SIGTERM and sets ``stop``), no
access log (URLs and headers stay out of the logs), no trust in ``X-Forwarded-For`` (a local
client could otherwise dodge the login rate limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from ..config import Config
from ..daemon import Daemon
from ..store import open_store
from .app import create_app
from .context import Context

__all__ = ["bind", "run_logger_with_web", "serve", "serve_store"]


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
) -> None:
    """Serve ``app`` on ``host:port`` (or the already bound ``sock``) until ``stop`` is set.

    On stop, live streams end first, then uvicorn finishes the requests in flight (at most 5 s).
    ``ready`` is set once the server accepts connections.
    """
    listener = sock or bind(host, port)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        lifespan="on",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
        ws="none",
    )
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


async def run_logger_with_web(
    daemon: Daemon, *, stop: asyncio.Event, sock: socket.socket | None = None
) -> None:
    """``s0pcm run``: the logger and the web interface in this loop until ``stop`` is set.

    The web server stops first, then the logger (which commits and closes the store), so no
    request meets a closed store. If either fails, the other stops and the error is raised.
    """
    web = daemon.config.web
    app = create_app(config=daemon.config, store=daemon.store, daemon=daemon)
    server = asyncio.create_task(
        serve(app, host=web.host, port=web.port, stop=stop, sock=sock), name="web"
    )
    logger = asyncio.create_task(daemon.run(), name="logger")
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({server, logger, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        await asyncio.gather(server, return_exceptions=True)
        daemon.stop()
        await asyncio.gather(logger, stopped, return_exceptions=True)
    for task in (server, logger):
        error = task.exception() if task.done() and not task.cancelled() else None
        if error is not None:
            raise error


async def serve_store(
    config: Config, *, stop: asyncio.Event, sock: socket.socket | None = None
) -> None:
    """``s0pcm serve``: the web interface over the configured store, without the logger,
    until ``stop`` is set. The store is opened writable (logins make sessions, settings are
    written) next to a logger that may be running in another process."""
    store = open_store(config.logger.database, tz=config.logger.timezone)
    try:
        app = create_app(config=config, store=store)
        await serve(app, host=config.web.host, port=config.web.port, stop=stop, sock=sock)
    finally:
        store.close()
