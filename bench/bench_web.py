"""The web API: what HTTP adds to each dashboard view, live latency, and a crowd of dashboards.

Builds the store of ``bench_store`` (ten years of a household's five registers at 10-second
resolution, through the store's bulk path; ``--quick``: one year), adds tariffs (electricity
peak/off-peak, gas flat) and 2,000 events, then measures, in the same run:

* **views**: p50/p95 of every dashboard view over real HTTP on loopback (the app as ``s0pcm
  serve`` runs it, in a process of its own, clock at the end of the history; a minimal keep-alive
  client, so the time is the server's), against the store query the view is built on, made
  directly on a read-only store of the same file. HTTP time / direct time is what the API adds:
  routing, the token check, JSON, and for consumption and costs the readings at bucket ends and
  the pricing. Each sample runs both, one after the other. Also the first and the second
  ``/api/costs`` by year over all years (the first prices every hour; days are then cached).
* **telegram to SSE**: an emulated module (``s0pcm emulate``, a record every 0.2 s: 50 times the
  real rate) read by the logger with the app in its loop (one process, as ``s0pcm run`` will run
  them) on a copy of the store; per ``update`` event, the time from the logger receiving the
  record (the event's ``at``) to an SSE client having parsed it.
* **a crowd**: 200 SSE clients on such a process (a record every 2 s) plus 100 API requests a
  second (a mix of views of the last year) for 20 s (``--quick``: 5 s): p50/p95/p99 of the
  requests and of the SSE delivery, and the process's RSS idle, with the clients, under load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from bench.bench_store import (
    REGISTERS,
    START,
    TZ,
    build,
    build_pool,
    percentile,
    quick_from_env,
)
from s0pcm.calendar import Resolution
from s0pcm.config import load_config
from s0pcm.costs.tariffs import STATE_KEY as TARIFFS_KEY
from s0pcm.events import DeviceEvent, EventKind
from s0pcm.store import Store
from s0pcm.store.sqlite import SqliteStore
from s0pcm.web import bind, create_app, new_token, serve

ROOT = Path(__file__).resolve().parent.parent
#: key -> (kind, unit, pulses per unit), as bench_store simulates them.
METERS = {
    "electricity": ("electricity", "kWh", 1000),
    "solar": ("electricity", "kWh", 1000),
    "gas": ("gas", "m³", 100),
    "water": ("water", "L", 1),
    "heat_pump": ("electricity", "kWh", 1000),
}
TARIFFS: dict[str, Any] = {
    "currency": "EUR",
    "tariffs": [
        {"kind": "electricity", "valid_from": "2016-01-01", "fixed_per_day": 0.7, "periods": [
            {"name": "peak", "days": [0, 1, 2, 3, 4], "start": "07:00", "end": "23:00",
             "price": 0.31},
            {"name": "off-peak", "days": [0, 1, 2, 3, 4], "start": "23:00", "end": "07:00",
             "price": 0.24},
            {"name": "off-peak", "days": [5, 6], "start": "00:00", "end": "24:00",
             "price": 0.24}]},
        {"kind": "gas", "valid_from": "2016-01-01", "fixed_per_day": 0.6, "periods": [
            {"name": "all", "days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "24:00",
             "price": 1.35}]},
    ],
}  # fmt: skip
FULL_YEARS, QUICK_YEARS = 10, 1
FULL_SAMPLES, QUICK_SAMPLES = 200, 40
CLIENTS = 200
RATE = 100.0
EMULATOR_INTERVAL = 0.2
#: The crowd's module prints every 2 s: five times the real rate, so 20 s see ten records.
CROWD_INTERVAL = 2.0


def write_config(directory: Path, database: Path) -> Path:
    meters = "".join(
        f'[modules.kast.meters.{n}]\nkey = "{key}"\nkind = "{kind}"\nunit = "{unit}"\n'
        f"pulses_per_unit = {ppu}\n"
        for n, (key, (kind, unit, ppu)) in enumerate(METERS.items(), start=1)
    )
    path = directory / "s0pcm.toml"
    path.write_text(
        f'[logger]\ndatabase = "{database}"\ntimezone = "Europe/Amsterdam"\n'
        f"commit_interval = 5\n\n"
        # 200 dashboards and the request load: past the default limit of 64 connections.
        "[web]\nmax_connections = 512\n\n"
        f'[modules.kast]\nport = "{directory / "s0"}"\nmodel = 5\n'
        f"{meters}",
        encoding="utf-8",
    )
    return path


def prepare(path: Path, first_hour: int, end_hour: int) -> str:
    """Tariffs, a token and some events in the built store; the token."""
    with SqliteStore(path, tz=TZ) as store:
        store.set_state(TARIFFS_KEY, TARIFFS)
        rnd = random.Random(5)
        for _ in range(2000):
            at = rnd.uniform(first_hour * 3600, end_hour * 3600)
            kind = rnd.choice([EventKind.GAP, EventKind.SPIKE, EventKind.STARTUP])
            store.add_event(
                DeviceEvent(
                    at=at,
                    kind=kind,
                    module="kast",
                    meter=rnd.choice(list(METERS)),
                    value=1.0,
                    detail="",
                )
            )
        store.commit()
        return new_token(store, "bench")


# -- the views ------------------------------------------------------------------------------------


class Http:
    """A minimal HTTP/1.1 keep-alive client: the least client time around each request, so
    what is measured is the server."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        # The dashboard refuses a Host it does not serve (DNS rebinding): name the one it does.
        self.host = f"{host}:{port}".encode()

    def get(self, path: str, params: dict[str, Any] | None = None) -> bytes:
        target = path + ("?" + urlencode(params) if params else "")
        self.sock.sendall(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: " + self.host
                          + b"\r\n" + self.auth + b"\r\n")  # fmt: skip
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        if b" 200 " not in lines[0]:
            raise RuntimeError(f"{target}: {lines[0].decode()}")
        length = next(
            int(line.split(b":", 1)[1])
            for line in lines
            if line.lower().startswith(b"content-length")
        )
        while len(body) < length:
            body += self.sock.recv(max(65536, length - len(body)))
        return body

    def close(self) -> None:
        self.sock.close()


def local_day(rnd: random.Random, first: float, end: float) -> datetime:
    d = datetime.fromtimestamp(rnd.uniform(first, end - 86400), TZ).date()
    return datetime(d.year, d.month, d.day, tzinfo=TZ)


def month_range(day: datetime) -> tuple[float, float]:
    a = day.replace(day=1)
    b = a.replace(year=a.year + a.month // 12, month=a.month % 12 + 1)
    return a.timestamp(), b.timestamp()


Case = tuple[str, Callable[[random.Random], tuple[str, dict[str, Any], Callable[[], object]]]]


def view_cases(direct: Store, first: float, end: float, now: float) -> list[Case]:
    """Per view: (name, sample) where sample draws a request and the direct store query."""
    keys = list(METERS)

    def meters(rnd: random.Random) -> tuple[str, dict[str, Any], Callable[[], object]]:
        def query() -> object:
            midnight = datetime.fromtimestamp(now, TZ).replace(hour=0, minute=0, second=0)
            y0 = (midnight - timedelta(days=1)).timestamp()
            return [
                (
                    direct.reading_at(k, now),
                    direct.pulses(k, midnight.timestamp(), now),
                    direct.pulses(k, y0, now - 86400),
                )
                for k in keys
            ]

        return "/api/meters", {}, query

    def series(resolution: Resolution, span: str) -> Callable[..., Any]:
        def sample(rnd: random.Random) -> tuple[str, dict[str, Any], Callable[[], object]]:
            key = rnd.choice(keys)
            day = local_day(rnd, first, end)
            if span == "day":
                a, b = day.timestamp(), (day + timedelta(days=1)).timestamp()
            elif span == "month":
                a, b = month_range(day)
            elif span == "year":
                a = datetime(day.year, 1, 1, tzinfo=TZ).timestamp()
                b = datetime(day.year + 1, 1, 1, tzinfo=TZ).timestamp()
            else:
                a, b = first, end
            params = {"start": a, "end": b, "resolution": resolution.value}
            return (
                f"/api/meters/{key}/consumption",
                params,
                lambda: direct.series(key, a, b, resolution),
            )

        return sample

    def intervals(rnd: random.Random) -> tuple[str, dict[str, Any], Callable[[], object]]:
        key = rnd.choice(keys)
        a = float(rnd.randrange(int(first) // 3600, int(end) // 3600) * 3600)
        return (
            f"/api/meters/{key}/intervals",
            {"start": a, "end": a + 3600},
            lambda: direct.intervals(key, a, a + 3600),
        )

    def events(rnd: random.Random) -> tuple[str, dict[str, Any], Callable[[], object]]:
        return "/api/events", {"limit": 100}, lambda: direct.events(limit=100)

    def health(rnd: random.Random) -> tuple[str, dict[str, Any], Callable[[], object]]:
        def query() -> object:
            return direct.state("kast"), [
                (direct.pulses(k, float("-inf"), float("inf")), direct.reading_at(k, now))
                for k in keys
            ]

        return "/api/health", {}, query

    def costs(rnd: random.Random) -> tuple[str, dict[str, Any], Callable[[], object]]:
        a, b = month_range(local_day(rnd, first, end))

        def query() -> object:
            return [direct.series(k, a, b, Resolution.HOUR) for k in keys]

        return "/api/costs", {"start": a, "end": b, "resolution": "day"}, query

    return [
        ("meters (5, reading, today, yesterday)", meters),
        ("hour series of a day", series(Resolution.HOUR, "day")),
        ("day series of a month", series(Resolution.DAY, "month")),
        ("month series of a year", series(Resolution.MONTH, "year")),
        ("year series (all years)", series(Resolution.YEAR, "all")),
        ("intervals of an hour", intervals),
        ("events (newest 100)", events),
        ("health", health),
        ("costs of a month, per day", costs),
    ]


def production_costs(
    direct: Store, config_path: Path, first: float, end: float, rounds: int
) -> tuple[list[float], list[float]]:
    """``/api/costs``'s document of the last year per day (in the process, on the read-only
    store, days cached as a running server has them), its "solar" meter counted as consumption
    and as production with a feed-in tariff: what production adds (summed apart, priced by its
    own tariff, netted). Rounds alternate the two."""
    import dataclasses

    from s0pcm.calendar import Calendar
    from s0pcm.costs.pricing import DayPricing, costs_document
    from s0pcm.costs.tariffs import parse_tariffs
    from s0pcm.meters import Direction

    config = load_config(config_path)
    calendar = Calendar(config.logger.timezone)
    feed_in = {"kind": "electricity", "direction": "production", "valid_from": "2016-01-01",
               "periods": [{"name": "all", "days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00",
                            "end": "24:00", "price": 0.09}]}  # fmt: skip
    tariffs = parse_tariffs({**TARIFFS, "tariffs": [*TARIFFS["tariffs"], feed_in]})
    plain = config.meters
    solar = tuple(
        dataclasses.replace(m, direction=Direction.PRODUCTION) if m.key == "solar" else m
        for m in plain
    )
    start = max(first, end - 366 * 86400)
    pricing = DayPricing()
    times: tuple[list[float], list[float]] = ([], [])
    for n in range(rounds + 1):
        for meters, out in ((plain, times[0]), (solar, times[1])):
            ms = timed(functools.partial(
                costs_document, direct, calendar, pricing, tariffs, meters, start, end,
                Resolution.DAY, now=end,
            ))  # fmt: skip
            if n:  # the first round prices the days (a cold start)
                out.append(ms)
    return times


def timed(func: Callable[[], object]) -> float:
    began = time.perf_counter()
    func()
    return (time.perf_counter() - began) * 1000


def measure_views(
    url: str, token: str, cases: list[Case], samples: int
) -> list[tuple[str, list[float], list[float]]]:
    rnd = random.Random(42)
    results = []
    client = Http(url, token)
    try:
        for name, sample in cases:
            path, params, query = sample(rnd)
            client.get(path, params)  # warm up
            query()
            http, direct = [], []
            for _ in range(samples):
                path, params, query = sample(rnd)
                gc.collect()
                http.append(timed(functools.partial(client.get, path, params)))
                direct.append(timed(query))
            results.append((name, http, direct))
    finally:
        client.close()
    return results


# -- the live process -----------------------------------------------------------------------------


def serve_process(directory: Path, now: float | None) -> None:
    """``--serve DIR``: the app on the configuration in DIR; prints its port, stops on SIGTERM.

    With ``--now`` a view of the store with its clock fixed there (``s0pcm serve``); without,
    the logger with the app in its loop, as ``s0pcm run`` runs them.
    """
    from s0pcm.logger.daemon import Daemon

    config = load_config(directory / "s0pcm.toml")

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        daemon = None if now is not None else Daemon(config)
        if daemon is None:
            store: Store = SqliteStore(config.logger.database, tz=TZ, readonly=True)
            app = create_app(config=config, store=store, clock=lambda: now or 0.0)
        else:
            app = create_app(config=config, store=daemon.store, daemon=daemon)
        sock = bind("127.0.0.1", 0)
        print(sock.getsockname()[1], flush=True)
        server = asyncio.create_task(serve(app, host="127.0.0.1", port=0, stop=stop, sock=sock))
        logger = asyncio.create_task(daemon.run()) if daemon is not None else None
        await stop.wait()
        await server
        if daemon is not None and logger is not None:
            daemon.stop()
            await logger

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


@contextlib.contextmanager
def server_process(
    directory: Path, *, now: float | None = None, interval: float | None = None
) -> Iterator[tuple[str, int]]:
    """The app in a process of its own (see :func:`serve_process`), with an emulated module
    printing every ``interval`` seconds when given; yields (URL, pid)."""
    procs: list[subprocess.Popen[str]] = []
    try:
        if interval is not None:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "s0pcm", "emulate", "--link", str(directory / "s0"),
                 "--interval", str(interval), "--profile", "household"],
                stderr=subprocess.DEVNULL, text=True,
            ))  # fmt: skip
            deadline = time.monotonic() + 20
            while not (directory / "s0").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the emulator did not start")
                time.sleep(0.05)
        command = [sys.executable, "-m", "bench.bench_web", "--serve", str(directory)]
        if now is not None:
            command += ["--now", repr(now)]
        procs.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT))
        stdout = procs[-1].stdout
        assert stdout is not None
        url = f"http://127.0.0.1:{int(stdout.readline())}"
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(url + "/api/session", timeout=2).raise_for_status()
                break
            time.sleep(0.1)
        yield url, procs[-1].pid
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


async def sse_client(
    client: httpx.AsyncClient, delays: list[float] | None, stop: asyncio.Event
) -> int:
    """Read ``/api/live`` until ``stop``; per ``update`` the delay since its ``at`` (ms)."""
    events = 0
    async with client.stream("GET", "/api/live") as response:
        response.raise_for_status()
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind == "update":
                received = time.time()
                events += 1
                if delays is not None:
                    delays.append((received - json.loads(line[5:])["at"]) * 1000)
            if stop.is_set():
                break
    return events


async def telegram_to_sse(url: str, token: str, count: int) -> tuple[list[float], list[float]]:
    """Delays of ``count`` update events to one client, and GET /api/session round trips."""
    headers = {"Authorization": f"Bearer {token}"}
    delays: list[float] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        task = asyncio.create_task(sse_client(client, delays, stop))
        while len(delays) < count + 2:
            await asyncio.sleep(0.1)
            if task.done():
                task.result()
        stop.set()
        trips = []
        for _ in range(count):
            began = time.perf_counter()
            (await client.get("/api/session")).raise_for_status()
            trips.append((time.perf_counter() - began) * 1000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 5)
    return delays[2:], trips  # the first ones may predate the client


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port), limit=2**20)


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str, auth: bytes
) -> None:
    writer.write(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + b"\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"{target}: {head[:40]!r}")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)


async def _stream(url: str, auth: bytes, delays: list[float] | None, stop: asyncio.Event) -> None:
    """A raw SSE client: drains ``/api/live``; with ``delays``, times each ``update``."""
    reader, writer = await _connect(url)
    writer.write(b"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + b"\r\n")
    try:
        kind = b""
        while not stop.is_set():
            line = await reader.readline()
            if not line:
                return
            if delays is None:
                continue
            if line.startswith(b"event:"):
                kind = line[6:].strip()
            elif line.startswith(b"data:") and kind == b"update":
                delays.append((time.time() - json.loads(line[5:])["at"]) * 1000)
    finally:
        writer.close()


async def crowd(
    url: str,
    token: str,
    pid: int,
    seconds: float,
    end: float,
    *,
    clients: int = CLIENTS,
    rate: float = RATE,
    connections: int = 32,
) -> dict[str, Any]:
    """``clients`` SSE clients and ``rate`` API requests a second for ``seconds``.

    The requests go out on a fixed schedule over ``connections`` keep-alive connections (raw
    asyncio, so the load generator stays light); a request's latency counts from when it was
    due, so waiting for a free connection counts too.
    """
    auth = f"Authorization: Bearer {token}\r\n".encode()
    rnd = random.Random(9)
    idle = rss_kib(pid)[0]
    stop = asyncio.Event()
    sse_delays: list[float] = []
    streams = [
        asyncio.create_task(_stream(url, auth, sse_delays if n < 20 else None, stop))
        for n in range(clients)
    ]
    await asyncio.sleep(2.0)
    connected = rss_kib(pid)[0]
    first = end - 365 * 86400

    def target() -> str:
        key = rnd.choice(list(METERS))
        day = local_day(rnd, first, end)
        a, b = month_range(day)
        choices: list[tuple[str, dict[str, Any]]] = [
            ("/api/meters", {}),
            ("/api/health", {}),
            ("/api/events", {"limit": 50}),
            (f"/api/meters/{key}/consumption",
             {"start": day.timestamp(), "end": day.timestamp() + 86400, "resolution": "hour"}),
            (f"/api/meters/{key}/consumption", {"start": a, "end": b, "resolution": "day"}),
            ("/api/costs", {"start": a, "end": b, "resolution": "day"}),
        ]  # fmt: skip
        path, params = rnd.choice(choices)
        return path + ("?" + urlencode(params) if params else "")

    count = int(seconds * rate)
    began = time.perf_counter()
    due = [(began + n / rate, target()) for n in range(count)]
    queue: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def feed() -> None:
        for when, what in due:
            wait = when - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            queue.put_nowait((when, what))

    async def worker() -> None:
        nonlocal errors
        reader, writer = await _connect(url)
        try:
            while True:
                when, what = await queue.get()
                try:
                    await _request(reader, writer, what, auth)
                    latencies.append((time.perf_counter() - when) * 1000)
                except (RuntimeError, OSError, asyncio.IncompleteReadError):
                    errors += 1
                    writer.close()
                    reader, writer = await _connect(url)
                finally:
                    queue.task_done()
        finally:
            writer.close()

    sse_delays.clear()
    cpu_server, cpu_client = cpu_seconds(pid), time.process_time()
    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    feeder = asyncio.create_task(feed())
    peak = connected
    while not feeder.done():
        await asyncio.sleep(0.5)
        peak = max(peak, rss_kib(pid)[0])
    await queue.join()
    wall = time.perf_counter() - began
    cpu_server = (cpu_seconds(pid) - cpu_server) / wall
    cpu_client = (time.process_time() - cpu_client) / wall
    loaded, hwm = rss_kib(pid)
    stop.set()
    for task in [*workers, *streams]:
        task.cancel()
    await asyncio.gather(*workers, *streams, return_exceptions=True)
    return {
        "requests": count,
        "errors": errors,
        "latencies": latencies,
        "sse": sse_delays,
        "rss_idle": idle,
        "rss_connected": connected,
        "rss_loaded": max(peak, loaded),
        "hwm": hwm,
        "cpu_server": cpu_server,
        "cpu_client": cpu_client,
    }


# -- report ---------------------------------------------------------------------------------------


def stats(values: Sequence[float]) -> str:
    return (
        f"p50 {statistics.median(values):7.2f}  p95 {percentile(values, 0.95):7.2f}  "
        f"p99 {percentile(values, 0.99):7.2f}  max {max(values):7.2f} ms"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_web", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_YEARS} year, 5 s crowd")
    parser.add_argument("--years", type=int, default=None, help="years of history")
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--now", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv if argv is not None else [])
    if args.serve is not None:
        serve_process(args.serve, args.now)
        return
    quick = args.quick or quick_from_env()
    years = args.years or (QUICK_YEARS if quick else FULL_YEARS)
    samples = QUICK_SAMPLES if quick else FULL_SAMPLES
    crowd_seconds = 5.0 if quick else 20.0

    first_hour = int(START.timestamp()) // 3600
    end_hour = int(START.replace(year=START.year + years).timestamp()) // 3600
    first, end = first_hour * 3600.0, end_hour * 3600.0
    with tempfile.TemporaryDirectory(prefix="s0pcm-bench-web-") as tmp:
        work = Path(tmp)
        database = work / "history.db"
        began = time.perf_counter()
        build(database, build_pool(), first_hour, end_hour)
        built = time.perf_counter() - began
        token = prepare(database, first_hour, end_hour)
        write_config(work, database)
        print(
            f"{years} years x {len(REGISTERS)} registers at 10 s (built in {built:.0f} s); "
            f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
        )

        with (
            SqliteStore(database, tz=TZ, readonly=True) as direct,
            server_process(work, now=end) as (url, _),
        ):
            client = Http(url, token)
            cold = timed(
                lambda: client.get("/api/costs", {"start": first, "end": end, "resolution": "year"})
            )
            warm = timed(
                lambda: client.get("/api/costs", {"start": first, "end": end, "resolution": "year"})
            )
            client.close()
            results = measure_views(url, token, view_cases(direct, first, end, end), samples)
            plain_ms, solar_ms = production_costs(
                direct, work / "s0pcm.toml", first, end, max(5, samples // 8)
            )
        width = max(len(name) for name, _, _ in results)
        print(f"{'view (' + str(samples) + ' each)':<{width}}  HTTP p50    p95 | store p50    p95"
              " | ratio p50")  # fmt: skip
        for name, http, store_ms in results:
            h50, d50 = statistics.median(http), statistics.median(store_ms)
            print(
                f"{name:<{width}}  {h50:8.2f} {percentile(http, 0.95):6.2f} | "
                f"{d50:9.2f} {percentile(store_ms, 0.95):6.2f} | {h50 / max(d50, 1e-3):9.1f}"
            )
        print(
            f"costs per year over all {years} years: {cold:.0f} ms the first time after a start "
            f"(every hour of every day priced), {warm:.1f} ms after (days cached)"
        )
        p50, s50 = statistics.median(plain_ms), statistics.median(solar_ms)
        print(
            f"costs of the last year per day, in the process: {p50:.1f} ms with the solar meter "
            f"as consumption, {s50:.1f} ms as production with a feed-in tariff "
            f"({s50 / p50:.2f} times; {len(plain_ms)} rounds each, alternating)"
        )

        live = work / "live"
        live.mkdir()
        shutil.copy(database, live / "history.db")
        write_config(live, live / "history.db")
        with server_process(live, interval=EMULATOR_INTERVAL) as (live_url, _):
            delays, trips = asyncio.run(telegram_to_sse(live_url, token, samples // 2))
        print(
            f"telegram to SSE event, a record every {EMULATOR_INTERVAL:g} s, one client "
            f"({len(delays)} records): {stats(delays)}"
        )
        print(f"  reference, GET /api/session round trip (httpx): {stats(trips)}")
        (live / "s0").unlink(missing_ok=True)
        with server_process(live, interval=CROWD_INTERVAL) as (live_url, pid):
            result = asyncio.run(crowd(live_url, token, pid, crowd_seconds, end))
        lat, sse = result["latencies"], result["sse"]
        print(
            f"{CLIENTS} SSE clients + {RATE:g} requests/s for {crowd_seconds:g} s, a record every "
            f"{CROWD_INTERVAL:g} s: {result['requests']} requests, {result['errors']} errors"
        )
        print(
            f"  CPU: logger+web process {result['cpu_server']:.0%} of a core, these clients "
            f"{result['cpu_client']:.0%}"
        )
        print(f"  API requests: {stats(lat)}")
        print(f"  SSE delivery (20 of the clients, {len(sse)} events): {stats(sse)}")
        print(
            f"  logger+web process RSS: idle {result['rss_idle'] / 1024:.1f} MiB, "
            f"{CLIENTS} clients connected {result['rss_connected'] / 1024:.1f} MiB, "
            f"under load {result['rss_loaded'] / 1024:.1f} MiB (peak {result['hwm'] / 1024:.1f}"
            f" MiB); ratio loaded / idle {result['rss_loaded'] / result['rss_idle']:.2f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
