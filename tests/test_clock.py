"""Time on a computer without a real-time clock: steps of the wall clock, and a clock that is
clearly wrong at start-up. In-process, with the wall and monotonic clocks given explicitly;
tests/test_faketime.py does the same to real processes under Debian's libfaketime."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from s0pcm.config import load_config
from s0pcm.emulator import Fault, Module, Source, steady
from s0pcm.events import EventKind
from s0pcm.link.events import Received
from s0pcm.logger.clock import BUILD_TIME, STEP_SECONDS, Timekeeper, format_step
from s0pcm.logger.daemon import Daemon
from s0pcm.protocol import Decoder
from tests.helpers.logger import write_config

DAY = 86400.0


class Clocks:
    """True time, the monotonic clock (true time) and a wall clock ``offset`` from it."""

    def __init__(self, start: float) -> None:
        self.true = start
        self.offset = 0.0

    def wall(self) -> float:
        return self.true + self.offset

    def monotonic(self) -> float:
        return self.true


class Rig:
    """A module and a daemon (its runner fed directly, as its link would feed it)."""

    def __init__(self, tmp_path: Path, clocks: Clocks, module: Module | None = None) -> None:
        self.config = load_config(write_config(tmp_path, commit_interval=60))
        self.clocks = clocks
        self.module = module or Module(
            interval=10.0, sources=[Source(steady(r)) for r in (0.8, 0.1, 2.5, 0.3, 4.0)], seed=3
        )
        self.decoder = Decoder()
        self.daemon: Daemon | None = None

    def history(self, seconds: float) -> None:
        """A first logger sees the module start and counts ``seconds`` on a right clock."""
        self.start()
        self.deliver(self.module.power_on(self.clocks.true))
        self.run(seconds)
        assert self.stored() == self.reported()
        self.stop()

    def start(self) -> Daemon:
        self.daemon = Daemon(self.config, clock=self.clocks.wall, monotonic=self.clocks.monotonic)
        self.daemon.recover()
        return self.daemon

    def stop(self) -> None:
        assert self.daemon is not None
        self.daemon.commit()
        self.daemon.close()
        self.daemon = None

    def deliver(self, lines: list) -> None:  # type: ignore[type-arg]
        assert self.daemon is not None
        runner = self.daemon.runners[0]
        for line in lines:
            self.module.truth.deliver(line)
            for record in self.decoder.feed(line.data):
                runner._on_link(Received(at=self.clocks.wall(), record=record))

    def run(self, seconds: float) -> None:
        end = self.clocks.true + seconds
        while self.clocks.true < end:
            self.clocks.true = min(end, self.clocks.true + 1.0)
            self.deliver(self.module.advance(self.clocks.true))

    def reported(self) -> int:
        return sum(r.reported for r in self.module.truth.registers)

    def stored(self, start: float = -math.inf, end: float = math.inf) -> int:
        assert self.daemon is not None
        store = self.daemon.store
        return sum(store.pulses(m.key, start, end) for m in self.config.meters)

    def kinds(self) -> list[EventKind]:
        assert self.daemon is not None
        return [e.kind for e in self.daemon.store.events(limit=10_000)]

    def clock_events(self) -> list[str]:
        assert self.daemon is not None
        events = self.daemon.store.events(kinds=[EventKind.CLOCK], limit=100)
        return [e.detail for e in reversed(events)]


def test_timekeeper_sees_steps_not_drift() -> None:
    clocks = Clocks(BUILD_TIME + 10 * DAY)
    keeper = Timekeeper(wall=clocks.wall, monotonic=clocks.monotonic)
    for _ in range(100):  # a slew: far below a step between two looks
        clocks.true += 10
        clocks.offset += 0.005
        assert keeper.step() is None
    clocks.offset += 334 * DAY
    assert keeper.step() == pytest.approx(334 * DAY)
    assert keeper.step() is None
    clocks.offset -= STEP_SECONDS * 2
    assert keeper.step() == pytest.approx(-STEP_SECONDS * 2)
    assert format_step(334 * DAY) == "+334 d"
    assert format_step(-20) == "-20 s"
    assert format_step(-600) == "-10 min"
    assert format_step(2.5 * 3600) == "+2.5 h"


def test_wrong_clock_at_start_up_stamps_nothing_until_ntp_steps_it(tmp_path: Path) -> None:
    """A Pi boots 30 days behind (the clock of its last image), NTP steps it two minutes later:
    the records of those two minutes wait, then land where they belong."""
    t0 = time.time()
    clocks = Clocks(t0)
    rig = Rig(tmp_path, clocks)
    rig.history(300)
    clocks.offset = -30 * DAY  # the reboot: the wall clock is a month behind
    daemon = rig.start()
    rig.run(120)
    assert daemon.runners[0].waiting  # nothing stamped in last month
    assert rig.stored(-math.inf, t0) == 0
    clocks.offset = 0.0  # NTP
    rig.run(120)
    assert not daemon.runners[0].waiting
    assert rig.stored() == rig.reported()
    assert rig.stored(t0, clocks.true + 10) == rig.reported()  # every pulse on its own time
    assert rig.clock_events() == ["clock stepped by +30 d"]
    assert EventKind.SPIKE not in rig.kinds()
    assert EventKind.GAP not in rig.kinds()


def test_records_waiting_for_the_clock_survive_a_crash(tmp_path: Path) -> None:
    """The journal keeps what waits: a logger that dies while the clock is wrong loses nothing;
    the next one, with a right clock, stamps the records from the last good moment on."""
    t0 = time.time()
    clocks = Clocks(t0)
    rig = Rig(tmp_path, clocks)
    rig.history(300)
    clocks.offset = -365 * DAY
    daemon = rig.start()
    rig.run(100)
    daemon.commit()  # a commit while records wait must keep them in the journal
    daemon.store.close()
    daemon.journal.close()  # "killed"
    clocks.offset = 0.0
    rig.start()
    rig.run(60)
    assert rig.stored() == rig.reported()
    assert rig.stored(t0, clocks.true + 10) == rig.reported()
    assert any("while the clock was" in e for e in rig.clock_events())


@pytest.mark.parametrize("model_restart", [False, True], ids=["steady", "restart-while-behind"])
def test_steps_back_give_no_spike_and_lose_nothing(tmp_path: Path, model_restart: bool) -> None:
    """Steps back of 20 s, 10 min and 2 days while busy registers count (and a module restart
    while the clock is behind): counts equal the truth, no spike, no mismatch, and the pulses
    after each step are stamped by the clock after it."""
    t0 = time.time()
    clocks = Clocks(t0)
    rig = Rig(tmp_path, clocks)
    rig.start()
    rig.deliver(rig.module.power_on(t0))
    rig.run(120)
    for step in (-20.0, -600.0, -2 * DAY):
        clocks.offset += step
        rig.run(10)
        if model_restart:
            rig.deliver(rig.module.inject(Fault.RESTART, clocks.true))
        rig.run(110)
    before_last = rig.reported()
    rig.run(300)
    rig.stop()
    rig.start()
    assert rig.stored() == rig.reported()
    kinds = rig.kinds()
    assert EventKind.SPIKE not in kinds
    assert EventKind.MISMATCH not in kinds
    assert sorted(rig.clock_events()) == [
        "clock stepped by -10 min",
        "clock stepped by -2 d",
        "clock stepped by -20 s",
    ]
    # After the last step, the pulses are on the day the clock says now (two days back).
    wall_end = clocks.wall()
    assert rig.stored(wall_end - 300 - 15, wall_end + 15) >= rig.reported() - before_last


def test_records_wait_while_the_system_says_the_clock_is_not_synchronised(
    tmp_path: Path,
) -> None:
    """Just after boot the clock is an hour fast but after the stored history, so only the
    time service's word says it is wrong: records wait for its first synchronisation (a step
    back of an hour) and land on their true times, with one clock event."""
    t0 = time.time()
    clocks = Clocks(t0)
    rig = Rig(tmp_path, clocks)
    rig.history(300)
    synced = [False]
    clocks.offset = 3600.0
    rig.daemon = Daemon(
        rig.config, clock=clocks.wall, monotonic=clocks.monotonic, unsynced=lambda: not synced[0]
    )
    rig.daemon.recover()
    rig.run(120)
    assert rig.daemon.runners[0].waiting
    assert rig.stored(clocks.true + 60, math.inf) == 0  # nothing stamped an hour ahead
    clocks.offset, synced[0] = 0.0, True  # NTP's first synchronisation steps it back
    rig.run(60)
    assert not rig.daemon.runners[0].waiting
    assert rig.stored() == rig.reported()
    assert rig.stored(clocks.true + 1, math.inf) == 0
    assert rig.clock_events() == ["clock stepped by -1 h"]
    assert EventKind.SPIKE not in rig.kinds()


def test_unsynchronised_asks_the_kernel_only_where_a_time_service_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real adjtimex(2): this machine's kernel answer, read with and without a time service's
    mark and inside and past the grace after boot."""
    import ctypes

    from s0pcm.logger import clock

    state = ctypes.CDLL(None, use_errno=True).adjtimex(ctypes.create_string_buffer(512))
    monkeypatch.setattr(clock, "TIME_SERVICES", (str(tmp_path / "timesync"),))
    monkeypatch.setattr(clock, "SYNC_GRACE", 1e12)
    assert clock.unsynchronised() is False  # no time service: nothing will synchronise it
    (tmp_path / "timesync").mkdir()
    assert clock.unsynchronised() is (state == 5)  # TIME_ERROR: not synchronised
    monkeypatch.setattr(clock, "SYNC_GRACE", 0.0)
    assert clock.unsynchronised() is False  # long after boot: the clock is what there is


def test_a_process_held_up_between_its_clock_reads_sees_no_step() -> None:
    """Once seen under load: a logger held up for seconds between reading the wall clock and
    the monotonic clock reported a step that never happened ("clock stepped by +4 s")."""
    true = [1_800_000_000.0]
    stall = [0.0]

    def wall() -> float:
        now = true[0]
        true[0] += stall[0]  # the process is held up right after this read
        stall[0] = 0.0
        return now

    def monotonic() -> float:
        return true[0] - 1_700_000_000.0

    keeper = Timekeeper(wall=wall, monotonic=monotonic)
    for look in range(6):
        true[0] += 10.0
        stall[0] = 4.0 if look % 2 else 0.0
        assert keeper.step() is None
