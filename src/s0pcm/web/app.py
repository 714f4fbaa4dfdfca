"""The web app: the JSON API of ``docs/api.md``, the live stream, the reference, ``/metrics`` and
the dashboard.

``create_app`` builds one Starlette app over a configuration and a store; with the logger's
:class:`~s0pcm.logger.daemon.Daemon` (``s0pcm run``) it serves live rates, live health and an
``update`` event per record, without it (``s0pcm serve``) it is a view of what the store holds.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Config
from ..logger.daemon import Daemon
from ..store import Store
from . import read, shapes, write
from .context import Context
from .docs import DOCS_CSS, render_docs
from .errors import ApiError, api_error_handler, http_error_handler, unexpected_error_handler
from .live import HEALTH_INTERVAL, LiveHub, live
from .openapi import openapi_document

__all__ = ["STATIC_DIR", "create_app"]

#: The dashboard (owned by the UI): ``index.html`` at ``/``, the rest under ``/static/``.
STATIC_DIR: Final = Path(__file__).resolve().parent / "static"

SECURITY_HEADERS: Final = (
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)

PLACEHOLDER: Final = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>s0pcm</title></head><body>"
    "<h1>s0pcm</h1><p>The dashboard is not installed. The API is at "
    '<a href="/api/docs">/api/docs</a>.</p></body></html>'
)


class SecurityHeaders:
    """Adds the security headers to every answer, and ``no-store`` to API answers (they carry
    live data and, for logins, secrets). Pure ASGI, so streams pass straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = str(scope.get("path", "")).startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.setdefault(name.decode(), value.decode())
                if api:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HostCheck:
    """Answers only to the host names it knows (``[web] allowed_hosts``, besides the loopback
    names, this machine's own name and any IP address).

    A DNS-rebinding page makes a visitor's browser send requests to the dashboard under the
    attacker's host name; refusing unknown names in ``Host`` stops it. IP addresses are always
    fine: a rebinding needs a name.
    """

    def __init__(self, app: ASGIApp, *, allowed: tuple[str, ...] = ()) -> None:
        self.app = app
        machine = socket.gethostname().lower()
        names = {"localhost", machine, f"{machine}.local", *allowed}
        self.exact = frozenset(n for n in names if not n.startswith("*."))
        self.suffixes = (*(n[1:] for n in names if n.startswith("*.")), ".localhost")

    def allows(self, host: str) -> bool:
        host = host.strip().lower()
        if host.startswith("["):  # [v6]:port
            address, _, _ = host[1:].partition("]")
            return _is_ip(address)
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        name = name.rstrip(".")
        return _is_ip(name) or name in self.exact or name.endswith(self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if self.allows(host):
            await self.app(scope, receive, send)
            return
        body = shapes.encode(
            shapes.Error(
                "unknown host",
                f"this server does not answer to {host[:100]!r}; "
                "add the name to [web] allowed_hosts",
            )
        )
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Dashboard(StaticFiles):
    """``/static/``: the dashboard's files, revalidated by ETag; a missing directory (no
    dashboard installed yet) is a 404, not an error."""

    async def check_config(self) -> None:
        return None

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.setdefault("cache-control", "public, max-age=300, must-revalidate")
        return response


def _index(static_dir: Path) -> Callable[[Request], Any]:
    async def index(request: Request) -> Response:
        page = static_dir / "index.html"
        if page.is_file():
            return FileResponse(page, headers={"Cache-Control": "no-cache"})
        return HTMLResponse(PLACEHOLDER, headers={"Cache-Control": "no-cache"})

    return index


def create_app(
    *,
    config: Config,
    store: Store,
    daemon: Daemon | None = None,
    clock: Callable[[], float] = time.time,
    static_dir: Path | None = None,
    health_interval: float = HEALTH_INTERVAL,
) -> Starlette:
    """The app over ``store``; live data when ``daemon`` (the logger in this process) is given.

    ``clock`` is "now" for readings and today's consumption (tests fix it); ``static_dir``
    overrides where the dashboard's files are; ``health_interval`` is the seconds between
    ``health`` events on ``/api/live``.
    """
    ctx = Context(config=config, store=store, daemon=daemon, clock=clock)
    hub = LiveHub(ctx, health_interval=health_interval)
    ctx.live = hub
    document = openapi_document(
        meter_keys=[m.key for m in config.meters], modules=[m.name for m in config.modules]
    )
    docs_page, document_json = render_docs(document), shapes.encode(document)
    static = static_dir or STATIC_DIR

    async def get_openapi(request: Request) -> Response:
        return Response(document_json, media_type="application/json")

    async def get_docs(request: Request) -> Response:
        return HTMLResponse(docs_page)

    async def get_docs_css(request: Request) -> Response:
        return Response(DOCS_CSS, media_type="text/css")

    routes: list[BaseRoute] = [
        Route(path, handler, methods=methods) for path, handler, methods in read.ROUTES
    ]
    routes += [Route(path, handler, methods=methods) for path, handler, methods in write.ROUTES]
    routes += [
        Route("/api/live", live, methods=["GET"]),
        Route("/metrics", read.get_metrics, methods=["GET"]),  # Prometheus's usual path
        Route("/api/openapi.json", get_openapi, methods=["GET"]),
        Route("/api/docs", get_docs, methods=["GET"]),
        Route("/api/docs.css", get_docs_css, methods=["GET"]),
        Route("/", _index(static), methods=["GET"]),
        Mount("/static", app=Dashboard(directory=static, check_dir=False), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_error_handler,
            Exception: unexpected_error_handler,
        },
    )
    app.add_middleware(SecurityHeaders)
    # JSON and the dashboard's files compress to a third; the live stream is left alone (an
    # event must not wait in a compressor), and answers under 1 KiB are not worth it.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    # Outermost: the first check. The name it listens on is one it answers to.
    listen = () if _is_ip(config.web.host) else (config.web.host.lower(),)
    app.add_middleware(HostCheck, allowed=(*config.web.allowed_hosts, *listen))
    app.state.context = ctx
    return app
