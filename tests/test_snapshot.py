"""The live values, kept from records, equal what the store says, to the last bit."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from s0pcm.meters import Kind, Meter
from s0pcm.snapshot import MeterValues, Snapshot
from s0pcm.status import display_reading
from s0pcm.store import Anchor, AnchorKind, Store, open_store
from s0pcm.store.buckets import Calendar

TZ = ZoneInfo("Europe/Amsterdam")
NOON = datetime(2026, 10, 25, 12, 0, 0, tzinfo=TZ).timestamp()  # a DST day: 25 hours
METER = Meter("m.1", "power", "m", 1, Kind.ELECTRICITY, "kWh", 1000.0)
WATER = Meter("m.2", "water", "m", 2, Kind.WATER, "m³", 1000.0)


def truth(store: Store, meter: Meter, now: float) -> MeterValues:
    """The values as the store's own queries give them."""
    cal = Calendar(TZ)
    local = datetime.fromtimestamp(now, TZ)
    midnight = float(cal.day_start(local.date()))
    y0 = float(cal.day_start(local.date() - timedelta(days=1)))
    same = datetime.combine(local.date() - timedelta(days=1), local.time(), tzinfo=TZ)
    y1 = min(max(same.timestamp(), y0), midnight)
    constants = store.constants(meter.key, meter.pulses_per_unit)

    def units(a: float, b: float) -> float:
        return constants.units(store, meter.key, a, b, store.pulses(meter.key, a, b))

    return MeterValues(
        key=meter.key,
        reading=display_reading(store, meter, math.inf),
        pulses=store.pulses(meter.key, -math.inf, math.inf),
        today=round(units(midnight, math.inf), 6),
        yesterday_same_time=round(units(y0, y1), 6),
        rate=None,
    )


def test_kept_from_records_it_equals_the_store(tmp_path: Path) -> None:
    rnd = random.Random(5)
    with open_store(str(tmp_path / "s.sqlite"), tz=TZ) as store:
        # A reading set three days ago, and a new meter with another constant at 08:00:03.
        store.add_anchor(Anchor(METER.key, NOON - 3 * 86400, 100.0, 1000.0, AnchorKind.INITIAL))
        swap = NOON - 4 * 3600 + 3
        store.add_anchor(Anchor(METER.key, swap, 7.5, 500.0, AnchorKind.REPLACEMENT))
        history = sorted(NOON - rnd.uniform(0, 3 * 86400) for _ in range(3000))
        for at in history:
            store.add(METER.key, at, rnd.randint(1, 9))
            store.add(WATER.key, at, rnd.randint(0, 2))
        snapshot = Snapshot(store, calendar=Calendar(TZ))
        snapshot.refresh([METER, WATER], NOON)
        for meter in (METER, WATER):
            assert snapshot.values(meter.key, NOON) == truth(store, meter, NOON)
        # Records from now on, some late (a journal replay, a clock put right): into yesterday,
        # before the replacement, before the first anchor.
        now = NOON
        for k in range(2000):
            now += rnd.uniform(0, 12)
            at = now if k % 50 else now - rnd.choice([3600 * 5, 86400, 86400 * 1.6, 86400 * 4])
            for meter in (METER, WATER):
                pulses = rnd.randint(0, 7)
                store.add(meter.key, at, pulses)
                snapshot.add(meter.key, at, pulses)
            if k % 97 == 0:
                for meter in (METER, WATER):
                    assert snapshot.values(meter.key, now) == truth(store, meter, now)
        assert not snapshot.stale(now)
        for meter in (METER, WATER):
            assert snapshot.values(meter.key, now) == truth(store, meter, now)
        assert snapshot.refreshes == 1
        assert snapshot.values(METER.key, now).today > 0


def test_a_new_day_needs_a_refresh(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "s.sqlite"), tz=TZ) as store:
        store.add(METER.key, NOON, 5)
        snapshot = Snapshot(store, calendar=Calendar(TZ))
        snapshot.refresh([METER], NOON)
        tomorrow = NOON + 25 * 3600 + 30  # 12:00:30 the next day (today has 25 hours)
        assert not snapshot.stale(NOON + 3600)
        assert snapshot.stale(tomorrow)
        assert snapshot.stale(NOON - 86400)  # the clock stepped back across midnight
        store.add(METER.key, tomorrow, 3)
        snapshot.refresh([METER], tomorrow)
        assert snapshot.values(METER.key, tomorrow) == truth(store, METER, tomorrow)
        assert snapshot.values(METER.key, tomorrow).yesterday_same_time == 0.005
