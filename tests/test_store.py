"""The history store, on real databases: a SQLite file and a throwaway PostgreSQL cluster.

Every behaviour test runs on both backends (the ``backend`` fixture); the PostgreSQL cluster comes
from ``tests/helpers/pg.py`` and fails loudly when PostgreSQL is not installed.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from s0pcm.calendar import SLOT, Calendar, Resolution
from s0pcm.errors import StoreError
from s0pcm.events import DeviceEvent, EventKind
from s0pcm.store import Anchor, AnchorKind, Store, codec, open_store
from s0pcm.store.common import SqlStore
from tests.helpers import TZ as AMS
from tests.helpers.store import Backend

UTC = ZoneInfo("UTC")
#: A Thursday, far from DST changes.
T0 = datetime(2026, 1, 15, tzinfo=UTC).timestamp()


def local(y: int, m: int, d: int, h: int = 0, tz: ZoneInfo = AMS) -> float:
    return datetime(y, m, d, h, tzinfo=tz).timestamp()


def fill(store: Store, meter: str, start: float, end: float, per_slot: int = 1) -> None:
    """``per_slot`` pulses in every slot of ``[start, end)`` (hour-aligned bounds), bulk path."""
    hour = start
    while hour < end:
        store.add_hour(meter, hour, [per_slot] * 360)
        hour += 3600


# -- writing and reading back -------------------------------------------------------------------


def test_buffered_data_is_visible_before_commit(backend: Backend, store: Store) -> None:
    store.add("m1", T0 + 3, 5)
    store.add("m1", T0 + 7, 2)  # same slot
    store.add("m1", T0 + 3600 * 30, 4)
    store.add_event(DeviceEvent(at=T0, kind=EventKind.STARTUP, module="mod"))
    store.add_anchor(Anchor(meter="m1", at=T0, reading=10.0, pulses_per_unit=1000.0))
    store.set_state("mod", {"totals": [1, 2]})

    def seen(s: Store) -> None:
        assert s.pulses("m1", T0, T0 + 10) == 7
        assert s.pulses("m1", -float("inf"), float("inf")) == 11
        assert s.intervals("m1", T0, T0 + 86400 * 2) == [(T0, 7), (T0 + 3600 * 30, 4)]
        assert s.series("m1", T0, T0 + 7200, Resolution.HOUR) == [(T0, 7), (T0 + 3600, 0)]
        assert sum(v for _, v in s.series("m1", T0, T0 + 86400 * 2, Resolution.DAY)) == 11
        assert s.series("m1", T0, T0 + 1, Resolution.MONTH)[0][1] == 11
        assert [e.kind for e in s.events()] == [EventKind.STARTUP]
        assert s.anchors("m1") == [Anchor(meter="m1", at=T0, reading=10.0, pulses_per_unit=1000.0)]
        assert s.state("mod") == {"totals": [1, 2]}
        assert s.meters() == ["m1"]
        assert s.reading_at("m1", T0 + 86400 * 2) == pytest.approx(10.011)

    seen(store)
    with backend.open(readonly=True) as reader:
        # Another connection sees nothing yet: it was all in memory.
        assert reader.pulses("m1", -float("inf"), float("inf")) == 0
        assert reader.meters() == []
        store.commit()
        seen(reader)
    seen(store)


def test_commit_then_reopen_sees_everything(backend: Backend) -> None:
    with backend.open() as store:
        fill(store, "gas", T0, T0 + 3 * 3600, per_slot=2)
        store.add("power", T0 + 15, 3)
        store.add_event(
            DeviceEvent(
                at=T0 + 1,
                kind=EventKind.GAP,
                module="mod",
                meter="gas",
                value=12.0,
                detail="recovered",
            )
        )
        store.add_anchor(
            Anchor(
                meter="gas", at=T0, reading=1234.5, pulses_per_unit=100.0, kind=AnchorKind.INITIAL
            )
        )
        store.set_state("mod", {"a": {"b": None}, "c": 1.5})
        store.commit()
        store.add("power", T0 + 25, 1)  # buffered: close() commits it
    with backend.open() as store:
        assert store.meters() == ["gas", "power"]
        assert store.pulses("gas", T0, T0 + 3 * 3600) == 3 * 360 * 2
        assert store.intervals("power", T0, T0 + 60) == [(T0 + 10, 3), (T0 + 20, 1)]
        assert store.events() == [
            DeviceEvent(
                at=T0 + 1,
                kind=EventKind.GAP,
                module="mod",
                meter="gas",
                value=12.0,
                detail="recovered",
            )
        ]
        assert store.anchors("gas") == [
            Anchor(meter="gas", at=T0, reading=1234.5, pulses_per_unit=100.0)
        ]
        assert store.state("mod") == {"a": {"b": None}, "c": 1.5}
        assert store.state("other") is None
        assert store.check() == []


def test_slot_boundaries(store: Store) -> None:
    base = T0 + 3600 - 20  # the last two slots of an hour, then the first of the next
    store.add("m", base, 1)
    store.add("m", base + 9.999, 2)  # still the same slot
    store.add("m", base + 10, 4)  # the next slot, the hour's last
    store.add("m", base + 20, 8)  # first slot of the next hour
    for committed in (False, True):
        assert store.intervals("m", base, base + 30) == [
            (base, 3),
            (base + 10, 4),
            (base + 20, 8),
        ]
        # A slot counts when its start lies in [start, end).
        assert store.pulses("m", base, base + 10) == 3
        assert store.pulses("m", base + 1, base + 10) == 0
        assert store.pulses("m", base + 1, base + 11) == 4
        assert store.pulses("m", base + 10, base + 20) == 4
        assert store.pulses("m", base, base + 20.5) == 15
        assert store.pulses("m", base + 20, base + 20) == 0
        assert store.pulses("m", base + 30, base) == 0
        assert store.series("m", base + 5, base + 15, Resolution.INTERVAL) == [
            (base, 3),
            (base + 10, 4),
        ]
        hours = store.series("m", base, base + 30, Resolution.HOUR)
        assert hours == [(T0, 7), (T0 + 3600, 8)]
        if not committed:
            store.commit()


def test_late_data_keeps_totals_consistent(store: Store) -> None:
    fill(store, "m", T0, T0 + 5 * 3600)
    store.commit()
    store.add("m", T0 + 3600 + 5, 100)  # into a stored hour
    store.add("m", T0 - 7200, 50)  # before everything
    store.add("m", T0 + 5 * 3600, 1)  # after everything
    store.commit()
    assert store.pulses("m", T0 - 7200, T0) == 50
    assert store.pulses("m", T0, T0 + 2 * 3600) == 2 * 360 + 100
    assert store.pulses("m", T0 + 3600 + 10, T0 + 6 * 3600) == 359 + 3 * 360 + 1
    assert store.pulses("m", -float("inf"), float("inf")) == 5 * 360 + 151
    assert store.check() == []


def test_add_hour_is_add_in_bulk(backend: Backend, tmp_path: Path) -> None:
    counts = [i % 7 for i in range(360)]
    with backend.open() as bulk:
        bulk.add_hour("bulk", T0, counts)
        bulk.add_hour("bulk", T0, counts[:10])  # adds, a short list is the hour's start
        for i, n in enumerate(counts):
            bulk.add("single", T0 + i * SLOT, n + (counts[i] if i < 10 else 0))
        bulk.commit()
        assert bulk.intervals("bulk", T0, T0 + 3600) == bulk.intervals("single", T0, T0 + 3600)
        assert bulk.pulses("bulk", T0, T0 + 3600) == sum(counts) + sum(counts[:10])
        with pytest.raises(ValueError, match="UTC hour"):
            bulk.add_hour("bulk", T0 + 10, counts)
        with pytest.raises(ValueError, match="360"):
            bulk.add_hour("bulk", T0, [0] * 361)
        with pytest.raises(ValueError, match="negative"):
            bulk.add_hour("bulk", T0, [1, -1])
        with pytest.raises(ValueError, match="negative"):
            bulk.add("bulk", T0, -1)


# -- series --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolution", "expected"),
    [
        # 2026-02-27 00:00 to 2026-03-02 00:00 local, 1 pulse per slot.
        (Resolution.DAY, [(local(2026, 2, 27), 8640), (local(2026, 2, 28), 8640),
                          (local(2026, 3, 1), 8640)]),
        (Resolution.WEEK, [(local(2026, 2, 23), 3 * 8640), (local(2026, 3, 2), 0)]),
        (Resolution.MONTH, [(local(2026, 2, 1), 2 * 8640), (local(2026, 3, 1), 8640)]),
        (Resolution.YEAR, [(local(2026, 1, 1), 3 * 8640)]),
    ],
)  # fmt: skip
def test_series_calendar_resolutions(
    store: Store, resolution: Resolution, expected: list[tuple[float, int]]
) -> None:
    fill(store, "m", local(2026, 2, 27), local(2026, 3, 2))
    for _ in range(2):  # buffered, then committed
        # The last bucket starts before the end; the first one begins before the start.
        start, end = local(2026, 2, 27, 5), local(2026, 3, 1, 23)
        if resolution is Resolution.WEEK:
            end = local(2026, 3, 2, 1)
        assert store.series("m", start, end, resolution) == expected
        store.commit()


def test_series_intervals_and_hours(store: Store) -> None:
    store.add("m", T0 + 20, 3)
    store.add("m", T0 + 3600 + 50, 2)
    assert store.series("m", T0, T0 + 40, Resolution.INTERVAL) == [
        (T0, 0),
        (T0 + 10, 0),
        (T0 + 20, 3),
        (T0 + 30, 0),
    ]
    store.commit()
    assert store.series("m", T0 + 15, T0 + 35, Resolution.INTERVAL) == [
        (T0 + 10, 0),
        (T0 + 20, 3),
        (T0 + 30, 0),
    ]
    assert store.series("m", T0 - 3600, T0 + 7200, Resolution.HOUR) == [
        (T0 - 3600, 0),
        (T0, 3),
        (T0 + 3600, 2),
    ]
    assert store.series("unknown", T0, T0 + 7200, Resolution.HOUR) == [(T0, 0), (T0 + 3600, 0)]
    assert store.series("m", T0, T0, Resolution.HOUR) == []


@pytest.mark.parametrize(
    ("day", "hours", "labels"),
    [
        # Spring forward: 02:00 does not exist, the day has 23 hours.
        (date(2026, 3, 29), 23, [0, 1, *range(3, 24)]),
        # Fall back: 02:00 happens twice, the day has 25 hours.
        (date(2026, 10, 25), 25, [0, 1, 2, 2, *range(3, 24)]),
    ],
)
def test_series_on_dst_change_days(store: Store, day: date, hours: int, labels: list[int]) -> None:
    start = local(day.year, day.month, day.day)
    following = day + timedelta(days=1)
    end = local(following.year, following.month, following.day)
    assert end - start == hours * 3600
    fill(store, "m", start - 86400, end + 86400)  # the days around too
    for _ in range(2):
        series = store.series("m", start, end, Resolution.HOUR)
        assert len(series) == hours
        assert [datetime.fromtimestamp(t, AMS).hour for t, _ in series] == labels
        assert all(v == 360 for _, v in series)
        days = store.series("m", start - 1, end, Resolution.DAY)
        assert [v for _, v in days] == [24 * 360, hours * 360]
        assert days[1][0] == start
        assert store.pulses("m", start, end) == hours * 360
        store.commit()


def test_series_iso_weeks(store: Store) -> None:
    # ISO weeks around the year end (2026-W53 runs Mon 2026-12-28 to Sun 2027-01-03) and the
    # spring DST week (Mon 2026-03-23: 167 hours).
    fill(store, "m", local(2026, 12, 21), local(2027, 1, 11))
    fill(store, "m", local(2026, 3, 23), local(2026, 3, 30))
    store.commit()
    weeks = store.series("m", local(2026, 12, 24), local(2027, 1, 5), Resolution.WEEK)
    assert [datetime.fromtimestamp(t, AMS).date() for t, _ in weeks] == [
        date(2026, 12, 21),
        date(2026, 12, 28),
        date(2027, 1, 4),
    ]
    assert all(datetime.fromtimestamp(t, AMS).isocalendar().weekday == 1 for t, _ in weeks)
    assert datetime.fromtimestamp(weeks[1][0], AMS).isocalendar()[:2] == (2026, 53)
    assert [v for _, v in weeks] == [7 * 8640] * 3
    spring = store.series("m", local(2026, 3, 25), local(2026, 3, 26), Resolution.WEEK)
    assert spring == [(local(2026, 3, 23), 167 * 360)]


def test_series_months_and_years_in_local_time(store: Store) -> None:
    # An hour either side of the New Year, local time: it belongs to 2027 in Amsterdam.
    store.add("m", local(2026, 12, 31, 23), 1)
    store.add("m", local(2027, 1, 1, 0), 2)
    store.commit()
    months = store.series("m", local(2026, 12, 1), local(2027, 2, 1), Resolution.MONTH)
    assert months == [(local(2026, 12, 1), 1), (local(2027, 1, 1), 2)]
    years = store.series("m", local(2020, 6, 1), local(2027, 6, 1), Resolution.YEAR)
    assert [datetime.fromtimestamp(t, AMS).year for t, _ in years] == list(range(2020, 2028))
    assert years[-2:] == [(local(2026, 1, 1), 1), (local(2027, 1, 1), 2)]


def test_half_hour_zone_splits_hours_between_days(backend: Backend) -> None:
    india = ZoneInfo("Asia/Kolkata")  # UTC+05:30: local midnight is half past a UTC hour
    with backend.open(tz=india) as store:
        midnight = local(2026, 5, 2, tz=india)
        fill(store, "m", midnight - 1800 - 3600, midnight + 1800 + 3600)
        for _ in range(2):
            days = store.series("m", midnight - 1, midnight + 1, Resolution.DAY)
            assert [v for _, v in days] == [5400 // 10, 5400 // 10]
            hours = store.series("m", midnight - 3600, midnight + 3600, Resolution.HOUR)
            assert hours == [(midnight - 3600, 360), (midnight, 360)]
            store.commit()
        assert store.check() == []


def test_time_zone_change_rebuilds_rollups(backend: Backend) -> None:
    with backend.open(tz=UTC) as store:
        store.add("m", local(2026, 6, 1, 1), 5)  # 2026-05-31 23:00 UTC
    with backend.open(tz=AMS) as store:
        assert store.series("m", local(2026, 6, 1), local(2026, 6, 2), Resolution.DAY) == [
            (local(2026, 6, 1), 5)
        ]
        assert store.check() == []
    with pytest.raises(StoreError, match="time zone"):
        backend.open(tz=UTC, readonly=True)


# -- readings ------------------------------------------------------------------------------------


def test_reading_at_follows_anchors_without_rewriting_history(store: Store) -> None:
    meter = "power"
    assert store.reading_at(meter, T0) is None
    fill(store, meter, T0, T0 + 6 * 3600)  # 360 pulses an hour
    store.add_anchor(Anchor(meter=meter, at=T0 + 3600, reading=100.0, pulses_per_unit=1000.0))
    assert store.reading_at(meter, T0 + 3600) == pytest.approx(100.0)
    assert store.reading_at(meter, T0 + 7200) == pytest.approx(100.36)
    assert store.reading_at(meter, T0) == pytest.approx(100.0 - 0.36)  # before the first anchor
    store.commit()
    before = [store.reading_at(meter, T0 + h * 3600) for h in range(7)]

    # The display said otherwise at 3 h: a correction from there on; earlier readings stay.
    store.add_anchor(
        Anchor(
            meter=meter,
            at=T0 + 3 * 3600,
            reading=200.0,
            pulses_per_unit=1000.0,
            kind=AnchorKind.CORRECTION,
        )
    )
    # A new meter (another constant) from 5 h on.
    store.add_anchor(
        Anchor(
            meter=meter,
            at=T0 + 5 * 3600,
            reading=0.0,
            pulses_per_unit=500.0,
            kind=AnchorKind.REPLACEMENT,
        )
    )
    store.add_anchor(
        Anchor(
            meter=meter,
            at=T0 + 5 * 3600,
            reading=0.0,
            pulses_per_unit=500.0,
            kind=AnchorKind.REPLACEMENT,
        )
    )  # again
    for _ in range(2):
        after = [store.reading_at(meter, T0 + h * 3600) for h in range(7)]
        assert after[:3] == before[:3]
        assert after[3] == pytest.approx(200.0)
        assert after[4] == pytest.approx(200.36)
        assert after[5] == pytest.approx(0.0)
        assert after[6] == pytest.approx(0.72)
        assert [a.kind for a in store.anchors(meter)] == [
            AnchorKind.INITIAL,
            AnchorKind.CORRECTION,
            AnchorKind.REPLACEMENT,
        ]
        store.commit()
    # The pulses themselves were never touched.
    assert store.pulses(meter, T0, T0 + 6 * 3600) == 6 * 360
    assert store.meters() == [meter]
    # Each pulse in the unit of the meter that made it: 1000 per kWh up to 5 h, 500 from there;
    # an hour split at the change is queried in parts; consumption = difference of readings.
    constants = store.constants(meter, 1.0)
    assert constants.steps == ((-math.inf, 1000.0), (T0 + 5 * 3600, 500.0))
    assert (constants.at(T0), constants.at(T0 + 5 * 3600), constants.current) == (1000, 500, 500)
    bounds = [T0 + h * 3600 for h in (0, 4.5, 5.5, 6)]
    units = constants.bucket_units(store, meter, bounds, [1620, 360, 180])
    assert units == pytest.approx([1.62, 0.18 + 0.36, 0.36])
    start_reading, end_reading = store.reading_at(meter, bounds[2]), after[6]
    assert start_reading is not None
    assert end_reading is not None
    assert units[2] == pytest.approx(end_reading - start_reading)
    assert store.constants("gas", 100.0).steps == ((-math.inf, 100.0),)  # no anchors


# -- events and state ----------------------------------------------------------------------------


def test_events_filters_and_order(store: Store) -> None:
    events = [
        DeviceEvent(at=T0 + 1, kind=EventKind.CONNECTED, module="a"),
        DeviceEvent(at=T0 + 2, kind=EventKind.STARTUP, module="a"),
        DeviceEvent(
            at=T0 + 3, kind=EventKind.SPIKE, module="a", meter="a.1", value=500.0, detail="too many"
        ),
        DeviceEvent(at=T0 + 3, kind=EventKind.GAP, module="b", meter="b.2", value=12.0),
        DeviceEvent(at=T0 + 5, kind=EventKind.DISCONNECTED, module="b"),
    ]
    for e in events[:3]:
        store.add_event(e)
    store.commit()
    for e in events[3:]:
        store.add_event(e)
    for _ in range(2):
        assert store.events() == events[::-1]
        assert store.events(limit=2) == [events[4], events[3]]
        assert store.events(T0 + 2, T0 + 5) == [events[3], events[2], events[1]]
        assert store.events(module="a") == events[2::-1]
        assert store.events(meter="b.2") == [events[3]]
        assert store.events(kinds=[EventKind.GAP, EventKind.STARTUP]) == [events[3], events[1]]
        assert store.events(module="a", kinds=[EventKind.GAP]) == []
        assert store.events(kinds=[]) == []
        assert store.events(limit=0) == []
        store.commit()


def test_state_round_trip(backend: Backend, store: Store) -> None:
    state: dict[str, Any] = {"registers": {"1": {"total": 12345, "at": 1.5}}, "ok": True}
    store.set_state("mod", state)
    state["ok"] = False  # the store took a copy
    assert store.state("mod") == {"registers": {"1": {"total": 12345, "at": 1.5}}, "ok": True}
    store.commit()
    store.set_state("mod", {"version": 2})
    assert store.state("mod") == {"version": 2}
    store.close()
    with backend.open() as reopened:
        assert reopened.state("mod") == {"version": 2}
    with pytest.raises(TypeError):
        store.set_state("mod", {"bad": object()})


# -- upkeep --------------------------------------------------------------------------------------


def test_retention_keeps_rollups(store: Store) -> None:
    start = local(2026, 4, 1)
    fill(store, "m", start, start + 10 * 86400)
    store.add("m", start + 5, 7)
    store.commit()
    queries = [
        (Resolution.HOUR, start, start + 2 * 86400),
        (Resolution.DAY, start, start + 10 * 86400),
        (Resolution.WEEK, start, start + 10 * 86400),
        (Resolution.MONTH, start, start + 10 * 86400),
        (Resolution.YEAR, start, start + 10 * 86400),
    ]
    before = [store.series("m", a, b, r) for r, a, b in queries]
    total = store.pulses("m", start, start + 10 * 86400)
    now = start + 10 * 86400
    dropped = store.apply_retention(raw_days=3, now=now)
    assert dropped == 7 * 24 * 360
    assert store.apply_retention(raw_days=3, now=now) == 0
    assert store.apply_retention(raw_days=None) == 0
    assert [store.series("m", a, b, r) for r, a, b in queries] == before
    assert store.pulses("m", start, start + 10 * 86400) == total
    assert store.pulses("m", start, start + 3600) == 367
    assert store.reading_at("m", start) is None
    # The slot detail is gone where it was dropped, kept where it was not.
    assert store.intervals("m", start, start + 60) == []
    assert len(store.intervals("m", now - 60, now)) == 6
    assert store.check() == []


def test_check_finds_a_corrupted_hour_sum(backend: Backend) -> None:
    with backend.open() as store:
        fill(store, "m", T0, T0 + 3 * 3600)
        store.commit()
        assert store.check() == []
        backend.execute(
            "UPDATE hour_slots SET pulses = pulses + 1 WHERE hour = ?", (int(T0) // 3600 + 1,)
        )
        problems = store.check()
    assert any("hour sum is 361 but its slots add up to 360" in p for p in problems), problems
    assert any("2026-01-15 01:00Z" in p for p in problems)
    assert any("rollup" not in p and "cumulative" in p for p in problems)


def test_check_finds_bad_rollups_and_blobs(backend: Backend) -> None:
    with backend.open() as store:
        fill(store, "m", T0, T0 + 3600)
        store.commit()
        backend.execute("UPDATE day_total SET pulses = 1")
        backend.execute("DELETE FROM month_total")
        problems = store.check()
        assert any("day 20260115: rollup is 1 but its hours add up to 360" in p for p in problems)
        assert any("month 202601: rollup is missing" in p for p in problems)
        backend.execute("UPDATE hour_slots SET slots = NULL")
        backend.execute("UPDATE hour_slots SET slots = ?", (b"\x01\xff",))
        assert any("slot blob is corrupt" in p for p in store.check())
        with pytest.raises(StoreError, match="damaged slot data"):
            store.intervals("m", T0, T0 + 3600)


def test_backup_while_writing(backend: Backend, tmp_path: Path) -> None:
    copy = tmp_path / "backup.db"
    with backend.open() as store:
        fill(store, "fixed", T0, T0 + 48 * 3600, per_slot=3)
        store.add_event(DeviceEvent(at=T0, kind=EventKind.STARTUP, module="mod"))
        store.add_anchor(Anchor(meter="fixed", at=T0, reading=5.0, pulses_per_unit=100.0))
        store.set_state("mod", {"n": 1})
        store.commit()
        stop = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                with backend.open() as writer:
                    hour = T0
                    while not stop.is_set():
                        writer.add_hour("busy", hour, [1] * 360)
                        writer.commit()
                        hour += 3600
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=write)
        thread.start()
        try:
            time.sleep(0.2)
            store.add("fixed", T0 + 48 * 3600, 1)  # buffered: backup commits it first
            store.backup(copy)
        finally:
            stop.set()
            thread.join()
        assert not errors
        with open_store(str(copy), tz=AMS) as restored:
            assert restored.check() == []
            assert restored.meters() == ["busy", "fixed"]
            assert restored.pulses("fixed", T0, T0 + 49 * 3600) == 48 * 360 * 3 + 1
            assert restored.intervals("fixed", T0, T0 + 30) == [(T0, 3), (T0 + 10, 3), (T0 + 20, 3)]
            assert restored.anchors("fixed") == store.anchors("fixed")
            assert restored.events() == store.events()
            assert restored.state("mod") == {"n": 1}
            # Whole hours only (one snapshot), and every one of them (the range is unbounded: a
            # fast writer gets past any fixed end while the backup runs).
            busy = restored.pulses("busy", -math.inf, math.inf)
            assert busy % 360 == 0
            assert 0 < busy <= store.pulses("busy", -math.inf, math.inf)


def test_reader_sees_commits_while_the_writer_writes(backend: Backend) -> None:
    with backend.open() as writer, backend.open(readonly=True) as reader:
        seen = []
        for n in range(1, 6):
            writer.add_hour("m", T0 + n * 3600, [1] * 360)
            assert reader.pulses("m", T0, T0 + 10 * 3600) == (n - 1) * 360
            writer.commit()
            seen.append(reader.pulses("m", T0, T0 + 10 * 3600))
            assert reader.series("m", T0, T0 + 3600, Resolution.DAY)[0][1] == n * 360
        assert seen == [n * 360 for n in range(1, 6)]
        with pytest.raises(StoreError, match="read-only"):
            reader.add("m", T0, 1)
        assert reader.check() == []


def test_reader_sees_whole_commits_while_another_thread_writes(backend: Backend) -> None:
    """A second store reads in a loop while the first one commits in a thread: every read sees
    a whole number of commits, never fewer than before, and its rollups agree with its hours."""
    stop = threading.Event()
    commits = 0
    errors: list[BaseException] = []

    def write() -> None:
        nonlocal commits
        try:
            with backend.open() as writer:
                while not stop.is_set() and commits < 400:
                    for meter in ("a", "b"):
                        writer.add_hour(meter, T0 + commits * 3600, [2] * 360)
                    writer.commit()
                    commits += 1
        except BaseException as exc:
            errors.append(exc)

    backend.open().close()  # create it
    with backend.open(readonly=True) as reader:
        thread = threading.Thread(target=write)
        thread.start()
        try:
            last = reads = 0
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline and thread.is_alive():
                total = reader.pulses("a", -float("inf"), float("inf"))
                assert total % 720 == 0
                assert total >= last
                last = total
                reads += 1
                days = reader.series("b", T0, T0 + 400 * 3600, Resolution.DAY)
                assert sum(v for _, v in days) >= total
        finally:
            stop.set()
            thread.join()
        assert not errors
        assert last > 0
        assert reads > 5
        assert reader.pulses("a", -float("inf"), float("inf")) == commits * 720
        assert reader.check() == []


def test_migrations_are_recorded(backend: Backend) -> None:
    backend.open().close()
    backend.open().close()  # nothing to apply the second time
    backend.execute("INSERT INTO migrations (name, applied_at) VALUES ('9999_future', 0)")
    with pytest.raises(StoreError, match=r"newer s0pcm.*9999_future"):
        backend.open()


# -- errors --------------------------------------------------------------------------------------


def test_bad_paths_and_urls_raise_store_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just bytes " * 200)
    cases = [
        (str(tmp_path / "no" / "such" / "dir" / "x.db"), "cannot open"),
        (str(garbage), "not a database"),
        (str(tmp_path), "cannot open"),
        ("", "no database"),
        ("mysql://user:hunter2@localhost/db", "unknown kind of database"),
        ("sqlite://relative.db", "absolute path"),
    ]
    for target, reason in cases:
        with pytest.raises(StoreError, match=reason) as caught:
            open_store(target, tz=AMS)
        assert "hunter2" not in str(caught.value)
    with pytest.raises(StoreError, match="no such database"):
        open_store(str(tmp_path / "missing.db"), tz=AMS, readonly=True)


def test_postgres_error_hides_the_password() -> None:
    with socket_closed() as port:
        url = f"postgresql://s0pcm:hunter2@127.0.0.1:{port}/history?connect_timeout=2"
        with pytest.raises(StoreError, match="cannot connect") as caught:
            open_store(url, tz=AMS)
    error = caught.value
    for text in (str(error), repr(error), error.database, error.reason):
        assert "hunter2" not in text
    assert error.database == f"postgresql://s0pcm:***@127.0.0.1:{port}/history?connect_timeout=2"
    assert error.__cause__ is None  # the driver's message is not chained in
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://u@127.0.0.1:1/db?password=hunter2&connect_timeout=1", tz=AMS)
    assert "hunter2" not in str(caught.value)


@contextlib.contextmanager
def socket_closed() -> Iterator[int]:
    """A local port nobody listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_sqlite_urls_and_paths(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with open_store(f"sqlite://{path}", tz=AMS) as store:
        assert isinstance(store, SqlStore)
        store.add("m", T0, 1)
    with open_store(str(path), tz=AMS) as store:
        assert store.pulses("m", T0, T0 + 10) == 1


# -- the pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "counts",
    [
        [],
        [0] * 360,
        [1] * 360,
        [0] * 359 + [5],
        [127, 128, 255, 256, 16383, 16384, 2**40] + [0] * 10,
        [i * 37 % 11 for i in range(360)],
    ],
)
def test_codec_round_trip(counts: list[int]) -> None:
    blob = codec.encode(counts)
    assert codec.decode(blob) == counts + [0] * (360 - len(counts))
    assert len(blob) <= 2 * 360


def test_codec_is_compact_and_rejects_damage() -> None:
    assert codec.encode([0] * 360) == b""
    assert len(codec.encode([1] * 360)) < 20
    for damaged in (b"\x07abc", b"\x01\xff\xff", b"\x00" + b"\x80"):
        with pytest.raises(codec.CodecError):
            codec.decode(damaged)
    with pytest.raises(ValueError, match="negative"):
        codec.encode([1, -1])


def test_calendar_day_segments() -> None:
    ams, india = Calendar(AMS), Calendar(ZoneInfo("Asia/Kolkata"))
    hour = int(local(2026, 3, 29)) // 3600
    assert ams.hour_segments(hour) == ((0, 360, 20260329, 202603),)
    midnight = int(local(2026, 1, 1, tz=india.tz))
    assert india.hour_segments(midnight // 3600) == (
        (0, 180, 20251231, 202512),
        (180, 360, 20260101, 202601),
    )


def test_logged_hours_are_the_hours_with_a_record(store: Store) -> None:
    """An hour the logger marked (a 0-pulse record counts) is logged, committed or buffered;
    an hour without any record is not (the logger was down)."""
    hour = math.floor(T0 / 3600) * 3600.0
    store.add("m1", hour + 10, 0)
    store.add("m1", hour + 2 * 3600 + 5, 3)
    store.commit()
    store.add("m1", hour + 4 * 3600, 0)  # buffered
    assert store.logged_hours("m1", hour, hour + 5 * 3600) == {
        hour: 0, hour + 2 * 3600: 3, hour + 4 * 3600: 0,
    }  # fmt: skip
    assert store.logged_hours("m1", hour + 3600, hour + 2 * 3600) == {}
    assert store.logged_hours("nope", hour, hour + 5 * 3600) == {}


def test_the_last_pulse_is_the_newest_slot_with_pulses(store: Store) -> None:
    """Committed and buffered, within the window asked for; quiet slots and hours do not
    count, nor a pulse before the window."""
    hour = math.floor(T0 / 3600) * 3600.0
    store.add("m1", hour + 25, 2)  # slot hour + 20
    store.add("m1", hour + 3600 + 10, 0)  # a logged, quiet hour
    store.commit()
    assert store.last_pulse("m1", hour) == hour + 20
    assert store.last_pulse("m1", hour + 30) is None  # before the window
    store.add("m1", hour + 2 * 3600 + 3595, 1)  # buffered, the hour's last slot
    assert store.last_pulse("m1", hour) == hour + 2 * 3600 + 3590
    assert store.last_pulse("m1", hour + 3 * 3600) is None
    assert store.last_pulse("nope", hour) is None


def test_the_base_load_in_a_half_hour_zone(tmp_path: Path) -> None:
    """Adelaide (UTC+10:30 in January): its night hours straddle two UTC hours, each read from
    the slots, and whole only when both UTC hours were logged."""
    from zoneinfo import ZoneInfo

    from s0pcm.meters import Kind, Meter
    from s0pcm.web.read import base_loads

    tz = ZoneInfo("Australia/Adelaide")
    with open_store(str(tmp_path / "a.db"), tz=tz) as store:
        day = datetime(2026, 1, 15, tzinfo=tz).timestamp()
        assert day % 3600 == 1800
        for slot in range(int(day - 86400) // 10, int(day + 86400) // 10):
            local = datetime.fromtimestamp(slot * 10, tz)
            store.add("p", slot * 10, 2 if local.hour == 3 else 3)  # 03:00 is the lowest hour
        store.commit()
        meter = Meter("p", "P", "m", 1, Kind.ELECTRICITY, "kWh", 1000.0)
        bounds = [day, day + 86400]
        lows = base_loads(store, tz, meter, bounds, since=day - 86400, now=day + 86400)
        assert lows == [720.0]  # 2 pulses a slot: 720 Wh in the hour, 720 W
