"""Costs over the store: energy per meter and bucket, and the ``/api/costs`` document.

Pricing needs each hour's consumption (a time-of-use tariff changes price by the hour), and the
store's hourly series costs some 20 µs an hour: a decade of one meter is seconds. So energy is
priced per local day and kept: a day's price-weighted pulses stay valid as long as the day's total
does (the store only ever adds pulses, so an unchanged total is an unchanged day). Days whose
tariff has one price all day need no hours at all. Buckets of whole days (day, week, month,
year) add up their days; hour and interval buckets are priced from their own series.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Final

from ..calendar import Calendar, Resolution, has_data
from ..meters import KINDS, Direction, Kind, Meter
from ..store import Store
from . import shapes
from .tariffs import BucketCost, Tariffs, bucket_costs, covered_span, priced_by_day

__all__ = ["DayPricing", "costs_document", "meter_energy", "unit_size"]

#: Entries kept before the cache starts again (a decade of five meters is 18,000).
MAX_DAYS: Final = 500_000
_DAY: Final = timedelta(days=1)
#: Days priced per hourly query.
RUN_DAYS: Final = 31


def unit_size(meter: Meter) -> float:
    """The kind's default unit per unit of ``meter`` (Wh -> 0.001 kWh, L -> 0.001 m³)."""
    return dict(meter.spec.units).get(meter.unit, 1.0)


class DayPricing:
    """Price-weighted pulses per meter and local day (pulses x price), cached."""

    def __init__(self) -> None:
        self._tariffs: Tariffs | None = None
        self._days: dict[tuple[str, Kind, Direction, date], tuple[int, float]] = {}
        self._lock = threading.Lock()
        #: Days priced from their hours, and days answered from the cache (for benchmarks).
        self.computed = 0
        self.reused = 0

    def _check(self, tariffs: Tariffs) -> None:
        with self._lock:
            if tariffs != self._tariffs or len(self._days) > MAX_DAYS:
                self._days = {}
                self._tariffs = tariffs

    def by_day(
        self,
        store: Store,
        calendar: Calendar,
        tariffs: Tariffs,
        meter: Meter,
        start: float,
        end: float,
    ) -> dict[date, float]:
        """Per local date in ``[start, end)`` (whole days), pulses x price of ``meter``."""
        self._check(tariffs)
        kind, direction = meter.kind, meter.direction
        span = covered_span(tariffs, kind, calendar, direction)
        if span is None:
            return {}
        lo, hi = max(start, span[0]), min(end, span[1])
        if hi <= lo:
            return {}
        out: dict[date, float] = {}
        missing: list[tuple[float, date, int]] = []
        for day_start, total in store.series(meter.key, lo, hi, Resolution.DAY):
            d = calendar.local_date(day_start)
            tariff = tariffs.at(kind, d, direction)
            if tariff is None or not total:
                continue
            flat = tariff.flat_price(d.weekday())
            if flat is not None:
                out[d] = total * flat
                continue
            hit = self._days.get((meter.key, kind, direction, d))
            if hit is not None and hit[0] == total:
                out[d] = hit[1]
                self.reused += 1
                continue
            missing.append((day_start, d, total))
        for run in _runs(missing):
            first, last = run[0][0], calendar.day_start(run[-1][1] + _DAY)
            hours = store.series(meter.key, first, last, Resolution.HOUR)
            priced = priced_by_day(tariffs, kind, hours, calendar, direction)
            for _, d, total in run:
                out[d] = priced.get(d, 0.0)
                self._days[(meter.key, kind, direction, d)] = (total, out[d])
            self.computed += len(run)
        return out


def _runs(days: list[tuple[float, date, int]]) -> list[list[tuple[float, date, int]]]:
    """Consecutive dates together, so each run is one hourly query; at most a month each, so no
    query holds the store (and the logger waiting for it) for long."""
    runs: list[list[tuple[float, date, int]]] = []
    for item in days:
        if runs and runs[-1][-1][1] + _DAY == item[1] and len(runs[-1]) < RUN_DAYS:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def meter_energy(
    store: Store,
    calendar: Calendar,
    pricing: DayPricing,
    tariffs: Tariffs,
    meter: Meter,
    resolution: Resolution,
    bounds: Sequence[float],
    series: Sequence[tuple[float, int]],
) -> list[BucketCost | None]:
    """The energy cost of ``meter`` per bucket (``series``: the meter's pulses per bucket)."""
    size = unit_size(meter)
    constants = store.constants(meter.key, meter.pulses_per_unit)
    if resolution in (Resolution.INTERVAL, Resolution.HOUR):
        units = constants.bucket_units(store, meter.key, bounds, [p for _, p in series])
        fine = [(t, u * size) for (t, pulses), u in zip(series, units, strict=True) if pulses]
        return bucket_costs(
            tariffs, meter.kind, bounds=bounds, consumption=fine, tz=calendar, fixed=False,
            direction=meter.direction,
        )  # fmt: skip
    days = pricing.by_day(store, calendar, tariffs, meter, bounds[0], bounds[-1])
    # Days on which the constant changes (a meter replaced by one with another constant) are
    # priced from their hours in units, each split where the change falls; any other day by
    # the one constant in force all day.
    changed = {calendar.local_date(t) for t, _ in constants.steps[1:]}
    energy: dict[date, float] = {}
    for d, priced in days.items():
        if d not in changed:
            ppu = constants.at(calendar.day_start(d)) if changed else constants.current
            energy[d] = priced / ppu * size
            continue
        begin, end = calendar.day_start(d), calendar.day_start(d + _DAY)
        hours = store.series(meter.key, begin, end, Resolution.HOUR)
        edges = [float(b) for b in calendar.buckets(Resolution.HOUR, begin, end)]
        units = constants.bucket_units(store, meter.key, edges, [p for _, p in hours])
        by_hour = [(t, u) for (t, _), u in zip(hours, units, strict=True)]
        priced_day = priced_by_day(tariffs, meter.kind, by_hour, calendar, meter.direction)
        energy[d] = priced_day.get(d, 0.0) * size
    return bucket_costs(
        tariffs,
        meter.kind,
        bounds=bounds,
        consumption=(),
        tz=calendar,
        fixed=False,
        energy_by_day=energy,
        direction=meter.direction,
    )


def _kind_sums(
    store: Store,
    calendar: Calendar,
    pricing: DayPricing,
    tariffs: Tariffs,
    meters: Sequence[Meter],
    resolution: Resolution,
    bounds: Sequence[float],
) -> tuple[list[float], list[float] | None]:
    """Per bucket the meters' total in the kind's default unit, and its price by the tariffs
    of their direction (None without one)."""
    count = len(bounds) - 1
    values = [0.0] * count
    priced = [0.0] * count if meters and tariffs.of(meters[0].kind, meters[0].direction) else None
    for meter in meters:
        series = store.series(meter.key, bounds[0], bounds[-1], resolution)
        constants = store.constants(meter.key, meter.pulses_per_unit)
        size = unit_size(meter)
        for i, u in enumerate(
            constants.bucket_units(store, meter.key, bounds, [p for _, p in series])
        ):
            values[i] += u * size
        if priced is None:
            continue
        costs = meter_energy(store, calendar, pricing, tariffs, meter, resolution, bounds, series)
        for i, cost in enumerate(costs):
            priced[i] += cost.energy if cost is not None else 0.0
    return values, priced


def costs_document(
    store: Store,
    calendar: Calendar,
    pricing: DayPricing,
    tariffs: Tariffs,
    meters: Sequence[Meter],
    start: float,
    end: float,
    resolution: Resolution,
    *,
    now: float,
) -> shapes.Costs:
    """Per bucket and kind (of the enabled meters): consumption in the kind's unit, energy and
    fixed costs; the fixed costs once per kind, however many meters it has, and only for days
    begun by ``now``. Production meters of a kind are summed apart (``produced``), priced by the
    kind's feed-in tariffs (``compensation``, taken off the cost) and netted (``net``)."""
    bounds = [float(b) for b in calendar.buckets(resolution, start, end)]
    count = len(bounds) - 1
    kinds: dict[Kind, list[Meter]] = {}
    for meter in meters:
        if meter.enabled:
            kinds.setdefault(meter.kind, []).append(meter)
    by_kind: dict[Kind, list[shapes.KindCost]] = {}
    first: dict[Kind, float] = {}
    for kind, of_kind in kinds.items():
        began = [t for m in of_kind if (t := store.since(m.key)) is not None]
        if began:
            first[kind] = min(began)
    for kind, of_kind in kinds.items():
        known = has_data(bounds, since=first.get(kind), now=now)
        used = [m for m in of_kind if not m.produces]
        made = [m for m in of_kind if m.produces]
        values, energy = _kind_sums(store, calendar, pricing, tariffs, used, resolution, bounds)
        produced, earned = _kind_sums(store, calendar, pricing, tariffs, made, resolution, bounds)
        since = first.get(kind, math.inf)
        fixed = bucket_costs(
            tariffs, kind, bounds=bounds, consumption=(), tz=calendar, until=now, since=since
        )
        feed_fixed = (
            bucket_costs(
                tariffs, kind, bounds=bounds, consumption=(), tz=calendar, until=now,
                since=since, direction=Direction.PRODUCTION,
            )
            if made
            else [None] * count
        )  # fmt: skip
        units = {m.unit for m in of_kind}
        unit, scale = KINDS[kind].unit, 1.0
        if kind is Kind.OTHER:
            unit = units.pop() if len(units) == 1 else ""
        elif len(units) == 1:
            # The meters' own unit when they share one (water in L on its card is L here too),
            # else the kind's, which every unit of the kind converts to.
            unit = units.pop()
            scale = 1 / unit_size(of_kind[0])
        docs = []
        for i in range(count):
            if not known[i]:
                docs.append(shapes.KindCost(
                    value=None, unit=unit, energy_cost=None, fixed_cost=None, cost=None
                ))  # fmt: skip
                continue
            f, ff = fixed[i], feed_fixed[i]
            charge = None if energy is None or f is None else energy[i]
            credit = None if earned is None or ff is None else earned[i]
            fixed_cost = None if f is None and ff is None else (
                (f.fixed if f else 0.0) + (ff.fixed if ff else 0.0)
            )  # fmt: skip
            charged = [x for x in (charge, fixed_cost) if x is not None]
            # Consumption no tariff prices makes the cost unknown (a feed-in alone is not it).
            unpriced = bool(used) and charge is None
            cost = (
                None
                if unpriced or (not charged and credit is None)
                else math.fsum(charged) - (credit or 0.0)
            )
            value = round(values[i] * scale, 6) if used else None
            made_value = round(produced[i] * scale, 6) if made else None
            docs.append(shapes.KindCost(
                value=value,
                unit=unit,
                energy_cost=_round(charge),
                fixed_cost=_round(fixed_cost),
                cost=_round(cost),
                produced=made_value,
                net=None if made_value is None or value is None else round(value - made_value, 6),
                compensation=_round(credit),
            ))  # fmt: skip
        by_kind[kind] = docs
    buckets = []
    for i in range(count):
        parts = {kind: docs[i] for kind, docs in by_kind.items()}
        costs = [p.cost for p in parts.values() if p.cost is not None]
        total = round(math.fsum(costs), 6) if costs else None
        buckets.append(shapes.CostBucket(bounds[i], bounds[i + 1], parts, total))
    return shapes.Costs(
        tariffs.currency, resolution, buckets, since=min(first.values(), default=None), now=now
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
