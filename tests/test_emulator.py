"""The emulator's module, driven in-process with explicit time, read by the real decoder."""

from __future__ import annotations

import pytest

from s0pcm.emulator import Fault, Line, Module, RegisterTruth, Source, Truth, household, steady
from s0pcm.ledger import Count, Ledger
from s0pcm.protocol import Decoder, Header, Model, Rejected, Telegram
from tests.helpers.agreement import assert_agree


def records(data: bytes, decoder: Decoder | None = None) -> list[Header | Telegram | Rejected]:
    return (decoder or Decoder()).feed(data)


def telegrams(recs: list[Header | Telegram | Rejected]) -> list[Telegram]:
    return [r for r in recs if isinstance(r, Telegram)]


def test_steady_rate_gives_exact_interval_counts_and_totals() -> None:
    m = Module(model=Model.S0PCM2, sources=[Source(steady(2.0)), Source(steady(0.25))])
    out = m.power_on(1000.0)
    assert isinstance(records(out[0].data)[0], Header)
    tgs = telegrams(records(m.output(1000.0 + 60)))
    assert len(tgs) == 6
    assert [t.registers[0].interval for t in tgs] == [20] * 6
    assert [t.registers[0].total for t in tgs] == [20, 40, 60, 80, 100, 120]
    assert tgs[-1].registers[1].total == 15  # 0.25/s: fractions carry over, none lost
    assert sum(t.registers[1].interval for t in tgs) == tgs[-1].registers[1].total


def test_source_carries_fractions_whatever_the_chunking() -> None:
    src = Source(steady(0.37))
    t, total = 0.0, 0
    for step in (0.3, 7.1, 0.01, 100.0, 892.59):
        total += src.pulses(t, t + step)
        t += step
    assert total == 370


def test_header_styles_and_old_firmware() -> None:
    plain = Module(module_id="8237").power_on(0.0)[0].data
    assert plain == b"/8237:S0 Pulse Counter V0.6 - 30/30/30/30/30ms\r\n"
    spaced = Module(module_id="8237", header_space=True).power_on(0.0)[0].data
    assert spaced.startswith(b"/8237: S0 Pulse Counter V0.6")
    old = Module(module_id="12", model=Model.S0PCM2, firmware="V0.4").power_on(0.0)[0].data
    assert old == b"/12:S0 Pulse Counter V0.4\r\n"
    header = records(old)[0]
    assert isinstance(header, Header)
    assert header.thresholds is None


def test_pulses_shorter_than_threshold_are_not_counted() -> None:
    m = Module(
        model=Model.S0PCM2,
        thresholds=[30, 60],
        sources=[Source(steady(1.0), pulse_ms=50), Source(steady(1.0), pulse_ms=50)],
    )
    m.power_on(0.0)
    last = telegrams(records(m.output(100.0)))[-1]
    assert last.registers[0].total == 100
    assert last.registers[1].total == 0
    assert m.truth.registers[1].generated == 100
    assert m.truth.registers[1].counted == 0


def test_pulse_rate_is_limited_by_pulse_length() -> None:
    # 50 ms pulses need 100 ms each with the gap: at most 10 per second are seen.
    m = Module(model=Model.S0PCM2, sources=[Source(steady(40.0)), Source(steady(0.0))])
    m.power_on(0.0)
    last = telegrams(records(m.output(10.0)))[-1]
    assert m.truth.registers[0].generated == 400
    assert 95 <= last.registers[0].total <= 101


def test_thresholds_only_in_window_and_shown_in_next_header() -> None:
    m = Module(model=Model.S0PCM5)
    m.power_on(0.0)
    m.receive(b"T2=40;", 5.0)
    m.receive(b"T3=50;", 10.5)  # too late: the window is 10 s
    assert m.thresholds == [30, 40, 30, 30, 30]
    m.output(20.0)
    header = records(m.inject(Fault.RESTART, 20.0)[0].data)[0]
    assert isinstance(header, Header)
    assert header.thresholds == (30, 40, 30, 30, 30)
    m.receive(b"T3=5", 21.0)
    m.receive(b"0;T9=3;T1=0;", 21.5)  # split command; bad register and value ignored
    assert m.thresholds == [30, 40, 50, 30, 30]


def test_restart_starts_new_totals_and_truth_sums_lives() -> None:
    m = Module(model=Model.S0PCM2, sources=[Source(steady(1.0)), Source(steady(0.0))])
    m.power_on(0.0)
    first = telegrams(records(m.output(55.0)))
    assert first[-1].registers[0].total == 50
    lines = m.inject(Fault.RESTART, 55.0)
    for line in lines:
        m.truth.deliver(line)
    second = telegrams(records(m.output(100.0)))
    assert second[0].registers[0].total == 10  # 10 s after the restart
    assert second[-1].registers[0].total == 40
    reg = m.truth.registers[0]
    assert reg.counted == 100
    assert reg.reported == 50 + 40  # the 5 pulses before the restart were never reported
    assert m.truth.restarts == 1


def test_unplug_loses_power_and_pulses_then_starts_up() -> None:
    m = Module(model=Model.S0PCM2, sources=[Source(steady(1.0)), Source(steady(0.0))])
    m.power_on(0.0)
    m.output(30.0)
    m.inject(Fault.UNPLUG, 30.0, duration=20.0)
    assert not m.port_present
    assert m.output(49.0) == b""
    recs = records(m.output(70.0))
    assert isinstance(recs[0], Header)
    assert telegrams(recs)[-1].registers[0].total == 20  # powered again at 50 s
    assert m.truth.registers[0].generated == 70
    assert m.truth.registers[0].counted == 50


def test_drop_keeps_counting_while_the_port_is_gone() -> None:
    m = Module(model=Model.S0PCM2, sources=[Source(steady(1.0)), Source(steady(0.0))])
    m.power_on(0.0)
    m.output(20.0)
    m.inject(Fault.DROP, 20.0, duration=25.0)
    assert m.output(44.0) == b""
    tgs = telegrams(records(m.output(50.0)))
    assert [t.registers[0].total for t in tgs] == [50]
    assert m.truth.registers[0].reported == 50


def test_stall_prints_nothing_but_the_total_goes_on() -> None:
    m = Module(model=Model.S0PCM2, sources=[Source(steady(1.0)), Source(steady(0.0))])
    m.power_on(0.0)
    m.output(10.0)
    m.inject(Fault.STALL, 10.0, duration=30.0)
    assert m.output(39.0) == b""
    tg = telegrams(records(m.output(40.0)))[0]
    assert tg.registers[0] == tg.registers[0].__class__(10, 40)


def test_spike_is_one_unrealistic_record_then_sane_again() -> None:
    m = Module(model=Model.S0PCM5, sources=[Source(steady(1.0)) for _ in range(5)], seed=3)
    m.power_on(0.0)
    m.output(10.0)
    m.inject(Fault.SPIKE, 10.0)
    spiked, after = telegrams(records(m.output(30.0)))
    jumps = [s.total - 20 for s in spiked.registers]
    assert sorted(jumps)[-1] >= 5000  # one register shows thousands of pulses in 10 s
    assert [r.total for r in after.registers] == [30] * 5
    assert [r.reported for r in m.truth.registers] == [30] * 5


@pytest.mark.parametrize(
    "fault", [Fault.GARBAGE, Fault.TRUNCATE, Fault.MERGE, Fault.NOISE, Fault.SPIKE]
)
def test_line_faults_agree_with_the_decoder(fault: Fault) -> None:
    m = Module(model=Model.S0PCM5, sources=[Source(steady(0.7)) for _ in range(5)], seed=11)
    m.truth.transcript = []
    decoder = Decoder()
    received: list[Header | Telegram | Rejected] = []
    for line in m.power_on(0.0):
        m.truth.deliver(line)
        received += decoder.feed(line.data)
    for n in range(1, 60):
        if n % 2:  # every other record, so merged records come in pairs
            m.inject(fault, n * 10.0 - 5)
        received += decoder.feed(m.output(n * 10.0))
    assert m.truth.faults[fault] == 30
    assert_agree(m.truth.transcript, received)
    rejected = sum(isinstance(r, Rejected) for r in received)
    if fault in (Fault.TRUNCATE, Fault.MERGE):
        assert rejected >= 25
    if fault in (Fault.NOISE, Fault.SPIKE):
        assert rejected == 0


def test_random_faults_are_reproducible_with_a_seed() -> None:
    def run(seed: int) -> bytes:
        m = Module(sources=[Source(steady(0.5)) for _ in range(5)], seed=seed)
        out = m.power_on(0.0)[0].data
        for n in range(1, 30):
            m.inject(list(Fault)[n % len(Fault)], n * 10.0 - 1)
            out += m.output(n * 10.0)
        return out

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_household_profile_is_plausible_and_deterministic() -> None:
    day = 86400.0
    start = 1_767_225_600.0  # 2026-01-01 00:00 UTC, a winter day
    per_day = {}
    for kind, ppu in (("electricity", 1000.0), ("gas", 100.0), ("water", 1.0)):
        src = Source(household(kind, pulses_per_unit=ppu, seed=1))
        per_day[kind] = src.pulses(start, start + day) / ppu
        again = Source(household(kind, pulses_per_unit=ppu, seed=1)).pulses(start, start + day)
        assert again == per_day[kind] * ppu
    assert 3 <= per_day["electricity"] <= 20  # kWh
    assert 2 <= per_day["gas"] <= 20  # m³ on a winter day
    assert 20 <= per_day["water"] <= 800  # litres
    with pytest.raises(ValueError, match="unknown profile"):
        household("steam", pulses_per_unit=1)


def test_a_solar_roof_makes_by_day_and_more_in_summer() -> None:
    day = 86400.0
    winter, summer = 1_767_225_600.0, 1_782_000_000.0  # 1 January, 21 June 2026 (UTC midnight)
    sun = household("solar", pulses_per_unit=1000.0, seed=1)
    kwh = {t: Source(sun).pulses(t, t + day) / 1000 for t in (winter, summer)}
    assert 0.3 <= kwh[winter] <= 8 < kwh[summer] <= 32
    assert sun(winter) == sun(summer) == 0.0  # nothing at night
    assert max(sun(summer + h * 3600) for h in range(24)) > 0


def test_a_lifes_altered_last_record_is_what_a_reader_can_count_at_most() -> None:
    """The truth's upper bound: what a life's last record reads when a digit of it was
    changed (nothing after it can say so), else the highest intact total."""
    truth = Truth([RegisterTruth(), RegisterTruth()])
    truth.deliver(Line(b"ID:1:I:10:M1:1:5:M2:0:7\r\n", 1, (5, 7)))
    truth.deliver(Line(b"ID:1:I:10:M1:1:16:M2:0:7\r\n", 1, (None, 7), True, (6, 7)))
    assert [r.reported for r in truth.registers] == [5, 7]
    assert [r.possible for r in truth.registers] == [16, 7]
    truth.deliver(Line(b"ID:1:I:10:M1:1:7:M2:0:7\r\n", 1, (7, 7)))  # an intact record after it
    assert [r.possible for r in truth.registers] == [7, 7]
    truth.deliver(Line(b"\xc9D:1:I:10:M1:0:7:M2:0:7\r\n", 1, (7, 7), True, (7, 7)))  # noise
    # A brown-out value the line also altered: the module's spike, not a reading.
    truth.deliver(Line(b"ID:1:I:10:M1:9:58916:M2:0:7\r\n", 1, (None, 7), True, (None, 7)))
    assert [r.possible for r in truth.registers] == [7, 7]
    truth.deliver(Line(b"ID:1:I:10:M1:0:7:M2", 1, (None, None), corrupt=True))  # cut: no record
    assert [r.possible for r in truth.registers] == [7, 7]


def test_a_sped_up_stall_lasts_whole_stated_intervals_and_costs_no_pulse() -> None:
    """Records 50 ms apart that say I:1: a stall of three of *those* intervals would make the
    next record look joined to the last (0.2 s later) while its counts cover 50 ms, and when a
    restart followed it the ledger disowned it (the soak's under-count). A stall lasts three
    stated intervals, as a module's skipped prints do, so the reader sees a gap."""
    m = Module(interval=0.05, sources=[Source(steady(r)) for r in (3, 0.4, 7, 1.5, 12)], seed=2)
    decoder, ledger = Decoder(), Ledger("m")
    counted = [0] * 5
    arrivals: list[float] = []

    def feed(at: float, data: bytes) -> None:
        for record in decoder.feed(data):
            arrivals.extend([at] if isinstance(record, Telegram) else [])
            for out in ledger.feed(at, record):
                if isinstance(out, Count):
                    counted[out.register - 1] += out.pulses

    feed(0.0, b"".join(line.data for line in m.power_on(0.0)))
    tick = 0
    while (tick := tick + 1) < 200:
        feed(tick / 100, m.output(tick / 100))
    m.inject(Fault.STALL, tick / 100)
    seen = len(arrivals)
    while len(arrivals) == seen:  # up to the first record after the stall
        feed((tick := tick + 1) / 100, m.output(tick / 100))
    assert arrivals[-1] - arrivals[-2] >= 3.0  # three stated intervals: the reader sees a gap
    m.inject(Fault.RESTART, tick / 100)  # and that record ends the module's life
    for _ in range(300):
        feed((tick := tick + 1) / 100, m.output(tick / 100))
    assert sum(counted) > 100
    assert counted == [r.reported for r in m.truth.registers]
