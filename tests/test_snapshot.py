"""The live values, kept from records, equal what the store says, to the last bit."""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from s0pcm.calendar import Calendar
from s0pcm.config import load_config
from s0pcm.emulator import Fault, Module, PtyEmulator, Source, steady
from s0pcm.logger.daemon import Daemon, Update
from s0pcm.logger.overrides import METERS_KEY, add_reading, overridden
from s0pcm.logger.snapshot import MeterValues, Snapshot
from s0pcm.logger.status import display_reading
from s0pcm.meters import Kind, Meter
from s0pcm.store import Anchor, AnchorKind, Store, open_store

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

    since = store.since(meter.key)
    recent = store.intervals(meter.key, now - 2 * 86400, math.inf)
    return MeterValues(
        key=meter.key,
        reading=display_reading(store, meter, math.inf),
        pulses=store.pulses(meter.key, -math.inf, math.inf),
        counted=round(units(-math.inf, math.inf), 6),
        today=round(units(midnight, math.inf), 6),
        # Nothing to compare with when logging began after yesterday by this time.
        yesterday_same_time=None if since is None or since >= y1 else round(units(y0, y1), 6),
        rate=None,
        since=since,
        last_pulse_at=recent[-1][0] if recent else None,
    )


def test_kept_from_records_it_equals_the_store(tmp_path: Path) -> None:
    rnd = random.Random(5)
    with open_store(str(tmp_path / "s.sqlite"), tz=TZ) as store:
        # A reading set three days ago, and a new meter with another constant at 08:00:03.
        store.add_anchor(
            Anchor(
                meter=METER.key,
                at=NOON - 3 * 86400,
                reading=100.0,
                pulses_per_unit=1000.0,
                kind=AnchorKind.INITIAL,
            )
        )
        swap = NOON - 4 * 3600 + 3
        store.add_anchor(
            Anchor(
                meter=METER.key,
                at=swap,
                reading=7.5,
                pulses_per_unit=500.0,
                kind=AnchorKind.REPLACEMENT,
            )
        )
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
                once = Snapshot(store, calendar=Calendar(TZ))  # one answer (s0pcm serve)
                once.refresh([METER, WATER], now, follow=False)
                for meter in (METER, WATER):
                    assert snapshot.values(meter.key, now) == truth(store, meter, now)
                    assert once.values(meter.key, now) == truth(store, meter, now)
                light = Snapshot(store, calendar=Calendar(TZ))  # health: no days read
                light.refresh([METER], now, follow=False, days=False)
                got, want = light.values(METER.key, now), truth(store, METER, now)
                assert (got.reading, got.pulses, got.counted) == (
                    want.reading,
                    want.pulses,
                    want.counted,
                )
                assert math.isnan(got.today)
                assert got.yesterday_same_time is None
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


def _config(tmp_path: Path) -> Path:
    meters = "".join(
        f'[modules.kast.meters.{n}]\nname = "M{n}"\nkind = "{kind}"\npulses_per_unit = {ppu}\n'
        for n, (kind, ppu) in enumerate(
            [("electricity", 1000), ("gas", 100), ("water", 1), ("heat", 1000), ("other", 1)], 1
        )
    )
    path = tmp_path / "s0pcm.toml"
    path.write_text(
        f'[logger]\ndatabase = "{tmp_path / "s0pcm.sqlite"}"\ntimezone = "Europe/Amsterdam"\n'
        f'commit_interval = 0.3\n\n[modules.kast]\nport = "{tmp_path / "s0"}"\nmodel = 5\n'
        f'framing = "8N1"\n{meters}',
        encoding="utf-8",
    )
    return path


async def test_every_update_carries_the_values_the_store_gives(tmp_path: Path) -> None:
    """The seam: one subscription, every update with the module's live values, equal to the
    store's after faults, module restarts, a reading set elsewhere, a new constant, and a new
    logger on the same store."""
    config = load_config(_config(tmp_path))
    module = Module(interval=0.1, sources=[Source(steady(2.0 + n)) for n in range(5)], seed=4)
    emulator = PtyEmulator(module, link=tmp_path / "s0", tick=0.02)
    emu_task = asyncio.create_task(emulator.run())
    await emulator.ready.wait()
    daemon = Daemon(config)
    updates: list[Update] = []
    unsubscribe = daemon.subscribe(updates.append)
    task = asyncio.create_task(daemon.run())

    def agree() -> None:
        now = time.time()
        held = daemon.values(now)
        for meter in overridden(config.meters, daemon.store.state(METERS_KEY)):
            assert held[meter.key] == replace(
                truth(daemon.store, meter, now), rate=held[meter.key].rate
            )

    await asyncio.sleep(1.0)
    for fault in (Fault.RESTART, Fault.GARBAGE, Fault.SPIKE, Fault.DROP, Fault.CORRUPT):
        emulator.request(fault)
        await asyncio.sleep(0.5)
        agree()
    # A reading set by `s0pcm set-reading` in another process, and a constant from the dashboard.
    with open_store(config.logger.database, tz=TZ) as other:
        add_reading(other, config.meters[0], at=time.time(), reading=1234.5)
        other.set_state(METERS_KEY, {config.meters[2].key: {"pulses_per_unit": 2.0}})
        other.commit()
    daemon.load_settings()  # its look every few seconds
    await asyncio.sleep(0.5)
    agree()
    assert daemon.values()[config.meters[0].key].reading >= 1234.5
    emulator.request(Fault.RESTART)
    await asyncio.sleep(0.5)
    agree()
    daemon.stop()
    await task
    unsubscribe()
    seen = len(updates)
    assert seen > 30
    last = {v.key: v for u in updates for v in u.values}
    assert set(last) == {m.key for m in config.meters}
    with_pulses = [u for u in updates if u.pulses]
    assert all(len(u.values) == 5 for u in with_pulses)
    # A new logger on the same store starts from what the store says; with nobody
    # subscribed, its updates carry no values (a replay or an import works none out).
    again = Daemon(config)
    try:
        assert again.runners[0].values() == ()
        now = time.time()
        for meter in overridden(config.meters, again.store.state(METERS_KEY)):
            assert again.values(now)[meter.key] == truth(again.store, meter, now)
            assert again.values(now)[meter.key].pulses == last[meter.key].pulses
    finally:
        again.close()
    emulator.stop()
    await emu_task
    assert len(updates) == seen  # unsubscribed: nothing more


def test_the_first_day_has_no_yesterday_and_a_quiet_meter_says_since_when(
    tmp_path: Path,
) -> None:
    """Logging began this morning: "yesterday by this time" is no data (None), not 0; a meter
    keeps the slot of its last pulse, and when logging began."""
    with open_store(str(tmp_path / "s.sqlite"), tz=TZ) as store:
        snapshot = Snapshot(store, calendar=Calendar(TZ))
        snapshot.refresh([METER, WATER], NOON - 3 * 3600)
        assert snapshot.values(METER.key, NOON).since is None
        snapshot.add(METER.key, NOON - 3 * 3600 + 5, 2)  # 09:00:05, the first record
        snapshot.add(WATER.key, NOON - 3 * 3600 + 5, 0)
        snapshot.add(METER.key, NOON, 0)
        got = snapshot.values(METER.key, NOON)
        assert got.yesterday_same_time is None
        assert got.today == 0.002
        assert got.since == NOON - 3 * 3600
        assert got.last_pulse_at == NOON - 3 * 3600
        water = snapshot.values(WATER.key, NOON)
        assert water.since == NOON - 3 * 3600
        assert water.last_pulse_at is None  # logged, never a pulse: quiet, not unknown
