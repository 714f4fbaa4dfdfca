"""The store's logic, once, over any SQL database: buffering, hour rows, rollups, queries.

A backend (:mod:`.sqlite`, :mod:`.postgres`) connects and supplies a handful of primitives: run a
statement, run one for many rows, stream a big result, a write transaction, a read snapshot, its
column types. Everything else (what a commit writes, how a query adds buffered data to committed
data, the checks) lives here, written with ``?`` placeholders and SQL both databases speak, so the
two backends cannot drift apart.

Table and column names put into SQL text come from this module's constants, never from a caller;
values are always bound parameters (hence the ``noqa: S608`` on those lines).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import math
import threading
import time
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo

from ..calendar import SLOT, SLOTS_PER_HOUR, Calendar, Resolution, day_key, month_key
from ..errors import StoreError
from ..events import DeviceEvent, EventKind
from . import codec
from .base import Anchor, AnchorKind, Store
from .pending import Pending
from .schema import MIGRATIONS, TABLES, render
from .upkeep import compare_rollups, recount

__all__ = ["Row", "SqlStore", "tz_name"]

log = logging.getLogger(__name__)

Row = tuple[Any, ...]

_H = SLOTS_PER_HOUR
#: Sort position of buffered events among committed ones with the same time: after all of them.
_BUFFERED = 2**62
#: A slot number beyond any time stored (about 10**8 years), for infinite range ends.
_FAR = 2**48
_ALL_HOURS = "SELECT meter, hour, pulses, total, slots FROM hour_slots ORDER BY meter, hour"
_LAST_HOUR = "SELECT hour, total FROM hour_slots WHERE meter = ? ORDER BY hour DESC LIMIT 1"


def _slot_at(t: float) -> int:
    """The first slot that starts at or after ``t`` (infinite times clamped far out)."""
    if math.isinf(t):
        return _FAR if t > 0 else -_FAR
    return math.ceil(t / SLOT)


def tz_name(tz: ZoneInfo) -> str:
    return tz.key or str(tz)


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


#: Events kept at most in the write buffer while commits fail.
MAX_PENDING_EVENTS: Final = 20_000


class SqlStore(Store):
    """A :class:`Store` over a SQL database; subclasses connect and run statements."""

    #: Column types and clauses substituted into the shared DDL (see :mod:`.schema`).
    dialect: ClassVar[Mapping[str, str]]
    #: The driver's exception base classes, reported as :class:`StoreError`.
    driver_errors: ClassVar[tuple[type[Exception], ...]]

    def __init__(self, *, tz: ZoneInfo, database: str, readonly: bool = False) -> None:
        super().__init__(tz=tz)
        #: Path or URL for messages (StoreError hides a password in it).
        self.database = database
        self.readonly = readonly
        self._overlay = False
        self.calendar = Calendar(tz)
        self._pending = Pending(self.calendar)
        # One connection, used from whichever thread calls (the daemon's loop, an API worker).
        self._lock = threading.RLock()
        self._ids: dict[str, int] = {}

    # -- what a backend provides ---------------------------------------------------------------

    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement (``?`` placeholders); its rows, if any."""

    @abstractmethod
    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    @abstractmethod
    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each parameter row."""

    @abstractmethod
    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        """The rows of a big result, a batch at a time (inside :meth:`_snapshot`)."""

    @abstractmethod
    def _write(self) -> AbstractContextManager[None]:
        """A write transaction; writers are serialised, readers are not blocked."""

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[None]:
        """A read transaction, so a query's statements see one state of the database."""

    @abstractmethod
    def _has_table(self, name: str) -> bool: ...

    @abstractmethod
    def _disconnect(self) -> None: ...

    def _integrity(self) -> list[str]:
        """The database engine's own integrity check, if it has one."""
        return []

    # -- opening ---------------------------------------------------------------------------------

    def _open(self) -> None:
        """Bring the schema up to date (or check it, read-only) and the rollups to ``tz``."""
        with self._guard("open"):
            self._migrate()
            stored = self._rows("SELECT value FROM meta WHERE key = 'tz'")
            want = tz_name(self.tz)
            if stored and stored[0][0] == want:
                return
            if self.readonly:
                if stored:
                    raise StoreError(
                        self.database,
                        f"its rollups are in time zone {stored[0][0]}, not {want}: open it with "
                        "that time zone, or open it writable once to rebuild them",
                    )
                return
            if stored:
                log.warning(
                    "%s: time zone changed from %s to %s; rebuilding the day and month rollups",
                    self.database,
                    stored[0][0],
                    want,
                )
            self.rebuild_rollups()

    def _migrate(self) -> None:
        known = [name for name, _ in MIGRATIONS]
        applied = self._applied()
        unknown = sorted(set(applied) - set(known))
        if unknown:
            raise StoreError(
                self.database,
                f"written by a newer s0pcm (unknown migrations: {', '.join(unknown)})",
            )
        if len(applied) == len(known):
            return
        if self.readonly:
            raise StoreError(self.database, "not initialised (open it writable once)")
        with self._write():
            self._run(
                "CREATE TABLE IF NOT EXISTS migrations "
                f"(name TEXT PRIMARY KEY, applied_at {self.dialect['REAL']} NOT NULL)"
            )
            done = {row[0] for row in self._rows("SELECT name FROM migrations")}
            for name, statements in MIGRATIONS:
                if name in done:
                    continue
                log.info("%s: applying migration %s", self.database, name)
                for statement in statements:
                    self._run(render(statement, self.dialect))
                self._run(
                    "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                    (name, time.time()),
                )

    def _applied(self) -> list[str]:
        if not self._has_table("migrations"):
            return []
        return [row[0] for row in self._rows("SELECT name FROM migrations")]

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Hold the lock; report driver errors and damaged blobs as StoreError."""
        with self._lock:
            try:
                yield
            except codec.CodecError as exc:
                raise StoreError(self.database, f"{action}: damaged slot data: {exc}") from exc
            except self.driver_errors as exc:
                raise StoreError(self.database, f"{action}: {self._explain(exc)}") from exc

    def _explain(self, exc: Exception) -> str:
        """The driver's error in words a user can act on (a backend may look closer)."""
        return str(exc)

    def _writable(self, *, buffered: bool = False) -> None:
        """Refuse a write to a read-only store; ``buffered``: a write to the in-memory buffer,
        which a read-only store takes after :meth:`overlay`."""
        if self.readonly and not (buffered and self._overlay):
            raise StoreError(self.database, "opened read-only")

    def overlay(self) -> None:
        """Let a read-only store take writes into memory only: they show in its queries and
        are never committed (``status`` replays the journal this way, writing nothing)."""
        self._overlay = True

    # -- writing (buffered) ----------------------------------------------------------------------

    def add(self, meter: str, at: float, pulses: int) -> None:
        if pulses < 0:
            raise ValueError(f"pulses cannot be negative: {pulses}")
        if not math.isfinite(at):
            raise ValueError(f"not a time: {at}")
        with self._lock:
            self._writable(buffered=True)
            self._pending.add(meter, math.floor(at / SLOT), int(pulses))

    def add_hour(self, meter: str, hour_start: float, counts: Sequence[int]) -> None:
        if hour_start % 3600 or not math.isfinite(hour_start):
            raise ValueError(f"not the start of a UTC hour: {hour_start}")
        if len(counts) > _H:
            raise ValueError(f"an hour has {_H} slots, got {len(counts)} counts")
        if counts and min(counts) < 0:
            raise ValueError("pulses cannot be negative")
        with self._lock:
            self._writable(buffered=True)
            self._pending.add_hour(meter, int(hour_start) // 3600, counts)

    def add_event(self, event: DeviceEvent) -> None:
        with self._lock:
            self._writable(buffered=True)
            events = self._pending.events
            if len(events) >= MAX_PENDING_EVENTS:
                # Commits fail (a full disk) and a noisy port fills the buffer: the pulses are
                # kept, the oldest events go (the memory of a Pi is bounded too).
                del events[: MAX_PENDING_EVENTS // 10]
            events.append(event)

    def add_anchor(self, anchor: Anchor) -> None:
        with self._lock:
            self._writable(buffered=True)
            self._pending.add_anchor(anchor)

    def set_state(self, module: str, state: Mapping[str, Any]) -> None:
        with self._lock:
            self._writable(buffered=True)
            self._pending.set_state(module, state)

    def commit(self) -> None:
        with self._guard("commit"):
            pending = self._pending
            if not pending:
                return
            self._writable()
            new_ids: dict[str, int] = {}
            with self._write():
                self._flush(pending, new_ids)
            # Only now: a failed transaction must leave neither ids nor a lost buffer behind.
            self._ids.update(new_ids)
            self._pending = Pending(self.calendar)

    def _flush(self, pending: Pending, new_ids: dict[str, int]) -> None:
        ids = self._assign_ids(sorted(pending.slots), new_ids)
        for meter, hours in pending.slots.items():
            self._write_hours(ids[meter], hours, pending.sums[meter])
        for table, column, deltas in (
            ("day_total", "day", pending.days),
            ("month_total", "month", pending.months),
        ):
            self._many(
                f"INSERT INTO {table} (meter, {column}, pulses) VALUES (?, ?, ?) "  # noqa: S608
                f"ON CONFLICT (meter, {column}) DO UPDATE SET pulses = {table}.pulses + "
                "excluded.pulses",
                [(ids[m], key, n) for m, keyed in deltas.items() for key, n in keyed.items()],
            )
        if pending.events:
            (last,) = self._rows("SELECT COALESCE(MAX(id), 0) FROM event")[0]
            self._many(
                "INSERT INTO event (id, at, kind, module, meter, value, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (last + n, e.at, str(e.kind), e.module, e.meter, e.value, e.detail)
                    for n, e in enumerate(pending.events, 1)
                ],
            )
        self._many(
            "INSERT INTO anchor (meter, at, kind, reading, pulses_per_unit) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(a.meter, a.at, str(a.kind), a.reading, a.pulses_per_unit) for a in pending.anchors],
        )
        now = time.time()
        self._many(
            "INSERT INTO state (module, document, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (module) DO UPDATE SET document = excluded.document, "
            "updated_at = excluded.updated_at",
            [(module, doc, now) for module, doc in pending.states.items()],
        )

    def _assign_ids(self, meters: Sequence[str], new_ids: dict[str, int]) -> dict[str, int]:
        ids = {}
        missing = []
        for meter in meters:
            mid = self._id(meter)
            if mid is None:
                missing.append(meter)
            else:
                ids[meter] = mid
        if missing:
            (last,) = self._rows("SELECT COALESCE(MAX(id), 0) FROM meter")[0]
            fresh = {meter: last + n for n, meter in enumerate(missing, 1)}
            self._many(
                "INSERT INTO meter (id, key) VALUES (?, ?)", [(i, m) for m, i in fresh.items()]
            )
            new_ids.update(fresh)
            ids.update(fresh)
        return ids

    def _write_hours(
        self, mid: int, hours: Mapping[int, list[int]], sums: Mapping[int, int]
    ) -> None:
        """Merge buffered hours into the hour rows and keep the cumulative totals right.

        The usual commit appends hours after the last stored one (or adds to the last one) and
        costs one insert per hour. An hour before the last stored one (late data, a backfill into
        the past) also shifts the totals of every later hour.
        """
        last = self._rows(_LAST_HOUR, (mid,))
        last_hour, total = last[0] if last else (-1, 0)
        appended = []
        for hour in sorted(hours):
            counts, delta = hours[hour], sums[hour]
            if hour > last_hour:
                total += delta
                appended.append((mid, hour, delta, total, codec.encode(counts)))
                continue
            row = self._rows(
                "SELECT pulses, total, slots FROM hour_slots WHERE meter = ? AND hour = ?",
                (mid, hour),
            )
            if row:
                _, _, blob = row[0]
                if blob is not None:
                    blob = codec.encode(
                        [a + b for a, b in zip(codec.decode(blob), counts, strict=True)]
                    )
                self._run(
                    "UPDATE hour_slots SET pulses = pulses + ?, total = total + ?, slots = ? "
                    "WHERE meter = ? AND hour = ?",
                    (delta, delta, blob, mid, hour),
                )
            else:
                before = self._rows(
                    "SELECT total FROM hour_slots WHERE meter = ? AND hour < ? "
                    "ORDER BY hour DESC LIMIT 1",
                    (mid, hour),
                )
                base = before[0][0] if before else 0
                self._run(
                    "INSERT INTO hour_slots (meter, hour, pulses, total, slots) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (mid, hour, delta, base + delta, codec.encode(counts)),
                )
            if delta and hour < last_hour:
                self._run(
                    "UPDATE hour_slots SET total = total + ? WHERE meter = ? AND hour > ?",
                    (delta, mid, hour),
                )
            total += delta
        self._many(
            "INSERT INTO hour_slots (meter, hour, pulses, total, slots) VALUES (?, ?, ?, ?, ?)",
            appended,
        )

    # -- reading ---------------------------------------------------------------------------------

    def _id(self, meter: str) -> int | None:
        mid = self._ids.get(meter)
        if mid is None:
            rows = self._rows("SELECT id FROM meter WHERE key = ?", (meter,))
            if rows:
                mid = self._ids[meter] = int(rows[0][0])
        return mid

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
            rows = self._rows(_LAST_HOUR, (mid,))
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

    def anchors(self, meter: str) -> list[Anchor]:
        with self._guard("anchors"):
            rows = self._rows(
                "SELECT at, kind, reading, pulses_per_unit FROM anchor WHERE meter = ? ORDER BY at",
                (meter,),
            )
            found = [
                Anchor(meter, at, reading, ppu, AnchorKind(kind)) for at, kind, reading, ppu in rows
            ]
            found += [a for a in self._pending.anchors if a.meter == meter and a not in found]
        found.sort(key=lambda a: a.at)
        return found

    def anchor_mark(self) -> tuple[object, ...]:
        with self._guard("anchors"):
            rows = self._rows(
                "SELECT count(*), sum(at), sum(reading), sum(pulses_per_unit) FROM anchor"
            )
        return (*rows[0], len(self._pending.anchors))

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
            (at, i, DeviceEvent(at, EventKind(kind), mod, met, value, detail))
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

    # -- upkeep ----------------------------------------------------------------------------------

    def check(self) -> list[str]:
        with self._guard("check"):
            problems = self._integrity()
            with self._snapshot():
                names = {int(i): k for i, k in self._rows("SELECT id, key FROM meter")}
                counted = recount(self._stream(_ALL_HOURS), self.calendar, names)
                problems += counted.problems
                for kind, table, column, expected, unsure in (
                    ("day", "day_total", "day", counted.days, counted.unsure_days),
                    ("month", "month_total", "month", counted.months, counted.unsure_months),
                ):
                    stored = self._stream(
                        f"SELECT meter, {column}, pulses FROM {table} ORDER BY meter, {column}"  # noqa: S608
                    )
                    problems += compare_rollups(kind, stored, expected, unsure, names)
        return problems

    def rebuild_rollups(self) -> None:
        """Recompute the day and month rollups from the hour rows (after a time zone change,
        or to repair what :meth:`check` reported), and record the store's time zone."""
        with self._guard("rebuild rollups"):
            self._writable()
            with self._write():
                counted = recount(self._stream(_ALL_HOURS), self.calendar, {}, check=False)
                self._run("DELETE FROM day_total")
                self._run("DELETE FROM month_total")
                self._many(
                    "INSERT INTO day_total (meter, day, pulses) VALUES (?, ?, ?)",
                    [(m, k, n) for (m, k), n in sorted(counted.days.items())],
                )
                self._many(
                    "INSERT INTO month_total (meter, month, pulses) VALUES (?, ?, ?)",
                    [(m, k, n) for (m, k), n in sorted(counted.months.items())],
                )
                self._run(
                    "INSERT INTO meta (key, value) VALUES ('tz', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (tz_name(self.tz),),
                )

    def apply_retention(self, *, raw_days: int | None, now: float | None = None) -> int:
        """Drop the slot detail (the blobs) of hours that ended more than ``raw_days`` days
        before ``now``; hour sums, cumulative totals and rollups stay, so every consumption
        query still answers (sub-hour ranges in those hours are shared out evenly). Commits what
        is buffered first. Returns the slots dropped (360 per hour)."""
        if raw_days is None:
            return 0
        if raw_days < 0:
            raise ValueError(f"raw_days cannot be negative: {raw_days}")
        self._writable()
        cutoff = math.floor(((time.time() if now is None else now) - raw_days * 86400) / 3600)
        self.commit()
        with self._guard("retention"), self._write():
            rows = self._run(
                "UPDATE hour_slots SET slots = NULL WHERE hour < ? AND slots IS NOT NULL",
                (cutoff,),
            )
        return rows * _H

    def copy_to(self, target: SqlStore) -> None:
        """Copy every row (committed data) into ``target``, an empty store, in one snapshot."""
        with self._guard("copy"), self._snapshot(), target._guard("copy"), target._write():
            for table, columns in TABLES:
                target._run(f"DELETE FROM {table}")  # noqa: S608
                insert = (
                    f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608
                    f"VALUES ({', '.join('?' * len(columns))})"
                )
                batch: list[Row] = []
                for row in self._stream(f"SELECT {', '.join(columns)} FROM {table}"):  # noqa: S608
                    batch.append(row)
                    if len(batch) >= 2000:
                        target._many(insert, batch)
                        batch = []
                target._many(insert, batch)

    def close(self) -> None:
        with self._lock:
            try:
                if not self.readonly:
                    self.commit()
            finally:
                with contextlib.suppress(*self.driver_errors):
                    self._disconnect()
