"""The SQL store's reads: committed rows plus what is still buffered, in one answer.

Each query adds the write buffer (:class:`.pending.Pending`) to what the database holds, so a
reading taken just now shows before the next commit; one that runs several statements runs them in
one read snapshot, so it sees a single state of the database.

Table and column names put into SQL text come from this module's constants, never from a caller;
values are always bound parameters (hence the ``noqa: S608`` on those lines).
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..calendar import SLOT, SLOTS_PER_HOUR, Resolution, day_key, month_key
from ..events import DeviceEvent, EventKind
from . import codec
from .base import Anchor, AnchorKind
from .sqlbase import LAST_HOUR, Row, SqlBase

__all__ = ["SqlQueries"]

_H = SLOTS_PER_HOUR
#: Sort position of buffered events among committed ones with the same time: after all of them.
_BUFFERED = 2**62
#: A slot number beyond any time stored (about 10**8 years), for infinite range ends.
_FAR = 2**48


def _slot_at(t: float) -> int:
    """The first slot that starts at or after ``t`` (infinite times clamped far out)."""
    if math.isinf(t):
        return _FAR if t > 0 else -_FAR
    return math.ceil(t / SLOT)


@dataclass(slots=True)
class _Hour:
    """One hour of one meter as a query sees it: committed and buffered data added up."""

    pulses: int
    #: The slot counts; None when not loaded or dropped by retention.
    counts: list[int] | None

    def part(self, first: int, end: int) -> int:
        """Pulses in slots ``[first, end)`` of the hour."""
        if first == 0 and end == _H:
            return self.pulses
        if self.counts is None:
            # Detail dropped by retention: share the hour out evenly (the best estimate left).
            return self.pulses * end // _H - self.pulses * first // _H
        return sum(self.counts[first:end])


class SqlQueries(SqlBase):
    """The reads of a SQL :class:`Store`: state, meters, pulses, series, anchors, events."""

    def state(self, module: str) -> dict[str, Any] | None:
        with self._guard("state"):
            doc = self._pending.states.get(module)
            if doc is None:
                rows = self._rows("SELECT document FROM state WHERE module = ?", (module,))
                doc = rows[0][0] if rows else None
        if doc is None:
            return None
        value: dict[str, Any] = json.loads(doc)
        return value

    def meters(self) -> list[str]:
        with self._guard("meters"), self._snapshot():
            keys = {row[0] for row in self._rows("SELECT key FROM meter")}
            keys.update(row[0] for row in self._rows("SELECT DISTINCT meter FROM anchor"))
        keys.update(self._pending.slots)
        keys.update(a.meter for a in self._pending.anchors)
        return sorted(keys)

    def since(self, meter: str) -> float | None:
        hours = list(self._pending.slots.get(meter, ()))
        with self._guard("since"):
            mid = self._id(meter)
            if mid is not None:
                rows = self._rows("SELECT MIN(hour) FROM hour_slots WHERE meter = ?", (mid,))
                if rows and rows[0][0] is not None:
                    hours.append(int(rows[0][0]))
        return min(hours) * 3600.0 if hours else None

    def logged_hours(self, meter: str, start: float, end: float) -> dict[float, int]:
        with self._guard("logged_hours"), self._snapshot():
            hours = self._hours(meter, math.floor(start / 3600), math.ceil(end / 3600), slots=False)
        return {hour * 3600.0: data.pulses for hour, data in hours.items()}

    def pulses(self, meter: str, start: float, end: float) -> int:
        if not end > start:
            return 0
        with self._guard("pulses"), self._snapshot():
            high = self._cumulative(meter, None if end == math.inf else _slot_at(end))
            if start == -math.inf:
                return high
            return high - self._cumulative(meter, _slot_at(start))

    def _cumulative(self, meter: str, slot: int | None) -> int:
        """Pulses of ``meter`` in the slots before ``slot`` (None: all of them)."""
        pending = self._pending
        buffered = pending.total(meter) if slot is None else pending.before(meter, slot)
        mid = self._id(meter)
        if mid is None:
            return buffered
        if slot is None:
            rows = self._rows(LAST_HOUR, (mid,))
            return buffered + (rows[0][1] if rows else 0)
        hour, index = divmod(slot, _H)
        rows = self._rows(
            "SELECT hour, pulses, total, slots FROM hour_slots WHERE meter = ? AND hour <= ? "
            "ORDER BY hour DESC LIMIT 1",
            (mid, hour),
        )
        if not rows:
            return buffered
        found, pulses, total, blob = rows[0]
        if found < hour:
            return buffered + int(total)
        counts = None if blob is None or not index else codec.decode(blob)
        return buffered + int(total) - int(pulses) + _Hour(pulses, counts).part(0, index)

    def _hours(self, meter: str, first: int, end: int, *, slots: bool) -> dict[int, _Hour]:
        """Hours ``[first, end)`` of ``meter`` that have data, committed plus buffered.

        ``slots``: load the slot counts (else only the sums, which is all an aligned bucket needs).
        """
        found: dict[int, _Hour] = {}
        mid = self._id(meter)
        if mid is not None:
            column = "slots" if slots else "NULL"
            for hour, pulses, blob in self._rows(
                f"SELECT hour, pulses, {column} FROM hour_slots "  # noqa: S608
                "WHERE meter = ? AND hour >= ? AND hour < ?",
                (mid, first, end),
            ):
                found[hour] = _Hour(int(pulses), codec.decode(blob) if blob is not None else None)
        buffered = self._pending.slots.get(meter, {})
        sums = self._pending.sums.get(meter, {})
        for hour, counts in buffered.items():
            if not first <= hour < end:
                continue
            have = found.get(hour)
            if have is None:
                found[hour] = _Hour(sums[hour], list(counts) if slots else None)
            else:
                have.pulses += sums[hour]
                if have.counts is not None:
                    have.counts = [a + b for a, b in zip(have.counts, counts, strict=True)]
        return found

    def series(
        self, meter: str, start: float, end: float, resolution: Resolution
    ) -> list[tuple[float, int]]:
        resolution = Resolution(resolution)
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"a series needs a finite range, not [{start}, {end})")
        bounds = self.calendar.buckets(resolution, start, end)
        if not bounds:
            return []
        with self._guard("series"), self._snapshot():
            if resolution is Resolution.INTERVAL:
                values = self._slot_counts(meter, bounds[0] // SLOT, bounds[-1] // SLOT)
            elif resolution is Resolution.HOUR:
                values = self._range_sums(meter, [-(-b // SLOT) for b in bounds])
            elif resolution in (Resolution.DAY, Resolution.WEEK):
                values = self._rollup_sums(meter, "day_total", "day", bounds)
            else:
                values = self._rollup_sums(meter, "month_total", "month", bounds)
        return [(float(b), v) for b, v in zip(bounds, values, strict=False)]

    def _slot_counts(self, meter: str, first: int, end: int) -> list[int]:
        """Counts of slots ``[first, end)``, zeros included."""
        out = [0] * (end - first)
        for hour, data in self._hours(meter, first // _H, -(-end // _H), slots=True).items():
            if data.counts is None:
                continue
            base = hour * _H
            lo, hi = max(first, base), min(end, base + _H)
            out[lo - first : hi - first] = data.counts[lo - base : hi - base]
        return out

    def _range_sums(self, meter: str, bounds: Sequence[int]) -> list[int]:
        """Pulses in slots ``[bounds[i], bounds[i + 1])`` for each ``i``.

        Hour-aligned buckets (UTC hours, or local hours in a whole-hour zone) read hour sums only;
        a bucket edge inside an hour (a half-hour zone) reads that hour's slots.
        """
        sums = [0] * (len(bounds) - 1)
        aligned = all(b % _H == 0 for b in bounds)
        hours = self._hours(meter, bounds[0] // _H, -(-bounds[-1] // _H), slots=not aligned)
        for hour, data in hours.items():
            lo, hi = hour * _H, hour * _H + _H
            i = max(0, bisect.bisect_right(bounds, lo) - 1)
            while i < len(sums) and bounds[i] < hi:
                first, end = max(bounds[i], lo) - lo, min(bounds[i + 1], hi) - lo
                if end > first:
                    sums[i] += data.part(first, end)
                i += 1
        return sums

    def _rollup_sums(self, meter: str, table: str, column: str, bounds: Sequence[int]) -> list[int]:
        """Rollup rows summed into the buckets that start at ``bounds`` (day or month starts)."""
        key = day_key if column == "day" else month_key
        keys = [key(self.calendar.local_date(b)) for b in bounds]
        sums = [0] * (len(bounds) - 1)
        rows: Iterable[Row] = []
        mid = self._id(meter)
        if mid is not None:
            rows = self._rows(
                f"SELECT {column}, pulses FROM {table} WHERE meter = ? AND {column} >= ? "  # noqa: S608
                f"AND {column} < ?",
                (mid, keys[0], keys[-1]),
            )
        deltas = self._pending.days if column == "day" else self._pending.months
        for k, pulses in [*rows, *deltas.get(meter, {}).items()]:
            if keys[0] <= k < keys[-1]:
                sums[bisect.bisect_right(keys, k) - 1] += int(pulses)
        return sums

    def intervals(self, meter: str, start: float, end: float) -> list[tuple[float, int]]:
        first, last = _slot_at(start), _slot_at(end)
        if last <= first:
            return []
        out = []
        with self._guard("intervals"), self._snapshot():
            hours = self._hours(meter, first // _H, -(-last // _H), slots=True)
        for hour in sorted(hours):
            counts = hours[hour].counts
            if counts is None:
                continue
            base = hour * _H
            for j in range(max(first - base, 0), min(last - base, _H)):
                if counts[j]:
                    out.append((float((base + j) * SLOT), counts[j]))
        return out

    def last_pulse(self, meter: str, start: float) -> float | None:
        first = _slot_at(start)
        with self._guard("last_pulse"), self._snapshot():
            # The hours' sums first (no slot detail), then the slots of the newest with pulses.
            sums = self._hours(meter, first // _H, _FAR // _H, slots=False)
            newest = max((h for h, data in sums.items() if data.pulses), default=None)
            if newest is None:
                return None
            counts = self._hours(meter, newest, newest + 1, slots=True)[newest].counts
        base = newest * _H
        if counts is None:  # detail dropped by retention: the hour's last slot, at the latest
            return float((base + _H - 1) * SLOT)
        for j in range(_H - 1, -1, -1):
            if base + j < first:
                break
            if counts[j]:
                return float((base + j) * SLOT)
        return None

    def anchors(self, meter: str) -> list[Anchor]:
        with self._guard("anchors"):
            rows = self._rows(
                "SELECT at, kind, reading, pulses_per_unit FROM anchor WHERE meter = ? ORDER BY at",
                (meter,),
            )
            found = [
                Anchor(
                    meter=meter, at=at, reading=reading, pulses_per_unit=ppu, kind=AnchorKind(kind)
                )
                for at, kind, reading, ppu in rows
            ]
            found += [a for a in self._pending.anchors if a.meter == meter and a not in found]
            found = [a for a in found if a not in self._pending.removed]
        found.sort(key=lambda a: a.at)
        return found

    def anchor_mark(self) -> tuple[object, ...]:
        with self._guard("anchors"):
            rows = self._rows(
                "SELECT count(*), sum(at), sum(reading), sum(pulses_per_unit) FROM anchor"
            )
        return (*rows[0], len(self._pending.anchors), len(self._pending.removed))

    def events(
        self,
        start: float = -math.inf,
        end: float = math.inf,
        *,
        module: str | None = None,
        meter: str | None = None,
        kinds: Iterable[EventKind] | None = None,
        limit: int = 1000,
    ) -> list[DeviceEvent]:
        if limit <= 0:
            return []
        wanted = None if kinds is None else {EventKind(k) for k in kinds}
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if start > -math.inf:
            where.append("at >= ?")
            params.append(start)
        if end < math.inf:
            where.append("at < ?")
            params.append(end)
        for column, value in (("module", module), ("meter", meter)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if wanted is not None:
            if not wanted:
                return []
            where.append(f"kind IN ({', '.join('?' * len(wanted))})")
            params.extend(str(kind) for kind in sorted(wanted))
        with self._guard("events"):
            rows = self._rows(
                "SELECT id, at, kind, module, meter, value, detail FROM event "  # noqa: S608
                f"WHERE {' AND '.join(where)} ORDER BY at DESC, id DESC LIMIT ?",
                [*params, limit],
            )
            pending = list(self._pending.events)
        # (at, order, event): buffered events come after every committed one.
        found = [
            (
                at,
                i,
                DeviceEvent(
                    at=at, kind=EventKind(kind), module=mod, meter=met, value=value, detail=detail
                ),
            )
            for i, at, kind, mod, met, value, detail in rows
        ]
        for n, e in enumerate(pending):
            if (
                start <= e.at < end
                and (module is None or e.module == module)
                and (meter is None or e.meter == meter)
                and (wanted is None or e.kind in wanted)
            ):
                found.append((e.at, _BUFFERED + n, e))
        found.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [e for _, _, e in found[:limit]]
