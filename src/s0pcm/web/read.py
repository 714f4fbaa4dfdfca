"""The reading half of the API: meters, readings, consumption, costs, events, health, tariffs,
and ``/metrics`` (the same live values and health, for Prometheus).

Store queries and the JSON encoding of their answers run in a worker thread (pricing a year of
hours takes a while and must not stall the logger or the live stream); live rates are read on the
event loop, where the logger's estimators live.
"""

from __future__ import annotations

import io
import math
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

import anyio.to_thread
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from ..calendar import Resolution, has_data
from ..costs.pricing import costs_document, meter_energy, unit_size
from ..costs.tariffs import BucketCost
from ..errors import StoreError
from ..events import DeviceEvent, EventKind
from ..logger.overrides import undoable
from ..logger.snapshot import MeterValues
from ..meters import Kind, Meter
from ..store import Store
from ..store.sqlite import SqliteStore
from ..tools.export import write_csv
from . import power, shapes
from .context import Context
from .errors import ApiError
from .params import (
    bad,
    query_choice,
    query_limit,
    query_range,
    query_resolution,
    query_text,
    query_time,
)

__all__ = ["ROUTES", "context", "event_document"]

T = TypeVar("T")


def context(request: Request) -> Context:
    ctx: Context = request.app.state.context
    return ctx


async def off_loop(func: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(func)


async def json_off_loop(func: Callable[[], shapes.Document]) -> Response:
    """The JSON answer ``func`` builds, built and encoded in a worker thread."""
    body = await off_loop(lambda: shapes.encode(func()))
    return Response(body, media_type="application/json")


def event_document(e: DeviceEvent) -> shapes.Event:
    return shapes.Event(e.at, e.kind, e.module, e.meter, e.value, e.detail)


# -- computations (worker thread) ----------------------------------------------------------------


def consumption_document(
    ctx: Context, meter: Meter, start: float, end: float, resolution: Resolution
) -> shapes.Consumption:
    store = ctx.store
    bounds = [float(b) for b in ctx.calendar.buckets(resolution, start, end)]
    series = store.series(meter.key, start, end, resolution)
    total = store.pulses(meter.key, -math.inf, bounds[0])
    cumulative = [total]
    for _, pulses in series:
        total += pulses
        cumulative.append(total)
    # At every bound: a bucket's start and end (the page needs no extra request for the first).
    readings = store.readings_at(meter.key, meter.pulses_per_unit, bounds, cumulative)
    tariffs = ctx.tariffs()
    costs: list[BucketCost | None] = [None] * len(series)
    if tariffs.of(meter.kind, meter.direction):
        costs = meter_energy(
            store, ctx.calendar, ctx.pricing, tariffs, meter, resolution, bounds, series
        )
    constants = store.constants(meter.key, meter.pulses_per_unit)
    values = constants.bucket_units(store, meter.key, bounds, [p for _, p in series])
    since, now = store.since(meter.key), ctx.clock()
    known = has_data(bounds, since=since, now=now)
    base = (
        base_loads(store, ctx.tz, meter, bounds, since=since, now=now)
        if resolution is Resolution.DAY and meter.kind is Kind.ELECTRICITY and not meter.produces
        else [None] * len(series)
    )
    buckets = [
        shapes.Bucket(
            start=bounds[i],
            end=bounds[i + 1],
            pulses=pulses,
            value=round(values[i], 6),
            reading_start=readings[i],
            reading_end=readings[i + 1],
            cost=None if (c := costs[i]) is None else round(c.energy, 6),
            base_load=base[i],
        )
        if known[i]
        else shapes.Bucket(bounds[i], bounds[i + 1], None, None, None, None, None)
        for i, (_, pulses) in enumerate(series)
    ]
    return shapes.Consumption(meter.key, meter.unit, resolution, buckets, since=since, now=now)


#: The night hours whose lowest hour is a day's base load ("sluipverbruik"): 00:00-06:00.
NIGHT: Final = range(0, 6)


def base_loads(
    store: Store,
    tz: ZoneInfo,
    meter: Meter,
    bounds: Sequence[float],
    *,
    since: float | None,
    now: float,
) -> list[float | None]:
    """Per day ``[bounds[i], bounds[i + 1])`` the lowest average power of one whole night hour,
    in W: what stays on all night (fridge, standby, router). None for a day whose night has
    no whole hour of data (before logging began, the logger down, or not over yet)."""
    logged = store.logged_hours(meter.key, bounds[0], bounds[-1])
    hours: Iterable[tuple[float, int]]
    if all(b % 3600 == 0 for b in bounds):
        # Local hours are UTC hours (a whole-hour zone): the logged hours are all it needs.
        hours = sorted(logged.items())
    else:  # a half-hour zone: its local hours from the slots, each whole if both UTC hours are
        hours = store.series(meter.key, bounds[0], bounds[-1], Resolution.HOUR)
    constants = store.constants(meter.key, meter.pulses_per_unit)
    lowest: list[float | None] = [None] * (len(bounds) - 1)
    i = 0
    for start, pulses in hours:
        while i + 1 < len(bounds) - 1 and start >= bounds[i + 1]:
            i += 1
        local = datetime.fromtimestamp(start, tz)
        # Whole hours of data only: the first hour logged began before its first record, and
        # an hour the logger was down (no record) is unknown, not 0 W.
        utc = (math.floor(start / 3600) * 3600.0, math.floor((start + 3599) / 3600) * 3600.0)
        logged_all = all(h in logged for h in utc)
        whole = since is not None and start > since and start + 3600 <= now and logged_all
        if local.hour not in NIGHT or not whole:
            continue
        # An hour's kWh is its average kW: a thousand times that is its average W.
        watts = round(pulses / constants.at(start) * unit_size(meter) * 1000, 1)
        found = lowest[i]
        if found is None or watts < found:
            lowest[i] = watts
    return lowest


# -- handlers -------------------------------------------------------------------------------------


async def live_values(
    ctx: Context, meters: tuple[Meter, ...], *, days: bool = True
) -> dict[str, MeterValues]:
    """The meters' live values now: the logger's on the loop, else from the store off it
    (``days=False``: without today and yesterday, for health)."""
    now = ctx.clock()
    if ctx.daemon is not None:
        return ctx.values(meters, now)
    return await off_loop(lambda: ctx.values(meters, now, days=days))


async def list_meters(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_read(request)
    meters = ctx.meters()
    values = await live_values(ctx, meters)
    return shapes.answer([ctx.meter_view(m, values[m.key]) for m in meters])


async def get_meter(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_read(request)
    meter = ctx.meter(request.path_params["key"])
    values = await live_values(ctx, (meter,))
    return shapes.answer(ctx.meter_view(meter, values[meter.key]))


async def get_reading(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_read(request)
    meter = ctx.meter(request.path_params["key"])
    at = query_time(request, "at", ctx.clock())
    reading = await off_loop(lambda: ctx.reading(meter, at))
    return shapes.answer(shapes.Reading(meter.key, at, reading, meter.unit))


async def get_consumption(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_read(request)
    meter = ctx.meter(request.path_params["key"])
    resolution = query_resolution(request)
    start, end = query_range(request, resolution=resolution)
    return await json_off_loop(lambda: consumption_document(ctx, meter, start, end, resolution))


async def get_readings(request: Request) -> Response:
    """``GET /api/meters/{key}/readings``: the readings set (anchors), oldest first."""
    ctx = context(request)
    ctx.auth.require_read(request)
    meter = ctx.meter(request.path_params["key"])

    def build() -> list[shapes.ReadingSet]:
        anchors = ctx.store.anchors(meter.key)
        return [
            shapes.ReadingSet(
                a.at,
                a.kind.value,
                a.reading,
                a.pulses_per_unit,
                undoable(anchors, a, meter),
            )
            for a in anchors
        ]

    return await json_off_loop(build)


async def get_power(request: Request) -> Response:
    """``GET /api/power?hours=N``: each enabled meter's rate over the last N hours (1..6)."""
    ctx = context(request)
    ctx.auth.require_read(request)
    raw = request.query_params.get("hours", "3")
    try:
        hours = float(raw)
    except ValueError:
        hours = math.nan
    if not 0 < hours <= power.HOURS:
        raise bad("hours", f"a number of hours above 0, at most {power.HOURS}, got {raw!r}")
    end = ctx.clock()
    start = end - hours * 3600
    history = None if ctx.live is None or ctx.daemon is None else ctx.live.power
    meters = [m for m in ctx.meters() if m.enabled]

    def build() -> shapes.Power:
        return shapes.Power(
            start,
            end,
            [
                shapes.PowerMeter(
                    m.key,
                    m.name,
                    m.kind,
                    m.spec.rate_unit,
                    [[t, v] for t, v in power.series(history, ctx.store, m, start, end)],
                    m.direction,
                )
                for m in meters
            ],
        )

    return await json_off_loop(build)


async def get_export(request: Request) -> Response:
    """``GET /api/meters/{key}/export.csv``: :func:`~s0pcm.tools.export.write_csv`, the
    writer of ``s0pcm export``, over this server's store (with what the logger in this process
    has not committed yet)."""
    ctx = context(request)
    ctx.auth.require_read(request)
    meter = ctx.meter(request.path_params["key"])
    resolution = query_resolution(request)
    start, end = query_range(request, resolution=resolution)
    now = ctx.clock()

    def build() -> str:
        out = io.StringIO()
        write_csv(ctx.store, meter, start, end, resolution, out, tz=ctx.tz, now=now)
        return out.getvalue()

    text = await off_loop(build)
    day = datetime.fromtimestamp(start, ctx.tz).date().isoformat()
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"s0pcm-{meter.key}-{resolution.value}-{day}.csv")
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def get_backup(request: Request) -> Response:
    """``GET /api/backup``: the owner's copy of the whole database, for a logged-in session only
    (it holds the password's hash and the tokens' too; a download link sends no CSRF header,
    and a read changes nothing). SQLite only (PostgreSQL has pg_dump)."""
    ctx = context(request)
    ctx.auth.require_session(request, write=False)
    if not isinstance(ctx.store, SqliteStore):
        raise ApiError(409, "backup", "the database is PostgreSQL: use pg_dump")
    # The logger in this process commits first (its journal and the store in step), and the
    # copy commits nothing itself: a bare store commit would let a crash count pulses twice.
    folder = Path(tempfile.mkdtemp(prefix="s0pcm-backup-"))
    path = folder / "s0pcm.sqlite"

    def clean() -> None:
        shutil.rmtree(folder, ignore_errors=True)

    try:
        ctx.commit()
        await off_loop(lambda: ctx.store.backup(path, commit=ctx.daemon is None))
    except (StoreError, OSError) as e:
        clean()
        raise ApiError(503, "backup failed", str(e)) from None
    day = datetime.fromtimestamp(ctx.clock(), ctx.tz).date().isoformat()

    return FileResponse(
        path,
        media_type="application/vnd.sqlite3",
        filename=f"s0pcm-{day}.sqlite",
        background=BackgroundTask(clean),
    )


async def get_intervals(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_read(request)
    meter = ctx.meter(request.path_params["key"])
    start, end = query_range(request, resolution=Resolution.INTERVAL)
    return await json_off_loop(
        lambda: shapes.Intervals(
            meter.key, [[t, n] for t, n in ctx.store.intervals(meter.key, start, end)]
        )
    )


async def get_costs(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_read(request)
    resolution = query_resolution(request)
    start, end = query_range(request, resolution=resolution)
    meters, tariffs, now = ctx.meters(), ctx.tariffs(), ctx.clock()
    return await json_off_loop(
        lambda: costs_document(
            ctx.store, ctx.calendar, ctx.pricing, tariffs, meters, start, end, resolution, now=now
        )
    )


async def get_health(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_read(request)
    now, meters = ctx.clock(), ctx.meters()
    if ctx.daemon is not None:  # the logger's values, on the loop; the rest off it
        values = ctx.values(meters, now)
        return await json_off_loop(lambda: ctx.health(now, values, meters))
    # Without the logger: the values and the document in one hop to a worker thread.
    return await json_off_loop(lambda: ctx.health(now, ctx.values(meters, now, days=False), meters))


async def get_metrics(request: Request) -> Response:
    """``GET /metrics``: the live values and health for Prometheus (text exposition)."""
    ctx = context(request)
    ctx.auth.require_read(request)
    # Imported at the first scrape: prometheus-client costs about 1.3 MiB of memory, which a
    # dashboard nobody scrapes need not carry.
    from ..publish import prometheus

    now, meters = ctx.clock(), ctx.meters()
    values = await live_values(ctx, meters)

    def render() -> bytes:
        health = ctx.health(now, values, meters)  # with no logger here, from the store
        modules = tuple(
            prometheus.ModuleSample(
                name=m.name,
                connected=m.connected,
                module_id=m.module_id,
                firmware=m.firmware,
                last_record_at=m.last_record_at,
                telegrams=m.counters.telegrams,
                rejected=m.rejected,
            )
            for m in health.modules
        )
        scrape = prometheus.Scrape(meters=meters, values=values, modules=modules, live=health.live)
        return prometheus.exposition(scrape)

    body = await off_loop(render)
    return Response(body, headers={"Cache-Control": "no-store"}, media_type=prometheus.CONTENT_TYPE)


async def get_events(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_read(request)
    start, end = query_range(request, required=False)
    kinds = query_choice(request, "kind", [k.value for k in EventKind])
    module = query_text(request, "module")
    meter = query_text(request, "meter", most=128)
    limit = query_limit(request)
    wanted = None if kinds is None else [EventKind(k) for k in kinds]
    return await json_off_loop(
        lambda: [
            event_document(e)
            for e in ctx.store.events(
                start, end, module=module, meter=meter, kinds=wanted, limit=limit
            )
        ]
    )


async def get_tariffs(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_read(request)
    return shapes.answer(ctx.tariffs().document())


ROUTES: list[tuple[str, Callable[[Request], Any], list[str]]] = [
    ("/api/meters", list_meters, ["GET"]),
    ("/api/meters/{key}", get_meter, ["GET"]),
    ("/api/meters/{key}/reading", get_reading, ["GET"]),
    ("/api/meters/{key}/consumption", get_consumption, ["GET"]),
    ("/api/meters/{key}/intervals", get_intervals, ["GET"]),
    ("/api/meters/{key}/export.csv", get_export, ["GET"]),
    ("/api/power", get_power, ["GET"]),
    ("/api/meters/{key}/readings", get_readings, ["GET"]),
    ("/api/backup", get_backup, ["GET"]),
    ("/api/costs", get_costs, ["GET"]),
    ("/api/health", get_health, ["GET"]),
    ("/api/events", get_events, ["GET"]),
    ("/api/tariffs", get_tariffs, ["GET"]),
]
