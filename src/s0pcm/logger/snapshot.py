"""A meter's live values, computed once: what every consumer shows of it right now.

The dashboard's live stream, ``/api/meters``, ``s0pcm status`` and (next) MQTT, Home Assistant,
Domoticz and Prometheus all show the same few numbers per meter: the display reading, what it
counted since logging began, today and yesterday by this time, and the live rate. The logger
keeps them here, from the store once (at start-up, at local midnight, and when an anchor, a
constant or a meter's settings change) and from then on from each record's pulses, so no
consumer reads the store per record.

Exact to the pulse: a meter's state is integers (pulses since its last anchor, today's pulses
per constant in force, yesterday's cumulative pulses per 10-second slot), and units are derived
from them with the store's own arithmetic (:meth:`Constants.units`, :meth:`Store.reading_at`)
on the same integers, so the values equal the store's to the last bit. Pulses land in slots
exactly as the store files them (a count at ``t`` in the slot that starts at ``floor(t / SLOT)``;
a span ``[a, b)`` holds the slots that start in it).

The values of one meter form a frozen :class:`MeterValues`; the state behind them is only ever
touched on the logger's thread.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

from ..calendar import SLOT, Calendar
from ..meters import Meter
from ..store import Anchor, Constants, Store

__all__ = ["MeterValues", "Snapshot"]

_DAY: Final = timedelta(days=1)
#: How far back a refresh looks for a meter's last pulse.
QUIET_LOOKBACK: Final = 2 * 86400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterValues:
    """One meter's live values; units are the meter's (kWh, m³, ...), rounded to 6 places."""

    key: str
    #: The display reading: the last anchor plus everything counted since, to the end of time
    #: (after the clock steps back, pulses stamped before the step lie "ahead" of now, and
    #: count).
    reading: float
    #: All pulses counted.
    pulses: int
    #: What was counted since logging began, in units (the store's arithmetic: each pulse in the
    #: constant in force when it was counted). Only grows: unlike the reading, a correction or a
    #: replacement does not move it, since a new constant holds from its anchor on. (A meter
    #: with no reading set has one constant throughout: changing it re-values all it counted.)
    #: What a total that must never go back is given: the energy dashboard, a Prometheus counter.
    counted: float
    #: Counted since local midnight.
    today: float
    #: Counted yesterday from local midnight to the clock time it is now (None: no data then,
    #: as logging began later: the first day has no yesterday to compare with).
    yesterday_same_time: float | None
    #: Live power or flow in the meter's rate unit (None: not known yet, or no logger here).
    rate: float | None
    #: When logging of the meter began (:meth:`Store.since`; None: nothing logged yet).
    since: float | None = None
    #: The slot of the last pulse within the last two days (None: none in that time): a quiet
    #: gas or water meter shows "no flow since 08:01", not "unavailable".
    last_pulse_at: float | None = None


def _slot(t: float) -> int:
    """The slot a count stamped at ``t`` is filed in."""
    return math.floor(t / SLOT)


def _first_slot(t: float) -> int:
    """The first slot that starts at or after ``t``: a span from ``t`` holds it and later."""
    return math.ceil(t / SLOT)


class _Meter:
    """The integers one meter's values are derived from (logger thread only)."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.constants = Constants(((-math.inf, meter.pulses_per_unit),))
        self.anchor: Anchor | None = None
        #: All pulses per part between the constant's changes: where each part's slots begin
        #: (the first at -inf) and its pulses.
        self.part_slots: list[float] = [-math.inf]
        self.part_pulses: list[int] = [0]
        #: Pulses in slots from the last anchor on (all pulses without an anchor).
        self.since_anchor = 0
        self.pulses = 0
        #: Today's pulses per part between the constant's changes: (first slot, pulses); None:
        #: not read (see ``Snapshot.refresh``).
        self.today: list[list[int]] | None = []
        #: Yesterday's pulses per slot, and (built when asked, after a change) its slots in
        #: order with the cumulative pulses up to and including each.
        self.yesterday: dict[int, int] | None = {}
        self.y_slots: list[int] = []
        self.y_cumulative: list[int] = []
        self.y_dirty = False
        self.since: float | None = None
        self.last_pulse_at: float | None = None


class Snapshot:
    """Live values of every meter: refreshed from the store, then kept up from each record.

    ``rate``: the live rate of a meter at a time (the logger's estimators), None without one.
    """

    def __init__(
        self,
        store: Store,
        *,
        calendar: Calendar,
        rate: Callable[[Meter, float], float | None] | None = None,
    ) -> None:
        self.store = store
        self.calendar = calendar
        self._rate = rate
        self._meters: dict[str, _Meter] = {}
        #: The meters held (as last refreshed).
        self.meters: tuple[Meter, ...] = ()
        self._day: date | None = None
        self._day_start = -math.inf
        self._day_end = -math.inf
        #: Refreshes from the store so far (tests and benchmarks count them).
        self.refreshes = 0

    # -- from the store

    def refresh(
        self, meters: Iterable[Meter], now: float, *, follow: bool = True, days: bool = True
    ) -> None:
        """Read every meter's state from the store, for the local day of ``now``.

        ``follow``: the values will be kept up from records (the logger), so yesterday is read
        slot by slot, to answer "yesterday by this time" at any later moment without the store.
        Without it (one answer, ``s0pcm serve``), that is one query at the moment asked.
        ``days=False`` (health: reading, pulses and rate only, with ``follow=False``): today,
        yesterday and the last pulse are not read (NaN, None, None)."""
        day = self.calendar.local_date(now)
        self._day = day
        self._day_start = float(self.calendar.day_start(day))
        self._day_end = float(self.calendar.day_start(day + _DAY))
        y0 = float(self.calendar.day_start(day - _DAY))
        self.meters = tuple(meters)
        self._meters = {}
        store = self.store
        for meter in self.meters:
            m = _Meter(meter)
            anchors = store.anchors(meter.key)
            m.constants = Constants.of(anchors, meter.pulses_per_unit)
            m.anchor = anchors[-1] if anchors else None
            m.pulses = store.pulses(meter.key, -math.inf, math.inf)
            m.since = store.since(meter.key)
            # Only where it is shown (not for health or /metrics).
            m.last_pulse_at = store.last_pulse(meter.key, now - QUIET_LOOKBACK) if days else None
            start = -math.inf if m.anchor is None else m.anchor.at
            m.since_anchor = store.pulses(meter.key, start, math.inf)
            cuts = [t for t, _ in m.constants.steps[1:]]
            m.part_slots = [-math.inf, *(float(_first_slot(t)) for t in cuts)]
            m.part_pulses = (
                [
                    store.pulses(meter.key, a, b)
                    for a, b in zip([-math.inf, *cuts], [*cuts, math.inf], strict=True)
                ]
                if cuts
                else [m.pulses]
            )
            edges = self._today_edges(m.constants)
            m.today = (
                [
                    [_first_slot(a), store.pulses(meter.key, a, b)]
                    for a, b in zip(edges, [*edges[1:], math.inf], strict=True)
                ]
                if days
                else None
            )
            if follow:
                m.yesterday = {
                    _slot(at): pulses
                    for at, pulses in store.intervals(meter.key, y0, self._day_start)
                }
                m.y_dirty = True
            else:
                m.yesterday = None
            self._meters[meter.key] = m
        self.refreshes += 1

    def _today_edges(self, constants: Constants) -> list[float]:
        """Where today's parts begin: midnight, and each change of constant after it."""
        return [self._day_start, *(t for t, _ in constants.steps[1:] if t > self._day_start)]

    # -- from records

    def add(self, key: str, at: float, pulses: int) -> None:
        """``pulses`` counted on meter ``key`` at ``at`` (as the store was given them)."""
        m = self._meters.get(key)
        if m is None:
            return
        if m.since is None or at < m.since:
            m.since = math.floor(at / 3600) * 3600.0  # as the store will say (its first hour)
        if not pulses:
            return
        slot = _slot(at)
        m.last_pulse_at = max(m.last_pulse_at or -math.inf, slot * SLOT)
        m.pulses += pulses
        m.part_pulses[bisect.bisect_right(m.part_slots, slot) - 1] += pulses
        if m.anchor is None or slot >= _first_slot(m.anchor.at):
            m.since_anchor += pulses
        if slot >= _first_slot(self._day_start):
            for part in reversed(m.today or ()):
                if slot >= part[0]:
                    part[1] += pulses
                    break
        else:
            self._add_yesterday(m, slot, pulses)

    def _add_yesterday(self, m: _Meter, slot: int, pulses: int) -> None:
        """A late count that falls in yesterday (a journal replay, a clock put right)."""
        assert self._day is not None
        y0 = _first_slot(float(self.calendar.day_start(self._day - _DAY)))
        if not y0 <= slot < _first_slot(self._day_start):
            return
        if m.yesterday is None:
            return  # not followed (one answer): the store has it
        m.yesterday[slot] = m.yesterday.get(slot, 0) + pulses
        m.y_dirty = True  # a day of late records costs one rebuild, at the next look

    # -- the values

    def stale(self, now: float) -> bool:
        """Whether ``now`` lies in another local day than the one held (midnight passed, or
        the clock stepped back across it): :meth:`refresh` first."""
        return not self._day_start <= now < self._day_end

    def values(self, key: str, now: float) -> MeterValues:
        """Meter ``key``'s values at ``now`` (KeyError: not a meter held here)."""
        m = self._meters[key]
        meter = m.meter
        if m.anchor is None:
            reading = m.since_anchor / meter.pulses_per_unit
        else:
            reading = m.anchor.reading + m.since_anchor / m.anchor.pulses_per_unit
        rate = None if self._rate is None or not meter.enabled else self._rate(meter, now)
        return MeterValues(
            key=key,
            reading=round(reading, 6),
            pulses=m.pulses,
            counted=round(self._counted_units(m), 6),
            today=math.nan if m.today is None else round(self._today_units(m), 6),
            yesterday_same_time=None
            if m.today is None or m.since is None or m.since >= self._yesterday_span(now)[1]
            else round(self._yesterday_units(m, now), 6),
            rate=None if rate is None or not math.isfinite(rate) else round(rate, 3),
            since=m.since,
            last_pulse_at=m.last_pulse_at,
        )

    def _counted_units(self, m: _Meter) -> float:
        """``(-inf, +inf)`` in units, with the store's arithmetic on the constant's parts."""

        def pulses(a: float, b: float) -> int:
            lo = -math.inf if a == -math.inf else _first_slot(a)
            hi = math.inf if b == math.inf else _first_slot(b)
            parts = zip(m.part_slots, m.part_pulses, strict=True)
            return sum(p for first, p in parts if lo <= first < hi)

        return m.constants.units_of(pulses, -math.inf, math.inf, m.pulses)

    def _today_units(self, m: _Meter) -> float:
        """``[midnight, +inf)`` in units, with the store's arithmetic on today's parts."""
        today = m.today or []

        def pulses(a: float, b: float) -> int:
            lo, hi = _first_slot(a), math.inf if b == math.inf else _first_slot(b)
            return sum(p for first, p in today if lo <= first < hi)

        return m.constants.units_of(pulses, self._day_start, math.inf, sum(p for _, p in today))

    def _yesterday_units(self, m: _Meter, now: float) -> float:
        """Yesterday from local midnight to the clock time it is now, in units."""
        assert self._day is not None
        y0, y1 = self._yesterday_span(now)

        def pulses(a: float, b: float) -> int:
            if m.yesterday is None:  # not followed: the store answers, once
                return self.store.pulses(m.meter.key, a, b)
            return self._y_before(m, b) - self._y_before(m, a)

        return m.constants.units_of(pulses, y0, y1, None)

    def _y_before(self, m: _Meter, t: float) -> int:
        """Yesterday's pulses in the slots that start before ``t``."""
        assert m.yesterday is not None
        if m.y_dirty:
            m.y_slots = sorted(m.yesterday)
            m.y_cumulative = list(itertools.accumulate(m.yesterday[k] for k in m.y_slots))
            m.y_dirty = False
        i = bisect.bisect_left(m.y_slots, _first_slot(t))
        return m.y_cumulative[i - 1] if i else 0

    def _yesterday_span(self, now: float) -> tuple[float, float]:
        """Yesterday from local midnight to the clock time it is now (see the dashboard)."""
        assert self._day is not None
        tz = self.calendar.tz
        yesterday = self._day - _DAY
        begin = float(self.calendar.day_start(yesterday))
        local = datetime.fromtimestamp(now, tz)
        same = datetime.combine(yesterday, local.time().replace(tzinfo=None), tzinfo=tz)
        return begin, min(max(same.timestamp(), begin), self._day_start)
