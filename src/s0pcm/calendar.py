"""The calendar of the history: 10-second slots, the resolutions asked for, and local-time
buckets (which local day and month a slot belongs to, and where buckets start).

Raw history is kept per UTC hour (UTC never skips or repeats an hour); people ask in local time.
A slot belongs to the local day (and month) that contains the slot's *start*. Days and months are
keyed by readable integers, ``YYYYMMDD`` and ``YYYYMM``, so the rollup tables read well in the
``sqlite3`` shell and sort in time order; their start instants come from the time zone, which is
what makes a spring-forward day 23 hours long and an autumn day 25.

Everything here is pure and cached: the same instants and keys come up over and over.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

__all__ = ["SLOT", "SLOTS_PER_HOUR", "Calendar", "Resolution", "Segment", "has_data"]

#: Seconds per slot of the raw history: the module prints a record every 10 s.
SLOT: Final = 10
#: Slots in one UTC hour.
SLOTS_PER_HOUR: Final = 3600 // SLOT


class Resolution(StrEnum):
    INTERVAL = "interval"  # 10 s slots
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"  # ISO weeks, Monday 00:00 local time
    MONTH = "month"
    YEAR = "year"


_DAY: Final = timedelta(days=1)

#: ``(first slot, end slot, day key, month key)``: a run of slots of one UTC hour in one local day.
Segment = tuple[int, int, int, int]


def has_data(bounds: Sequence[float], *, since: float | None, now: float) -> list[bool]:
    """Per bucket ``[bounds[i], bounds[i + 1])``: does it hold data? Not when it ends before
    logging began (``since``; None: nothing logged yet) or begins after ``now``. This is the
    one rule for "no data", which every view shows as such (never as zero)."""
    if since is None:
        return [False] * max(len(bounds) - 1, 0)
    return [bounds[i + 1] > since and bounds[i] < now for i in range(len(bounds) - 1)]


def day_key(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def key_day(key: int) -> date:
    return date(key // 10000, key // 100 % 100, key % 100)


def month_key(d: date) -> int:
    return d.year * 100 + d.month


def key_month(key: int) -> date:
    return date(key // 100, key % 100, 1)


def _next_month(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


class Calendar:
    """Local days, weeks, months and years of one time zone, as Unix times and keys."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.day_start = lru_cache(maxsize=65536)(self._day_start)
        self.hour_segments = lru_cache(maxsize=4096)(self._hour_segments)

    def local_date(self, t: float) -> date:
        return datetime.fromtimestamp(t, self.tz).date()

    def _day_start(self, d: date) -> int:
        """The first instant of local date ``d``.

        Midnight itself can fall in a DST gap (a few zones switch at 00:00); then the day starts
        at the transition, which is the earliest of the two readings of midnight that lies in ``d``.
        """
        naive = datetime(d.year, d.month, d.day)
        candidates = sorted(
            math.floor(naive.replace(tzinfo=self.tz, fold=fold).timestamp()) for fold in (0, 1)
        )
        for t in candidates:
            if self.local_date(t) == d:
                return t
        return candidates[-1]

    def _hour_segments(self, hour: int) -> tuple[Segment, ...]:
        """How UTC hour ``hour`` (hours since the epoch) splits over local days.

        One segment in every zone whose offset is whole hours; two when a local midnight falls
        inside the hour (India, Newfoundland, Nepal, ...).
        """
        begin = hour * 3600
        segments: list[Segment] = []
        first = 0
        while first < SLOTS_PER_HOUR:
            d = self.local_date(begin + first * SLOT)
            boundary = self.day_start(d + _DAY)
            end = min(SLOTS_PER_HOUR, max(first + 1, -((begin - boundary) // SLOT)))
            segments.append((first, end, day_key(d), month_key(d)))
            first = end
        return tuple(segments)

    # -- bucket starts ---------------------------------------------------------------------------

    def hour_floor(self, t: float) -> int:
        """Start of the local clock hour containing ``t`` (UTC hours in whole-hour zones)."""
        ti = math.floor(t)
        offset = datetime.fromtimestamp(ti, self.tz).utcoffset()
        seconds = int(offset.total_seconds()) if offset is not None else 0
        return ti - (ti + seconds) % 3600

    def buckets(self, resolution: Resolution, start: float, end: float) -> list[int]:
        """Starts of the buckets that overlap ``[start, end)``, followed by the end of the last.

        So bucket ``i`` is ``[result[i], result[i + 1])``; empty when the range is.
        """
        if not end > start:
            return []
        return list(self._starts(resolution, start, end))

    def _starts(self, resolution: Resolution, start: float, end: float) -> Iterator[int]:
        if resolution is Resolution.INTERVAL:
            first, last = math.floor(start / SLOT), math.ceil(end / SLOT)
            return (k * SLOT for k in range(first, last + 1))
        if resolution is Resolution.HOUR:
            return self._hour_starts(start, end)
        d = self.local_date(start)
        step: Callable[[date], date]
        if resolution is Resolution.DAY:
            step = _next_day
        elif resolution is Resolution.WEEK:
            d -= d.weekday() * _DAY
            step = _next_week
        elif resolution is Resolution.MONTH:
            d = d.replace(day=1)
            step = _next_month
        else:
            d = date(d.year, 1, 1)
            step = _next_year
        return self._date_starts(d, step, end)

    def _hour_starts(self, start: float, end: float) -> Iterator[int]:
        b = self.hour_floor(start)
        while True:
            yield b
            if b >= end:
                return
            following = self.hour_floor(b + 3600)
            b = following if following > b else b + 3600

    def _date_starts(self, d: date, step: Callable[[date], date], end: float) -> Iterator[int]:
        while True:
            b = self.day_start(d)
            yield b
            if b >= end:
                return
            d = step(d)


def _next_day(d: date) -> date:
    return d + _DAY


def _next_week(d: date) -> date:
    return d + 7 * _DAY


def _next_year(d: date) -> date:
    return date(d.year + 1, 1, 1)
