"""The live power and flow of the last hours: what ``/api/power`` and Live's graph show.

The logger estimates every meter's rate at each record (its live values); this keeps them, per
meter, for :data:`HOURS` hours, at the resolution they came (a record every 10 s), in two
arrays of doubles per meter (16 bytes a point: 6 hours of five meters is about 170 KB). It is a
listener of the live values like every other consumer, so nothing reads the store per record.

Before the first value kept (a logger just started, or none in this process: ``s0pcm serve``),
the rate is worked out from the store's 10-second slots, per five minutes (one slot holds too
few pulses to say a rate).
"""

from __future__ import annotations

import bisect
import math
import threading
from array import array
from typing import TYPE_CHECKING, Final

from ..meters import Meter
from ..store import Store

if TYPE_CHECKING:
    from ..logger.runner import Update

__all__ = ["HOURS", "PowerHistory", "from_store", "series"]

#: Hours of values kept, and the most a request may ask for.
HOURS: Final = 6
#: The store's rates are per this many seconds: five minutes, as a gas meter's pulse (10 L)
#: comes every minute or two at most, and per minute it would read 0, 600 L/h, 0...
STORE_STEP: Final = 300.0


class PowerHistory:
    """Each meter's ``(time, rate)`` of the last :data:`HOURS` hours (None rates: unknown)."""

    def __init__(self, *, hours: float = HOURS) -> None:
        self.span = hours * 3600.0
        self._times: dict[str, array[float]] = {}
        self._rates: dict[str, array[float]] = {}
        self._lock = threading.Lock()

    def on_update(self, update: Update) -> None:
        """The logger's listener: keep the rates of this record's meters."""
        with self._lock:
            for v in update.values:
                times = self._times.setdefault(v.key, array("d"))
                rates = self._rates.setdefault(v.key, array("d"))
                if times and update.at < times[-1]:  # the clock stepped back: start again
                    del times[:], rates[:]
                times.append(update.at)
                rates.append(math.nan if v.rate is None else v.rate)
                if times[0] < update.at - 1.5 * self.span:  # trimmed now and then, not per record
                    cut = bisect.bisect_left(times, update.at - self.span)
                    del times[:cut], rates[:cut]

    def points(self, key: str, start: float) -> list[tuple[float, float | None]]:
        """The values kept of ``key`` from ``start`` on."""
        with self._lock:
            times, rates = self._times.get(key), self._rates.get(key)
            if not times or rates is None:
                return []
            i = bisect.bisect_left(times, start)
            return [
                (t, None if math.isnan(r) else round(r, 3))
                for t, r in zip(times[i:], rates[i:], strict=True)
            ]


def from_store(
    store: Store, meter: Meter, start: float, end: float
) -> list[tuple[float, float | None]]:
    """The meter's rate per :data:`STORE_STEP` in ``[start, end)`` from its 10-second slots
    (steps before logging began are left out: no data, not zero)."""
    since = store.since(meter.key)
    if since is None:
        return []
    first = max(start, since)
    first = math.floor(first / STORE_STEP) * STORE_STEP
    per_step: dict[float, int] = {}
    for slot, pulses in store.intervals(meter.key, first, end):
        step = math.floor(slot / STORE_STEP) * STORE_STEP
        per_step[step] = per_step.get(step, 0) + pulses
    factor = meter.rate_factor() / STORE_STEP
    out: list[tuple[float, float | None]] = []
    t = first
    while t + STORE_STEP <= end:  # whole steps only: the running one is not over
        out.append((t + STORE_STEP / 2, round(per_step.get(t, 0) * factor, 3)))
        t += STORE_STEP
    return out


def series(
    history: PowerHistory | None, store: Store, meter: Meter, start: float, end: float
) -> list[tuple[float, float | None]]:
    """From the store per five minutes up to the first value kept, then the values kept."""
    kept = [] if history is None else history.points(meter.key, start)
    until = kept[0][0] if kept else end
    return [*from_store(store, meter, start, until), *kept]
