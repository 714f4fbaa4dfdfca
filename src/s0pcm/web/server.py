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

from .context import Context

__all__ = ["bind", "serve"]


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
