"""Real web servers for tests: uvicorn on a free 127.0.0.1 port, real SQLite, real HTTP.

Each server runs in a background thread with its own event loop (so synchronous tests, httpx
clients and Playwright's sync API all work against it) and stops when its context ends. The
fixtures over these (``web_history``, ``web_server``, ``fresh_server``, ``live_server``,
``web_client``, ``web_login``, ``history_store``) are declared in ``tests/conftest.py``.

* :func:`build_history`: a configuration and a SQLite store in a directory, filled with
  :data:`HISTORY_DAYS` days of 10-second history up to :data:`NOW` for three meters (see
  :data:`METERS`), anchors (an initial and a correction reading for ``power``), a few events, the
  logger's stored module state, tariffs (:data:`TARIFFS`), the password :data:`PASSWORD` and an
  API token. A :class:`History`; :func:`copy_history` copies one to change freely.
* :func:`history_server`: the app without a logger (as ``s0pcm serve``) over a history's store,
  its clock fixed at :data:`NOW`. A :class:`WebServer`; ``.url`` is the base URL.
* :func:`live_server`: the emulator on a pseudo-terminal, the real logger (:class:`Daemon`)
  reading it every 0.2 s, and the app with that logger, all in the server's loop; real clock,
  ``health`` events every second. ``.emulator`` takes faults (``emulator.request(Fault.RESTART)``);
  ``.rates[n]`` sets register n+1's pulses per second.

Helpers: :func:`login` (log an httpx client in), :func:`sse_events` (parse a Server-Sent Events
stream), :func:`running_server` (any app in a background thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
from starlette.applications import Starlette

from s0pcm.config import Config, load_config
from s0pcm.costs.tariffs import STATE_KEY as TARIFFS_KEY
from s0pcm.emulator import Module, PtyEmulator, Source
from s0pcm.events import DeviceEvent, EventKind
from s0pcm.logger.daemon import Daemon
from s0pcm.publish.encoders import for_daemon
from s0pcm.store import Anchor, AnchorKind, Store, open_store
from s0pcm.web import bind, create_app, new_token, serve, set_password
from tests.helpers import TZ

__all__ = [
    "HISTORY_DAYS",
    "METERS",
    "NOW",
    "PASSWORD",
    "TARIFFS",
    "TZ",
    "History",
    "WebServer",
    "build_history",
    "copy_history",
    "history_server",
    "live_server",
    "login",
    "running_server",
    "sse_events",
    "write_config",
]

T = TypeVar("T")

#: "Now" of the history servers: the day after the spring DST change (a 23-hour Sunday).
NOW: Final = datetime(2026, 3, 30, 14, 30, 5, tzinfo=TZ).timestamp()
HISTORY_DAYS: Final = 45
PASSWORD: Final = "correct horse battery staple"  # noqa: S105 (the tests' own)
#: Meter key -> (register, kind, unit, pulses per unit).
METERS: Final = {
    "power": (1, "electricity", "kWh", 1000),
    "kast.2": (2, "gas", "m³", 100),
    "water": (3, "water", "L", 1),
    "spare": (4, "other", "", 1),
}
#: Electricity: peak Monday to Friday 07:00-23:00, off-peak otherwise; a price change on
#: 2026-03-15. Gas: one price. Water: none (its costs are null).
TARIFFS: Final[dict[str, Any]] = {
    "currency": "EUR",
    "tariffs": [
        {
            "kind": "electricity",
            "direction": "consumption",
            "valid_from": "2025-01-01",
            "valid_to": "2026-03-14",
            "fixed_per_day": 0.5,
            "periods": [
                {"name": "peak", "days": [0, 1, 2, 3, 4], "start": "07:00", "end": "23:00",
                 "price": 0.30},
                {"name": "off-peak", "days": [0, 1, 2, 3, 4], "start": "23:00", "end": "07:00",
                 "price": 0.20},
                {"name": "off-peak", "days": [5, 6], "start": "00:00", "end": "24:00",
                 "price": 0.20},
            ],
        },
        {
            "kind": "electricity",
            "direction": "consumption",
            "valid_from": "2026-03-15",
            "valid_to": None,
            "fixed_per_day": 0.75,
            "periods": [
                {"name": "peak", "days": [0, 1, 2, 3, 4], "start": "07:00", "end": "23:00",
                 "price": 0.40},
                {"name": "off-peak", "days": [0, 1, 2, 3, 4], "start": "23:00", "end": "07:00",
                 "price": 0.25},
                {"name": "off-peak", "days": [5, 6], "start": "00:00", "end": "24:00",
                 "price": 0.25},
            ],
        },
        {
            "kind": "gas",
            "direction": "consumption",
            "valid_from": "2025-01-01",
            "valid_to": None,
            "fixed_per_day": 0.6,
            "periods": [
                {"name": "all", "days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "24:00",
                 "price": 1.25}
            ],
        },
    ],
}  # fmt: skip


def slot_pulses(key: str, slot: int) -> int:
    """The history's pulses of ``key`` in 10-second slot number ``slot`` (deterministic)."""
    register = METERS[key][0]
    hour = slot // 360
    if key == "spare":
        return 1 if slot % 97 == 0 else 0
    return (slot * 7 + hour * 3 + register) % (4 + register) // 2


def write_config(
    directory: Path, *, port: Path | None = None, public_read: bool = False, web: str = ""
) -> Path:
    """The history's configuration; ``web``: more lines for its ``[web]`` table."""
    meters = "".join(
        f'[modules.kast.meters.{reg}]\nkey = "{key}"\nname = "{key.title()}"\n'
        f'kind = "{kind}"\npulses_per_unit = {ppu}\n'
        + (f'unit = "{unit}"\n' if unit else "")
        + ("enabled = false\n" if key == "spare" else "")
        for key, (reg, kind, unit, ppu) in METERS.items()
    )
    path = directory / "s0pcm.toml"
    path.write_text(
        f'[logger]\ndatabase = "{directory / "s0pcm.sqlite"}"\ntimezone = "Europe/Amsterdam"\n'
        f"commit_interval = 1\n\n[web]\npublic_read = {str(public_read).lower()}\n{web}\n"
        f'[modules.kast]\nport = "{port or directory / "s0"}"\nmodel = 5\n{meters}',
        encoding="utf-8",
    )
    return path


@dataclass(frozen=True)
class History:
    """A store with known history (see the module docstring)."""

    directory: Path
    config_path: Path
    config: Config
    database: Path
    token: str
    now: float = NOW
    start: float = NOW - HISTORY_DAYS * 86400
    password: str = PASSWORD

    def open(self) -> Store:
        """A read-only store on the database, to check answers against."""
        return open_store(str(self.database), tz=TZ, readonly=True)


def build_history(directory: Path) -> History:
    config_path = write_config(directory)
    config = load_config(config_path)
    database = Path(config.logger.database)
    start = NOW - HISTORY_DAYS * 86400
    first_hour, last_hour = int(start // 3600), int(NOW // 3600)
    end_slot = int(NOW // 10)
    with open_store(str(database), tz=TZ) as store:
        for hour in range(first_hour, last_hour + 1):
            slots = range(hour * 360, min(hour * 360 + 360, end_slot + 1))
            for key in METERS:
                store.add_hour(key, hour * 3600, [slot_pulses(key, s) for s in slots])
        store.add_anchor(
            Anchor(
                meter="power",
                at=start,
                reading=1000.0,
                pulses_per_unit=1000.0,
                kind=AnchorKind.INITIAL,
            )
        )
        correction = datetime(2026, 3, 1, 12, 0, tzinfo=TZ).timestamp()
        store.add_anchor(
            Anchor(
                meter="power",
                at=correction,
                reading=2000.0,
                pulses_per_unit=1000.0,
                kind=AnchorKind.CORRECTION,
            )
        )
        store.add_anchor(
            Anchor(
                meter="kast.2",
                at=start,
                reading=500.0,
                pulses_per_unit=100.0,
                kind=AnchorKind.INITIAL,
            )
        )
        events = [
            DeviceEvent(
                at=start + 5,
                kind=EventKind.CONNECTED,
                module="kast",
                meter=None,
                value=None,
                detail="/dev/ttyACM0",
            ),
            DeviceEvent(
                at=start + 6,
                kind=EventKind.STARTUP,
                module="kast",
                meter=None,
                value=None,
                detail="V0.6",
            ),
            DeviceEvent(
                at=start + 86400,
                kind=EventKind.SPIKE,
                module="kast",
                meter="power",
                value=5000.0,
                detail="spike",
            ),
            DeviceEvent(
                at=correction,
                kind=EventKind.CORRECTION,
                module="kast",
                meter="power",
                value=2000.0,
                detail="set",
            ),
            DeviceEvent(
                at=NOW - 3600,
                kind=EventKind.GAP,
                module="kast",
                meter="kast.2",
                value=12.0,
                detail="recovered",
            ),
        ]
        for event in events:
            store.add_event(event)
        store.set_state(
            "kast",
            {
                "health": {
                    "port": "/dev/ttyACM0", "connected": True, "since": start,
                    "last_record_at": NOW - 4, "last_telegram_at": NOW - 4, "module_id": "8237",
                    "firmware": "V0.6", "thresholds": [30, 30, 30, 30, 30], "connects": 1,
                },
                "ledger": {"stats": {"telegrams": 388000, "headers": 1, "spikes": 1, "gaps": 1}},
            },
        )  # fmt: skip
        store.set_state(TARIFFS_KEY, TARIFFS)
        store.commit()
        set_password(store, PASSWORD)
        token = new_token(store, "tests")
    return History(directory, config_path, config, database, token)


# -- servers ------------------------------------------------------------------------------------


@dataclass
class WebServer:
    """A server running in a background thread."""

    url: str
    loop: asyncio.AbstractEventLoop
    app: Starlette
    config: Config
    history: History | None = None
    daemon: Daemon | None = None
    emulator: PtyEmulator | None = None
    module: Module | None = None
    #: Pulses per second per register of the emulated module (live_server), changeable.
    rates: list[float] = field(default_factory=list)
    password: str = PASSWORD

    def call(self, func: Callable[[], T], timeout: float = 30.0) -> T:
        """Run ``func`` in the server's loop (where the logger and its store live)."""

        async def run() -> T:
            return func()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)


@contextlib.contextmanager
def running_server(
    build: Callable[[], Awaitable[tuple[Starlette, Callable[[], Awaitable[None]] | None]]],
    *,
    startup_timeout: float = 30.0,
) -> Iterator[tuple[str, asyncio.AbstractEventLoop, Starlette]]:
    """Serve the app ``build()`` makes (in the server's loop) on a free 127.0.0.1 port, in a
    background thread; ``build`` also returns a coroutine function run after the server stops
    (to stop a logger, an emulator), or None. Yields (base URL, loop, app)."""
    started: Future[tuple[str, asyncio.AbstractEventLoop, Starlette, asyncio.Event]] = Future()

    async def main() -> None:
        try:
            sock = bind("127.0.0.1", 0)
            app, cleanup = await build()
            stop, ready = asyncio.Event(), asyncio.Event()
            port = sock.getsockname()[1]
            server = asyncio.create_task(
                serve(app, host="127.0.0.1", port=port, stop=stop, sock=sock, ready=ready)
            )
            await asyncio.wait(
                [server, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED
            )
            if server.done():
                server.result()
        except BaseException as e:
            started.set_exception(e)
            raise
        started.set_result((f"http://127.0.0.1:{port}", asyncio.get_running_loop(), app, stop))
        try:
            await server
        finally:
            sock.close()
            if cleanup is not None:
                await cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="web server", daemon=True)
    thread.start()
    url, loop, app, stop = started.result(startup_timeout)
    try:
        yield url, loop, app
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        assert not thread.is_alive(), "the web server did not stop"


@contextlib.contextmanager
def history_server(history: History, **options: Any) -> Iterator[WebServer]:
    """The app without a logger over ``history``'s store (clock fixed at its ``now``)."""
    store: list[Store] = []

    async def build() -> tuple[Starlette, Callable[[], Awaitable[None]]]:
        store.append(open_store(str(history.database), tz=TZ))
        app = create_app(
            config=history.config, store=store[0], clock=lambda: history.now, **options
        )

        async def cleanup() -> None:
            store[0].close()

        return app, cleanup

    with running_server(build) as (url, loop, app):
        yield WebServer(url, loop, app, history.config, history=history)


def copy_history(
    history: History, directory: Path, *, web: str = "", public_read: bool = False
) -> History:
    """A copy of ``history``'s store in ``directory``, with more ``[web]`` lines (and
    ``public_read``), to change freely (to write, log in wrongly: the login rate limit is per
    client address, or fuzz)."""
    config_path = write_config(directory, web=web, public_read=public_read)
    shutil.copy(history.database, directory / "s0pcm.sqlite")
    return History(
        directory, config_path, load_config(config_path), directory / "s0pcm.sqlite",
        history.token,
    )  # fmt: skip


def _source(rates: list[float], n: int) -> Source:
    return Source(lambda t: rates[n])


@contextlib.contextmanager
def live_server(tmp_path: Path, *, extra: str = "") -> Iterator[WebServer]:
    """The emulator, the real logger and the app with it (see the module docstring).
    ``extra``: more of the configuration file (an ``[mqtt]`` table: then it publishes with
    ``s0pcm run``'s encoders)."""
    config_path = write_config(tmp_path, port=tmp_path / "s0")
    if extra:
        config_path.write_text(config_path.read_text() + "\n" + extra, encoding="utf-8")
    config = load_config(config_path)
    rates = [0.0] * 5
    module = Module(interval=0.2, sources=[_source(rates, n) for n in range(5)], seed=3)
    parts: dict[str, Any] = {}

    async def build() -> tuple[Starlette, Callable[[], Awaitable[None]]]:
        emulator = PtyEmulator(module, link=tmp_path / "s0", tick=0.02)
        emulator_task = asyncio.create_task(emulator.run())
        await emulator.ready.wait()
        with open_store(config.logger.database, tz=TZ) as store:
            set_password(store, PASSWORD)
            parts["token"] = new_token(store, "tests")
        daemon = Daemon(config, encoders=for_daemon if config.mqtt else None)
        daemon_task = asyncio.create_task(daemon.run())
        parts.update(daemon=daemon, emulator=emulator)
        app = create_app(config=config, store=daemon.store, daemon=daemon, health_interval=1.0)

        async def cleanup() -> None:
            daemon.stop()
            await daemon_task
            emulator.stop()
            await emulator_task

        return app, cleanup

    with running_server(build) as (url, loop, app):
        yield WebServer(
            url, loop, app, config, daemon=parts["daemon"], emulator=parts["emulator"],
            module=module, rates=rates,
        )  # fmt: skip


# -- clients ------------------------------------------------------------------------------------


def login(client: httpx.Client, password: str = PASSWORD) -> str:
    """Log ``client`` in; from then on it sends the CSRF token too. Returns the token."""
    response = client.post("/api/login", json={"password": password})
    response.raise_for_status()
    csrf: str = response.json()["csrf"]
    client.headers["X-CSRF-Token"] = csrf
    return csrf


def sse_events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """``(event, data)`` of a Server-Sent Events stream, as they arrive (data parsed as JSON)."""
    event, data = "message", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", list[str]()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
