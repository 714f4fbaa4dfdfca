"""``GET /api/live``: Server-Sent Events, one ``update`` per record and ``health`` every 10 s.

The logger gives every update to its subscribers synchronously (``Daemon.subscribe``); the hub
only queues it. One task encodes each update once (it carries the meters' live values: nothing
is read from the store) and hands the bytes to every client's queue, so a hundred dashboards
cost one encoding per record. A client that stops reading is dropped when its
queue fills, never slowing the others or the logger. Without a logger in the process (``s0pcm
serve``) only ``health`` events are sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Final

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..logger.daemon import Update
from . import shapes
from .context import Context
from .errors import ApiError
from .power import PowerHistory
from .read import context, event_document, live_values, off_loop

__all__ = ["LiveHub", "live"]

log = logging.getLogger(__name__)

HEALTH_INTERVAL: Final = 10.0
KEEPALIVE: Final = 15.0
QUEUE_SIZE: Final = 256
MAX_CLIENTS: Final = 2000


def encode(event: str, data: shapes.Document) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (event.encode(), shapes.encode(data))


@dataclass(eq=False)
class Client:
    queue: asyncio.Queue[bytes | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE)
    )
    dropped: bool = False


class LiveHub:
    """Fans live events out to the connected ``/api/live`` clients."""

    def __init__(self, ctx: Context, *, health_interval: float = HEALTH_INTERVAL) -> None:
        self.ctx = ctx
        self.health_interval = health_interval
        #: Live clients at once; the server lowers it below its connection cap.
        self.max_clients = MAX_CLIENTS
        self.clients: set[Client] = set()
        #: Events sent, for tests and benchmarks.
        self.sent = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._updates: asyncio.Queue[Update] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._unsubscribe: Callable[[], None] = lambda: None
        #: The rates of the last hours, kept whether or not anyone watches (Live's graph).
        self.power = PowerHistory()
        self._unsubscribe_power: Callable[[], None] = lambda: None

    # -- life cycle (the app's lifespan)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._updates = asyncio.Queue()
        self._closed = False
        if self.ctx.daemon is not None:
            self._unsubscribe = self.ctx.daemon.subscribe(self._on_update)
            self._unsubscribe_power = self.ctx.daemon.subscribe(self.power.on_update)
        self._tasks = [
            asyncio.create_task(self._fan_out(), name="live updates"),
            asyncio.create_task(self._tick(), name="live health"),
        ]

    def close(self) -> None:
        """End every stream (so the server can shut down) and stop listening."""
        self._closed = True
        self._unsubscribe()
        self._unsubscribe_power()
        for client in list(self.clients):
            self._drop(client)

    async def stop(self) -> None:
        self.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- producing

    def _on_update(self, update: Update) -> None:
        """Called by the logger for every record: queue it, nothing more."""
        loop, updates = self._loop, self._updates
        if loop is None or updates is None or loop.is_closed() or not self.clients:
            return
        loop.call_soon_threadsafe(updates.put_nowait, update)

    @staticmethod
    def update_document(update: Update) -> shapes.LiveUpdate:
        """The ``update`` event of one record: its meters' live values and its events."""
        return shapes.LiveUpdate(
            at=update.at,
            module=update.module,
            meters={
                v.key: shapes.LiveMeter(v.reading, v.rate, v.today, v.last_pulse_at)
                for v in update.values
            },
            events=[event_document(e) for e in update.events],
        )

    async def _fan_out(self) -> None:
        assert self._updates is not None
        while True:
            update = await self._updates.get()
            if not self.clients:
                continue
            try:
                data = encode("update", self.update_document(update))
            except Exception:
                log.exception("live update for module %s failed", update.module)
                continue
            self.broadcast(data)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            if self.clients:
                try:
                    self.broadcast(await self.health_event())
                except Exception:
                    log.exception("live health failed")

    async def health_event(self) -> bytes:
        ctx = self.ctx
        now, meters = ctx.clock(), ctx.meters()
        values = await live_values(ctx, meters, days=False)
        return encode("health", await off_loop(lambda: ctx.health(now, values, meters)))

    def broadcast(self, data: bytes) -> None:
        for client in list(self.clients):
            try:
                client.queue.put_nowait(data)
                self.sent += 1
            except asyncio.QueueFull:
                log.info("dropping a live client that does not keep up")
                self._drop(client)

    def _drop(self, client: Client) -> None:
        client.dropped = True
        self.clients.discard(client)
        while True:  # make room for the end marker
            try:
                client.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                client.queue.get_nowait()

    # -- consuming

    async def stream(self, client: Client) -> AsyncIterator[bytes]:
        try:
            yield b"retry: 3000\n\n"
            yield await self.health_event()
            while not client.dropped or not client.queue.empty():
                try:
                    item = await asyncio.wait_for(client.queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if item is None:
                    return
                yield item
        finally:
            self.clients.discard(client)

    def connect(self) -> Client:
        if self._closed:
            raise ApiError(409, "shutting down")
        if len(self.clients) >= self.max_clients:
            raise ApiError(429, "too many live clients", f"at most {self.max_clients}")
        client = Client()
        self.clients.add(client)
        return client


async def live(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_read(request)
    hub = ctx.live
    if hub is None:
        raise ApiError(409, "live updates are not running")
    client = hub.connect()
    return StreamingResponse(
        hub.stream(client),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"},
    )
