"""History store: size on disk and query latency for ten years of five registers in SQLite.

Builds, through the store's bulk path (``add_hour``, a commit per month of data), ten years of a
household's five registers at full 10-second resolution: electricity import, solar export, gas,
water and a heat pump. Counts come from a simulation (appliances switching on and off, burner and
compressor cycles, showers, a solar day by season; energy accumulated into whole pulses as a real
meter's LED does), deterministic from a fixed seed. To keep the build fast, each hour is drawn from
a pool of simulated hours per register, month and hour of day; every blob is compressed on its own,
so that costs nothing in realism for the size.

Reports, in the same run:

* file size and bytes per register-interval, indexes included, against a naive table of one row
  per register-interval ``(meter, at, pulses, PRIMARY KEY (meter, at))`` filled with the same
  counts for a smaller sample (a week) and extrapolated per interval;
* latency p50/p95 (ms) of the dashboard's queries on a fresh read-only store: the reading at a
  random instant, hourly series of a random day, daily series of a random month, monthly series of
  a year, yearly series over the ten years, raw intervals of a random hour;
* the time of ``check()`` (every blob decoded) and of an online ``backup()``.

``--quick`` (or BENCH_QUICK=1): one year, fewer queries.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from s0pcm.calendar import Resolution
from s0pcm.store import Anchor
from s0pcm.store.sqlite import SqliteStore

SEED = 8237
TZ = ZoneInfo("Europe/Amsterdam")
START = datetime(2016, 1, 1, tzinfo=UTC)
FULL_YEARS, QUICK_YEARS = 10, 1
FULL_QUERIES, QUICK_QUERIES = 300, 60
NAIVE_DAYS = 7
SLOTS = 360
#: Simulated hours per register, month and hour of day.
VARIANTS = 6

# -- a household, simulated ----------------------------------------------------------------------


def _pulses(power: Sequence[float], per_unit_hour: float, rnd: random.Random) -> list[int]:
    """Pulses per 10 s slot for a power (or flow) per slot: ``per_unit_hour`` pulses for one unit
    sustained for an hour; the fraction carries over, as in the meter."""
    acc = rnd.random()
    per_slot = per_unit_hour / 360.0
    out = []
    for p in power:
        acc += p * per_slot
        n = int(acc)
        acc -= n
        out.append(n)
    return out


def _runs(
    power: list[float],
    rate: float,
    length: tuple[int, int],
    level: tuple[float, float],
    rnd: random.Random,
) -> None:
    """Add appliance runs: about ``rate`` an hour, each ``length`` slots at ``level``."""
    n = 0
    while rnd.random() < rate / (n + 1):
        n += 1
    for _ in range(n):
        start = rnd.randrange(SLOTS)
        p = rnd.uniform(*level)
        for i in range(start, min(SLOTS, start + rnd.randint(*length))):
            power[i] += p


def _winter(month: int) -> float:
    """1 in January, -1 in July."""
    return math.cos((month - 1) / 12 * 2 * math.pi)


def electricity(month: int, hod: int, rnd: random.Random) -> list[int]:
    """Household import, 1000 imp/kWh: base load, fridge, cooking, machines, lights."""
    base = rnd.uniform(0.11, 0.19)
    power = [base + rnd.gauss(0, 0.008) for _ in range(SLOTS)]
    phase = rnd.randrange(SLOTS)
    for i in range(SLOTS):
        if (i + phase) % 150 < 55:
            power[i] += 0.09
    active = 0.3 if hod < 7 else (1.5 if hod in (7, 8, 12, 18, 19, 20) else 0.9)
    _runs(power, active * 1.5, (6, 30), (1.5, 2.4), rnd)
    _runs(power, active * 0.3, (120, 300), (0.4, 2.0), rnd)
    if hod >= 17 or hod < 1 or (hod < 9 and _winter(month) > 0.3):
        light = 0.15 + 0.15 * max(0.0, _winter(month))
        power = [p + light for p in power]
    return _pulses(power, 1000, rnd)


def solar(month: int, hod: int, rnd: random.Random) -> list[int]:
    """Solar export, 1000 imp/kWh: a 3.2 kWp roof, day length and clouds by season."""
    summer = -_winter(month)
    day_length, noon = 12 + 4 * summer, 13.5
    peak = 3.2 * (0.65 + 0.35 * summer)
    cloud = rnd.choice((1.0, 0.9, 0.6, 0.3, 0.15))
    level, power = cloud, []
    for i in range(SLOTS):
        x = (hod + i / SLOTS - (noon - day_length / 2)) / day_length
        if 0 < x < 1:
            level = min(1.05, max(0.05, level + rnd.gauss(0, 0.03) + (cloud - level) * 0.05))
            power.append(peak * math.sin(math.pi * x) ** 1.5 * level)
        else:
            power.append(0.0)
    return _pulses(power, 1000, rnd)


def gas(month: int, hod: int, rnd: random.Random) -> list[int]:
    """Gas, 100 imp/m³: boiler cycles by season and hour, hot water for showers."""
    heating = max(0.0, 0.2 + 0.8 * _winter(month)) * (0.3 if hod < 6 or hod >= 23 else 1.0)
    flow = [0.0] * SLOTS
    i = rnd.randrange(60)
    while i < SLOTS:
        on = int(rnd.uniform(20, 60) * heating)
        for k in range(i, min(SLOTS, i + on)):
            flow[k] += 1.4
        i += on + int(rnd.uniform(20, 60) * (1.05 - heating)) + 1
    if hod in (7, 8, 21, 22) or rnd.random() < 0.1:
        _runs(flow, 0.8, (30, 70), (1.2, 1.8), rnd)
    return _pulses(flow, 100, rnd)


def water(month: int, hod: int, rnd: random.Random) -> list[int]:
    """Water, 1 imp/L: toilets, showers, taps, the garden on summer evenings."""
    flow = [0.0] * SLOTS  # L/min
    awake = 0.05 if hod < 6 else (2.0 if hod in (7, 8, 21, 22) else 0.8)
    _runs(flow, awake, (3, 6), (8, 12), rnd)
    _runs(flow, awake * 0.3, (36, 72), (7, 9), rnd)
    _runs(flow, awake * 1.5, (1, 6), (4, 8), rnd)
    if month in (5, 6, 7, 8) and hod in (20, 21):
        _runs(flow, 0.5, (60, 180), (10, 15), rnd)
    return _pulses(flow, 60, rnd)


def heat_pump(month: int, hod: int, rnd: random.Random) -> list[int]:
    """A heat pump's own meter, 1000 imp/kWh: compressor cycles, longer in winter."""
    duty = max(0.05, 0.3 + 0.5 * _winter(month))
    power = [0.008] * SLOTS
    i = rnd.randrange(90)
    while i < SLOTS:
        on = int(rnd.uniform(60, 150) * duty)
        p = rnd.uniform(1.2, 2.6)
        for k in range(i, min(SLOTS, i + on)):
            power[k] += p * rnd.uniform(0.97, 1.03)
        i += on + int(rnd.uniform(60, 150) * (1.05 - duty)) + 1
    return _pulses(power, 1000, rnd)


REGISTERS: tuple[tuple[str, Callable[[int, int, random.Random], list[int]]], ...] = (
    ("electricity", electricity),
    ("solar", solar),
    ("gas", gas),
    ("water", water),
    ("heat_pump", heat_pump),
)

Pool = list[list[list[list[list[int]]]]]  # [register][month - 1][hour of day][variant]


def build_pool(seed: int = SEED, variants: int = VARIANTS) -> Pool:
    rnd = random.Random(seed)
    return [
        [[[simulate(m, h, rnd) for _ in range(variants)] for h in range(24)] for m in range(1, 13)]
        for _, simulate in REGISTERS
    ]


class Household:
    """Deterministic hours of all registers: ``hour(h)`` gives the counts for UTC hour ``h``."""

    def __init__(self, pool: Pool, seed: int = SEED) -> None:
        self.pool = pool
        self.rnd = random.Random(seed + 1)

    def hour(self, hour: int) -> list[list[int]]:
        local = datetime.fromtimestamp(hour * 3600, TZ)
        return [
            per_register[local.month - 1][local.hour][self.rnd.randrange(len(per_register[0][0]))]
            for per_register in self.pool
        ]


# -- measurements --------------------------------------------------------------------------------


def build(path: Path, pool: Pool, first_hour: int, end_hour: int) -> float:
    """Fill the store at ``path``; seconds taken."""
    household = Household(pool)
    began = time.perf_counter()
    with SqliteStore(path, tz=TZ) as store:
        for name, _ in REGISTERS:
            store.add_anchor(
                Anchor(meter=name, at=first_hour * 3600.0, reading=1000.0, pulses_per_unit=1000.0)
            )
        month = None
        for hour in range(first_hour, end_hour):
            at = hour * 3600
            current = datetime.fromtimestamp(at, UTC).month
            if month is not None and current != month:
                store.commit()
            month = current
            for (name, _), counts in zip(REGISTERS, household.hour(hour), strict=True):
                store.add_hour(name, at, counts)
    return time.perf_counter() - began


def naive_bytes_per_row(path: Path, pool: Pool, first_hour: int, days: int) -> tuple[float, int]:
    """The naive layout filled with a sample of the same data; bytes per row and rows."""
    household = Household(pool)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(
            "CREATE TABLE naive (meter INTEGER, at INTEGER, pulses INTEGER, "
            "PRIMARY KEY (meter, at))"
        )
        rows = 0
        conn.execute("BEGIN")
        for hour in range(first_hour, first_hour + days * 24):
            counts = household.hour(hour)
            # In time order, as a logger writes them: every 10 s a row per register.
            batch = [
                (meter, hour * 3600 + i * 10, counts[meter][i])
                for i in range(SLOTS)
                for meter in range(len(REGISTERS))
            ]
            conn.executemany("INSERT INTO naive VALUES (?, ?, ?)", batch)
            rows += len(batch)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return path.stat().st_size / rows, rows


def table_sizes(path: Path) -> dict[str, int]:
    """Bytes per table and index (SQLite's dbstat), when the library has it."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
    return {name: int(size) for name, size in rows}


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latencies(
    path: Path, first_hour: int, end_hour: int, count: int
) -> list[tuple[str, list[float]]]:
    """Milliseconds per call of each dashboard query on a fresh read-only store."""
    rnd = random.Random(SEED + 2)
    first, end = first_hour * 3600, end_hour * 3600
    meters = [name for name, _ in REGISTERS]
    results: list[tuple[str, list[float]]] = []
    with SqliteStore(path, tz=TZ, readonly=True) as store:
        cal = store.calendar
        first_day = cal.local_date(first)
        days = (cal.local_date(end - 1) - first_day).days

        def random_day() -> datetime:
            d = first_day.toordinal() + rnd.randrange(days)
            return datetime.fromordinal(d).replace(tzinfo=TZ)

        def reading() -> object:
            return store.reading_at(rnd.choice(meters), rnd.uniform(first, end))

        def hourly() -> object:
            day = random_day()
            return store.series(
                rnd.choice(meters), day.timestamp(), day.timestamp() + 86400, Resolution.HOUR
            )

        def daily() -> object:
            day = random_day().replace(day=1)
            nxt = day.replace(year=day.year + day.month // 12, month=day.month % 12 + 1)
            return store.series(
                rnd.choice(meters), day.timestamp(), nxt.timestamp(), Resolution.DAY
            )

        def monthly() -> object:
            year = random_day().year
            a, b = datetime(year, 1, 1, tzinfo=TZ), datetime(year + 1, 1, 1, tzinfo=TZ)
            return store.series(rnd.choice(meters), a.timestamp(), b.timestamp(), Resolution.MONTH)

        def yearly() -> object:
            return store.series(rnd.choice(meters), first, end, Resolution.YEAR)

        def raw() -> object:
            hour = rnd.randrange(first_hour, end_hour) * 3600
            return store.intervals(rnd.choice(meters), hour, hour + 3600)

        cases: list[tuple[str, Callable[[], object]]] = [
            ("reading at a random instant", reading),
            ("hourly series of a random day", hourly),
            ("daily series of a random month", daily),
            ("monthly series of a year", monthly),
            ("yearly series over all years", yearly),
            ("raw intervals of a random hour", raw),
        ]
        for name, query in cases:
            query()  # warm up
            times = []
            for _ in range(count):
                began = time.perf_counter()
                query()
                times.append((time.perf_counter() - began) * 1000)
            results.append((name, times))
    return results


def quick_from_env() -> bool:
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_store", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_YEARS} year of history")
    parser.add_argument("--years", type=int, default=None, help="years of history")
    parser.add_argument("--keep", type=Path, default=None, help="keep the database here")
    args = parser.parse_args(argv if argv is not None else [])
    quick = args.quick or quick_from_env()
    years = args.years or (QUICK_YEARS if quick else FULL_YEARS)
    count = QUICK_QUERIES if quick else FULL_QUERIES

    first_hour = int(START.timestamp()) // 3600
    end_hour = int(START.replace(year=START.year + years).timestamp()) // 3600
    hours = end_hour - first_hour
    intervals = hours * SLOTS * len(REGISTERS)

    with tempfile.TemporaryDirectory(prefix="s0pcm-bench-") as tmp:
        work = Path(tmp)
        path = args.keep or work / "history.db"
        path.unlink(missing_ok=True)
        began = time.perf_counter()
        pool = build_pool()
        simulated = time.perf_counter() - began
        gc.collect()
        seconds = build(path, pool, first_hour, end_hour)
        size = path.stat().st_size
        sizes = table_sizes(path)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            blob_bytes = conn.execute("SELECT SUM(LENGTH(slots)) FROM hour_slots").fetchone()[0]
        naive_per_row, naive_rows = naive_bytes_per_row(
            work / "naive.db", pool, first_hour, NAIVE_DAYS
        )
        results = latencies(path, first_hour, end_hour, count)
        with SqliteStore(path, tz=TZ, readonly=True) as store:
            began = time.perf_counter()
            problems = store.check()
            check_seconds = time.perf_counter() - began
            began = time.perf_counter()
            store.backup(work / "backup.db")
            backup_seconds = time.perf_counter() - began

    ours = size / intervals
    print(
        f"{years} years x {len(REGISTERS)} registers at 10 s: {intervals:,} register-intervals, "
        f"{hours * len(REGISTERS):,} hour rows; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs"
    )
    print(
        f"simulated pool {simulated:.1f} s; build (add_hour + monthly commits) {seconds:.1f} s, "
        f"{hours * len(REGISTERS) / seconds:,.0f} hour rows/s"
    )
    print(f"file {size / 1e6:.1f} MB: {ours:.3f} bytes per register-interval, indexes included")
    for name, nbytes in sorted(sizes.items(), key=lambda item: -item[1]):
        if nbytes >= 1e5:
            print(f"  {name:<28} {nbytes / 1e6:8.1f} MB")
    print(
        f"  slot blobs: {blob_bytes / (hours * len(REGISTERS)):.1f} bytes per hour row on average"
    )
    naive_total = naive_per_row * intervals
    print(
        f"naive one row per register-interval ({naive_rows:,} rows, {NAIVE_DAYS} days): "
        f"{naive_per_row:.2f} bytes per register-interval, {naive_total / 1e9:.2f} GB for the "
        f"same history; ratio naive / store {naive_per_row / ours:.0f}"
    )
    width = max(len(name) for name, _ in results)
    print(
        f"{'query (' + str(count) + ' each)':<{width}}  {'p50 ms':>7}  {'p95 ms':>7}  {'max ms':>7}"
    )
    for name, times in results:
        print(
            f"{name:<{width}}  {statistics.median(times):7.3f}  {percentile(times, 0.95):7.3f}  "
            f"{max(times):7.3f}"
        )
    print(
        f"check() {check_seconds:.1f} s ({len(problems)} problems); backup() {backup_seconds:.1f} s"
    )
    if problems:
        raise SystemExit("check() found problems: " + "; ".join(problems[:5]))


if __name__ == "__main__":
    main(sys.argv[1:])
