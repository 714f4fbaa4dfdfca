"""The rate estimator: precision against the information limit, steps, decay, and invariants.

Everything runs on explicit times. The figures below are measured by the tests (run with -s to
see them) and asserted as measured, so that a regression fails.

A steady 100 W load at 1000 imp/kWh (a pulse every 36 s), the logger starting at a random phase;
relative error of the reading, 600 phases:

    after watching   p95      max
    2 min            9.5 %    9.5 %
    3 min            2.9 %    2.9 %
    5 min            0.6 %    0.6 %

Loads drawn from 95-105 W (periods not commensurate with the 10 s interval), 600 draws:

    2 min            7.9 %   11.8 %
    3 min            3.6 %    5.9 %
    5 min            1.6 %    2.5 %

Within 5 % at 2 minutes for every phase is beyond the information in the counts. After 12
records the periods that reproduce every count seen span, depending on the phase, 35-40 s at
best and 30-40 s or 35-45 s at worst: no reading is within 5 % of all of them, so a rule that
read 100 W within 5 % at every phase would be further off for another load with exactly the
same counts. About three phases in four read within 5 % at 2 minutes; every phase from 3 on.

Steps and silence, 100 random phases (p95 / max after the change):

    100 -> 2000 W   reads >= 1500 W          18 s / 25 s
                    within 5 % for good      38 s / 47 s
    2000 -> 100 W   within 5 % for good     174 s / 208 s
    100 W -> off    reads 0                 304 s / 309 s (below 1/(time since the last
                                                           pulse) meanwhile)
"""

from __future__ import annotations

import bisect
import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s0pcm.emulator import Module, RateFn, Source, steady
from s0pcm.meters import Kind, Meter
from s0pcm.protocol import Decoder, Model, Telegram
from s0pcm.rate import RateEstimator

INTERVAL = 10.0
#: Pulses per second per watt at 1000 imp/kWh.
PER_WATT = 1 / 3600


def electricity() -> Meter:
    return Meter("m.1", "mains", "m", 1, Kind.ELECTRICITY, "kWh", 1000.0)


# --- a steady load, counted exactly ---------------------------------------------------------------


def periodic_readings(period: float, phase: float, at: tuple[float, ...]) -> list[float | None]:
    """Readings at times ``at`` of a logger that starts at 0 and sees pulses phase + n*period."""
    est = RateEstimator()
    seen, out, t = 0, [], 0.0
    for when in sorted(at):
        while t < when:
            t += INTERVAL
            total = math.floor((t - phase) / period) + 1 if t >= phase else 0
            est.update(t, total - seen)
            seen = total
        out.append(est.rate(t))
    return out


def error_table(
    draws: list[tuple[float, float]], at: tuple[float, ...]
) -> dict[float, tuple[float, float]]:
    """Per time: 95th percentile and maximum of the relative error over (period, phase) draws."""
    errors: dict[float, list[float]] = {h: [] for h in at}
    for period, phase in draws:
        for h, r in zip(at, periodic_readings(period, phase, at), strict=True):
            assert r is not None
            errors[h].append(abs(r * period - 1))
    table = {}
    for h, e in errors.items():
        e.sort()
        table[h] = (e[math.ceil(0.95 * len(e)) - 1], e[-1])
    print(
        "\n".join(
            f"{h:5.0f} s  p95 {p * 100:5.2f} %  max {m * 100:5.2f} %" for h, (p, m) in table.items()
        )
    )
    return table


MINUTES = (120.0, 180.0, 300.0)


def test_steady_100w_error_over_random_phases() -> None:
    rng = random.Random(1)
    period = 36.0  # 100 W at 1000 imp/kWh
    table = error_table([(period, rng.uniform(0, period)) for _ in range(600)], MINUTES)
    # Measured: 9.5/9.5 %, 2.9/2.9 %, 0.6/0.6 % (p95/max); see the module docstring.
    assert table[120.0][0] <= 0.096
    assert table[120.0][1] <= 0.096
    assert table[180.0][1] <= 0.03
    assert table[300.0][1] <= 0.0065


def test_loads_near_100w_error_over_random_phases() -> None:
    rng = random.Random(2)
    draws = []
    for _ in range(600):
        period = 3600 / rng.uniform(95.0, 105.0)
        draws.append((period, rng.uniform(0, period)))
    table = error_table(draws, MINUTES)
    # Measured: 7.9/11.8 %, 3.6/5.9 %, 1.6/2.5 % (p95/max).
    assert table[120.0][0] <= 0.09
    assert table[180.0][0] <= 0.04
    assert table[300.0][0] <= 0.02
    assert table[300.0][1] <= 0.03


def test_fraction_within_5_percent_at_2_minutes() -> None:
    rng = random.Random(3)
    ok = 0
    for _ in range(300):
        (r,) = periodic_readings(36.0, rng.uniform(0, 36.0), (120.0,))
        assert r is not None
        ok += abs(r * 36.0 - 1) <= 0.05
    assert ok / 300 >= 0.74  # measured 76 %


# --- steps and silence, counted exactly ----------------------------------------------------------


def meter_counts(changes: list[tuple[float, float]], until: float, energy: float) -> list[int]:
    """Counts per interval up to ``until`` of an integrating meter: from each (time, rate) on it
    runs at that many pulses per second, starting with ``energy`` (a fraction of a pulse) stored.
    """
    times: list[float] = []
    for (t0, rate), (t1, _) in itertools.pairwise([*changes, (until, 0.0)]):
        n = math.floor(energy + rate * (t1 - t0))
        times += [t0 + (k - energy) / rate for k in range(1, n + 1)]
        energy += rate * (t1 - t0) - n
    ends = [k * INTERVAL for k in range(1, int(until / INTERVAL) + 1)]
    return [bisect.bisect_right(times, t) - bisect.bisect_right(times, t - INTERVAL) for t in ends]


def percentiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return values[math.ceil(0.95 * len(values)) - 1], values[-1]


def settled(readings: list[tuple[float, float]], start: float, end: float, watts: float) -> float:
    """Time from ``start`` to the first record from which all to ``end`` are within 5 %."""
    bad = [t for t, w in readings if start <= t < end and abs(w / watts - 1) > 0.05]
    return max(bad, default=start - INTERVAL) + INTERVAL - start


def test_step_response_and_silence_over_random_phases() -> None:
    rng = random.Random(4)
    shows, settles_up, settles_down, zero = [], [], [], []
    for _ in range(100):
        up, down = 600 + rng.uniform(0, 10), 900 + rng.uniform(0, 10)
        stop = 1500 + rng.uniform(0, 10)
        watts = [(0.0, 100.0), (up, 2000.0), (down, 100.0), (stop, 0.0)]
        changes = [(t, w * PER_WATT) for t, w in watts]
        est = RateEstimator()
        readings = []
        for k, n in enumerate(meter_counts(changes, stop + 400, rng.random()), start=1):
            est.update(k * INTERVAL, n)
            if k * INTERVAL >= 300:
                readings.append((k * INTERVAL, in_watts(est.rate(k * INTERVAL))))

        shows.append(min(t for t, w in readings if t > up and w >= 0.75 * 2000) - up)
        settles_up.append(settled(readings, up, down, 2000))
        settles_down.append(settled(readings, down, stop, 100))
        zero.append(min(t for t, w in readings if t > stop and w == 0) - stop)
        # After the stop, never above one pulse per time since the last pulse could have come
        # (the end of the interval of the stop, less the jitter allowance on both ends).
        last = math.ceil(stop / INTERVAL) * INTERVAL + 2 * est.jitter
        assert all(w <= 3600 / (t - last) for t, w in readings if t > last)
    table = {
        "100 -> 2000 W, reads >= 1500 W": percentiles(shows),
        "100 -> 2000 W, within 5 % for good": percentiles(settles_up),
        "2000 -> 100 W, within 5 % for good": percentiles(settles_down),
        "100 W -> 0, reads 0": percentiles(zero),
    }
    print("\n".join(f"{k}: p95 {p:.0f} s, max {m:.0f} s" for k, (p, m) in table.items()))
    # Measured (p95/max, s): 18/25, 38/47, 174/208, 304/309.
    assert table["100 -> 2000 W, reads >= 1500 W"][1] <= 30
    assert table["100 -> 2000 W, within 5 % for good"][0] <= 40
    assert table["2000 -> 100 W, within 5 % for good"][0] <= 180
    assert table["100 W -> 0, reads 0"][1] <= 310


# --- through the emulator and the decoder ---------------------------------------------------------


def emulate(
    rate: RateFn,
    until: float,
    *,
    watch: float = 0.0,
    tick: float = 1.0,
) -> list[tuple[float, float | None]]:
    """Run a module from time 0 to ``until``; a logger reads it from ``watch`` on.

    Returns (record time, reading) per record. The module is advanced every ``tick`` seconds, so
    a change of rate takes effect to within a tick.
    """
    module = Module(
        model=Model.S0PCM2, interval=INTERVAL, sources=[Source(rate), Source(steady(0))]
    )
    decoder = Decoder()
    decoder.feed(b"".join(line.data for line in module.power_on(0.0)))
    est = RateEstimator()
    out: list[tuple[float, float | None]] = []
    n = 0
    while n * tick < until:
        n += 1
        t = n * tick
        for rec in decoder.feed(module.output(t)):
            if isinstance(rec, Telegram) and t > watch:
                est.update(t, rec.registers[0].interval)
                out.append((t, est.rate(t)))
    return out


def switched_on(rate: float, at: float) -> RateFn:
    """``rate`` pulses per second from ``at`` on."""
    return lambda t: rate if t >= at else 0.0


def steps(*changes: tuple[float, float]) -> RateFn:
    """Watts from each (time, watts) on."""

    def rate(t: float) -> float:
        watts = 0.0
        for when, w in changes:
            if t >= when:
                watts = w
        return watts * PER_WATT

    return rate


def in_watts(reading: float | None) -> float:
    assert reading is not None
    return reading * electricity().rate_factor()


@pytest.mark.parametrize("on", [0.0, 7.0, 13.0, 22.0, 31.0])
def test_emulated_100w_reads_100w(on: float) -> None:
    rows = emulate(switched_on(100 * PER_WATT, on), 60 + 1800, watch=60.0)
    for t, r in rows:
        watched = t - 60
        if watched >= 120:
            assert in_watts(r) == pytest.approx(100, rel=0.10)
        if watched >= 180:
            assert in_watts(r) == pytest.approx(100, rel=0.03)
        if watched >= 300:
            assert in_watts(r) == pytest.approx(100, rel=0.007)


@pytest.mark.parametrize("at", [601.0, 604.0, 607.0, 609.0])
def test_emulated_steps_are_followed(at: float) -> None:
    up, down = at, at + 300
    rows = emulate(steps((0, 100.0), (up, 2000.0), (down, 100.0)), down + 600)
    after_up = [(t - up, in_watts(r)) for t, r in rows if up <= t < down]
    # The first record after the switch counts part of an interval; the next shows the kettle,
    # no later than 20 s after the switch.
    assert all(w == pytest.approx(2000, rel=0.12) for s, w in after_up if s > INTERVAL)
    assert all(w == pytest.approx(2000, rel=0.05) for s, w in after_up if s > 2 * INTERVAL)
    after_down = [(t - down, in_watts(r)) for t, r in rows if t >= down]
    assert all(w <= 400 for s, w in after_down if s >= 30)
    assert all(w == pytest.approx(100, rel=0.05) for s, w in after_down if s >= 240)


@pytest.mark.parametrize(("watts", "stop"), [(100.0, 601.0), (100.0, 607.0), (2000.0, 604.0)])
def test_emulated_reading_decays_to_zero_when_pulses_stop(watts: float, stop: float) -> None:
    rows = emulate(steps((0, watts), (stop, 0.0)), stop + 600)
    after = [(t - stop, in_watts(r)) for t, r in rows if t > stop]
    # Never above what one pulse per (time since the stop, less the last interval) allows.
    for since, w in after:
        if since > INTERVAL + 1:
            assert w <= 3600 / (since - INTERVAL - 1)
    assert all(w == 0 for since, w in after if since >= 310)
    assert any(w > 0 for since, w in after if since >= 240)  # no sooner than the timeout


def test_emulated_gas_and_water_flows() -> None:
    gas = Meter("m.2", "gas", "m", 2, Kind.GAS, "m³", 100.0)
    rows = emulate(switched_on(0.5 * 100 / 3600, 3.0), 60 + 1800, watch=60.0)
    for t, r in rows:
        if t - 60 >= 300:
            assert r is not None
            assert r * gas.rate_factor() == pytest.approx(0.5, rel=0.05)
    water = Meter("m.3", "water", "m", 3, Kind.WATER, "L", 1.0)
    for lpm in (6.0, 60.0):  # 0.1 and 1 pulse per second
        rows = emulate(switched_on(lpm / 60, 3.0), 60 + 600, watch=60.0)
        for t, r in rows:
            if t - 60 >= 30:
                assert r is not None
                assert r * water.rate_factor() == pytest.approx(lpm, rel=0.05)


def test_high_rate_steps_within_two_records() -> None:
    # 1, 2, then 0.5 pulse per second (3600 W = 1 pulse/s).
    changes = ((0.0, 3600.0), (403.0, 7200.0), (705.0, 1800.0), (1000.0, 0.0))
    rows = emulate(steps(*changes), 1000)
    for (start, watts), (end, _) in itertools.pairwise(changes):
        for t, r in rows:
            if start + 2 * INTERVAL <= t <= end:
                assert in_watts(r) == pytest.approx(watts, rel=0.05), t


# --- slow meters, gaps, holes --------------------------------------------------------------------


def test_slow_gas_meter_holds_between_pulses() -> None:
    # 0.02 m³/h at 100 imp/m³: a pulse every 30 minutes; the timeout stretches to 3 periods.
    est = RateEstimator()
    period, phase = 1800.0, 1234.5
    seen = 0
    for k in range(1, 8 * 360 + 1):
        t = k * INTERVAL
        total = math.floor((t - phase) / period) + 1 if t >= phase else 0
        est.update(t, total - seen)
        seen = total
        r = est.rate(t)
        if t >= 3 * period + phase:
            assert r is not None
            assert r * period == pytest.approx(1, rel=0.05)
    # Silence: 1/(time since the last pulse) once that exceeds the period, 0 at one hour.
    last = phase + (seen - 1) * period
    assert est.rate(last + 3599) is not None
    assert est.rate(last + 3601 + INTERVAL) == 0


def test_lost_records_spread_over_their_span() -> None:
    def total(t: float) -> int:  # pulses at 5 + 36 n in (0, t]
        return math.floor((t - 5.0) / 36.0) + 1 if t >= 5.0 else 0

    full, gappy = RateEstimator(), RateEstimator()
    held = 0.0
    for k in range(1, 61):
        t = k * INTERVAL
        full.update(t, total(t) - total(t - INTERVAL))
        if k % 4 != 2:  # every fourth record is lost: the next one brings its pulses and span
            gappy.update(t, total(t) - total(held), span=t - held)
            held = t
    for est in (full, gappy):
        r = est.rate(600.0)
        assert r is not None
        assert r * 36 == pytest.approx(1, rel=0.01)


def test_hole_and_clock_jump_start_afresh() -> None:
    est = RateEstimator()
    for k in range(1, 31):
        est.update(k * INTERVAL, 1 if k % 3 == 0 else 0)  # a pulse every 30 s
    assert est.rate(300.0) == pytest.approx(1 / 30, rel=0.05)
    # A hole of unknown pulses (the span starts long after the last record), then the clock
    # jumps back: each time the window restarts, and the reading stays sane and then recovers.
    est.update(1000.0, 0, span=INTERVAL)
    r = est.rate(1000.0)
    assert r is not None
    assert 0 < r <= 1 / 30 * 1.05
    for start in (1000.0, 500.0):
        for k in range(1, 31):
            est.update(start + k * INTERVAL, 1 if k % 3 == 0 else 0)
        assert est.rate(start + 300) == pytest.approx(1 / 30, rel=0.05)


def test_records_read_together_share_their_span() -> None:
    together, apart = RateEstimator(), RateEstimator()
    held = 0
    for k in range(1, 41):
        t, n = k * INTERVAL, 6 if k % 2 else 5  # 0.55 pulse/s
        apart.update(t, n)
        if k % 4 == 3:
            held = n  # read late, together with the next record: both get its time
        elif k % 4 == 0:
            together.update(t, held)
            together.update(t, n)
        else:
            together.update(t, n)
    for est in (together, apart):
        assert est.rate(400.0) == pytest.approx(0.55, rel=0.001)


def test_none_zero_and_bad_input() -> None:
    est = RateEstimator()
    assert est.rate(0.0) is None
    est.update(10.0, 0)
    est.update(20.0, 1)
    assert est.rate(20.0) is None  # one pulse says nothing about the rate
    assert est.rate(20.0 + 299) is None
    assert est.rate(20.0 + 300) == 0  # nothing more for the timeout
    est.update(40.0, 1)
    assert est.rate(40.0) == pytest.approx(1 / 20, rel=0.5)
    quiet = RateEstimator()
    for k in range(1, 31):
        quiet.update(k * INTERVAL, 0)
        assert quiet.rate(k * INTERVAL) == (None if k < 30 else 0)
    with pytest.raises(ValueError, match="bad record"):
        est.update(50.0, -1)
    with pytest.raises(ValueError, match="bad record"):
        est.update(50.0, 1, span=0)
    with pytest.raises(ValueError, match="bad record"):
        est.update(math.nan, 1)
    with pytest.raises(ValueError, match="options"):
        RateEstimator(interval=0)
    est.reset()
    assert est.rate(60.0) is None


# --- invariants ----------------------------------------------------------------------------------

TIMEOUT = 300.0
counts = st.one_of(st.just(0), st.integers(0, 3), st.integers(0, 500))
steps_ = st.tuples(st.floats(0.5, 400.0), counts, st.floats(0.0, 1000.0))


@settings(max_examples=150, deadline=None)
@given(st.lists(steps_, min_size=1, max_size=60), st.floats(-1e9, 2e9))
def test_readings_are_sane_and_none_or_zero_only_as_documented(
    records: list[tuple[float, int, float]], t0: float
) -> None:
    est = RateEstimator()
    t, seen = t0, 0
    quiet = t0 + records[0][0] - INTERVAL  # no pulse known since: a span before the first record
    timed_out = False  # a timeout was seen at a record
    since_timeout = 0  # pulses since
    for dt, pulses, ahead in records:
        t += dt
        est.update(t, pulses)
        seen += pulses
        since_timeout += pulses
        if pulses:
            quiet = t
        elif t - quiet >= TIMEOUT:
            timed_out, since_timeout = True, 0
        for now in (t, t + ahead):
            r = est.rate(now)
            expect_none = seen < 2 and not timed_out and now - quiet < TIMEOUT
            assert (r is None) == expect_none
            if r is None:
                continue
            assert math.isfinite(r)
            assert r >= 0
            if r == 0:
                assert now - quiet >= TIMEOUT or (timed_out and since_timeout <= 1)
            if not pulses and seen and t - quiet > 2 * est.jitter:
                # Decays like 1 / (time since the last pulse).
                assert r <= 1 / (t - quiet - 2 * est.jitter) * (1 + 1e-9)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-50.0, 400.0), counts, st.none() | st.floats(0.001, 1000.0)),
        min_size=1,
        max_size=40,
    )
)
def test_any_input_gives_a_finite_non_negative_reading(
    records: list[tuple[float, int, float | None]],
) -> None:
    est = RateEstimator()
    t = 1.7e9
    for dt, pulses, span in records:
        t += dt
        est.update(t, pulses, span=span)
        r = est.rate(t)
        assert r is None or (math.isfinite(r) and r >= 0)
