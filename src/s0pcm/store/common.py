"""The SQL store, assembled: opening, buffered writes and commits, upkeep; over any SQL database.

A backend (:mod:`.sqlite`, :mod:`.postgres`) subclasses :class:`SqlStore` and supplies only the
primitives declared in :mod:`.sqlbase`; the reads live in :mod:`.queries`. What a commit writes,
how the schema is migrated and the checks are here, written with ``?`` placeholders and SQL both
databases speak, so the two backends cannot drift apart.

Table and column names put into SQL text come from this module's constants, never from a caller;
values are always bound parameters (hence the ``noqa: S608`` on those lines).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo

from ..calendar import SLOT, SLOTS_PER_HOUR
from ..errors import StoreError
from ..events import DeviceEvent
from . import codec
from .base import Anchor
from .pending import Pending
from .queries import SqlQueries
from .schema import MIGRATIONS, TABLES, render
from .sqlbase import LAST_HOUR, Row
from .upkeep import compare_rollups, recount

__all__ = ["Row", "SqlStore", "tz_name"]

log = logging.getLogger(__name__)

_ALL_HOURS = "SELECT meter, hour, pulses, total, slots FROM hour_slots ORDER BY meter, hour"


def tz_name(tz: ZoneInfo) -> str:
    return tz.key or str(tz)


#: Events kept at most in the write buffer while commits fail.
MAX_PENDING_EVENTS: Final = 20_000


class SqlStore(SqlQueries):
    """A :class:`Store` over a SQL database; subclasses connect and run statements."""

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
        if len(counts) > SLOTS_PER_HOUR:
            raise ValueError(f"an hour has {SLOTS_PER_HOUR} slots, got {len(counts)} counts")
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

    def remove_anchor(self, anchor: Anchor) -> None:
        with self._lock:
            self._writable(buffered=True)
            self._pending.remove_anchor(anchor)

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
            "DELETE FROM anchor WHERE meter = ? AND at = ? AND kind = ? AND reading = ? "
            "AND pulses_per_unit = ?",
            [(a.meter, a.at, str(a.kind), a.reading, a.pulses_per_unit) for a in pending.removed],
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
        last = self._rows(LAST_HOUR, (mid,))
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
        return rows * SLOTS_PER_HOUR

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
