"""Tariffs: validation that names the field, and costs per bucket from hourly (and slot) data."""

from __future__ import annotations

import copy
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from s0pcm.calendar import Calendar, Resolution
from s0pcm.costs.tariffs import (
    BucketCost,
    Period,
    TariffError,
    Tariffs,
    bucket_costs,
    covered_span,
    parse_tariffs,
    priced_by_day,
)
from s0pcm.meters import Kind
from s0pcm.store import open_store

AMS = ZoneInfo("Europe/Amsterdam")
CAL = Calendar(AMS)


def local(y: int, m: int, d: int, h: int = 0) -> float:
    return datetime(y, m, d, h, tzinfo=AMS).timestamp()


def peak_offpeak(peak: float, off: float, *, fixed: float = 0.0, **span: Any) -> dict[str, Any]:
    """Electricity: peak Monday to Friday 07:00-23:00, off-peak otherwise."""
    return {
        "kind": "electricity",
        "valid_from": span.get("valid_from", "2026-01-01"),
        "valid_to": span.get("valid_to"),
        "fixed_per_day": fixed,
        "direction": span.get("direction", "consumption"),
        "periods": [
            {"name": "peak", "days": [0, 1, 2, 3, 4], "start": "07:00", "end": "23:00",
             "price": peak},
            {"name": "off-peak", "days": [0, 1, 2, 3, 4], "start": "23:00", "end": "07:00",
             "price": off},
            {"name": "off-peak", "days": [5, 6], "start": "00:00", "end": "24:00",
             "price": off},
        ],
    }  # fmt: skip


def flat(kind: str, price: float, *, fixed: float = 0.0, **span: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "valid_from": span.get("valid_from", "2026-01-01"),
        "valid_to": span.get("valid_to"),
        "fixed_per_day": fixed,
        "direction": span.get("direction", "consumption"),
        "periods": [
            {"name": "all", "days": list(range(7)), "start": "00:00", "end": "24:00",
             "price": price}
        ],
    }  # fmt: skip


Consumption = list[tuple[float, float]]


def of(*tariffs: dict[str, Any]) -> Tariffs:
    """The tariffs, in euros."""
    return parse_tariffs({"currency": "EUR", "tariffs": list(tariffs)})


def hours(start: float, end: float, value: float = 1.0) -> tuple[list[float], Consumption]:
    """Local hour bounds of [start, end) and ``value`` consumed in each hour."""
    bounds = [float(b) for b in CAL.buckets(Resolution.HOUR, start, end)]
    return bounds, [(b, value) for b in bounds[:-1]]


# -- validation ---------------------------------------------------------------------------------


def test_a_document_round_trips() -> None:
    doc = {"currency": "EUR", "tariffs": [peak_offpeak(0.3, 0.2, fixed=0.5), flat("gas", 1.2)]}
    tariffs = parse_tariffs(doc)
    assert tariffs.to_document() == doc
    assert parse_tariffs(tariffs.to_document()) == tariffs
    assert parse_tariffs({"currency": "EUR", "tariffs": []}) == Tariffs("EUR", ())
    midnight = flat("gas", 1.2)
    midnight["periods"][0]["end"] = "00:00"  # the same as 24:00
    assert of(midnight) == parse_tariffs({"currency": "EUR", "tariffs": [flat("gas", 1.2)]})


def test_periods_cover_the_week_with_nights_on_their_own_day() -> None:
    tariff = of(peak_offpeak(0.3, 0.2)).tariffs[0]
    assert tariff.price(0, 6) == 0.2  # Monday 06:00
    assert tariff.price(0, 7) == 0.3
    assert tariff.price(4, 22) == 0.3  # Friday 22:00
    assert tariff.price(4, 23) == 0.2
    assert tariff.price(5, 12) == 0.2  # Saturday noon
    night = Period("night", (2,), 22, 6, 0.1)
    assert sorted(night.hours()) == [(2, h) for h in (0, 1, 2, 3, 4, 5, 22, 23)]
    assert len(list(Period("day", (0,), 5, 5, 0.1).hours())) == 24


def _broken(change: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"currency": "EUR", "tariffs": [peak_offpeak(0.3, 0.2)]}
    change(doc)
    return doc


def _set(path: str, value: Any) -> Any:
    def change(doc: dict[str, Any]) -> None:
        target: Any = doc
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        last = keys[-1]
        if value is KeyError:
            del target[last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (_set("currency", ""), "currency", "1..16 characters"),
        (_set("currency", KeyError), "currency", "missing"),
        (_set("tariffs", KeyError), "tariffs", "missing"),
        (_set("tariffs", {}), "tariffs", "array"),
        (_set("extra", 1), "extra", "unknown field"),
        (_set("tariffs.0.kind", "steam"), "tariffs[0].kind", "one of electricity"),
        (_set("tariffs.0.kind", KeyError), "tariffs[0].kind", "missing"),
        (_set("tariffs.0.valid_from", "2026-02-30"), "tariffs[0].valid_from", "not a date"),
        (_set("tariffs.0.valid_from", "1.1.2026"), "tariffs[0].valid_from", "YYYY-MM-DD"),
        (_set("tariffs.0.valid_to", "2025-12-31"), "tariffs[0].valid_to", "before valid_from"),
        (_set("tariffs.0.fixed_per_day", -1), "tariffs[0].fixed_per_day", "at least 0"),
        (_set("tariffs.0.fixed_per_day", True), "tariffs[0].fixed_per_day", "a number"),
        (_set("tariffs.0.periods", []), "tariffs[0].periods", "1..50 periods"),
        (_set("tariffs.0.periods.0.price", "0.3"), "tariffs[0].periods[0].price", "a number"),
        (_set("tariffs.0.periods.0.price", float("nan")), "tariffs[0].periods[0].price",
         "finite"),
        (_set("tariffs.0.periods.0.start", "07:30"), "tariffs[0].periods[0].start",
         "whole hour"),
        (_set("tariffs.0.periods.0.start", "24:00"), "tariffs[0].periods[0].start",
         "can only end"),
        (_set("tariffs.0.periods.0.end", "7"), "tariffs[0].periods[0].end", '"HH:MM"'),
        (_set("tariffs.0.periods.1.days", [0, 0]), "tariffs[0].periods[1].days", "twice"),
        (_set("tariffs.0.periods.1.days.4", 7), "tariffs[0].periods[1].days[4]", "0..6"),
        (_set("tariffs.0.periods.1.name", "  "), "tariffs[0].periods[1].name", "characters"),
        (_set("tariffs.0.periods.2.days", [5]), "tariffs[0].periods",
         "Sunday 00:00-01:00 is in no period"),
        (_set("tariffs.0.periods.2.days", [4, 5, 6]), "tariffs[0].periods[2]",
         "overlaps periods[1] on Friday 00:00"),
    ],
)  # fmt: skip
def test_bad_documents_name_the_field(change: Any, field: str, message: str) -> None:
    with pytest.raises(TariffError) as caught:
        parse_tariffs(_broken(change))
    assert caught.value.field == field
    assert message in caught.value.message


def test_tariffs_of_one_kind_may_not_share_a_day() -> None:
    doc: dict[str, Any] = {
        "currency": "EUR",
        "tariffs": [
            peak_offpeak(0.3, 0.2, valid_to="2026-03-31"),
            flat("gas", 1.0),  # another kind: no conflict
            peak_offpeak(0.4, 0.25, valid_from="2026-03-31"),
        ],
    }
    with pytest.raises(
        TariffError, match="tariffs\\[0\\] and tariffs\\[2\\] both apply on 2026-03-31"
    ):
        parse_tariffs(doc)
    doc["tariffs"][2]["valid_from"] = "2026-04-01"
    tariffs = parse_tariffs(doc)
    assert tariffs.at(Kind.ELECTRICITY, date(2026, 3, 31)) is tariffs.tariffs[0]
    assert tariffs.at(Kind.ELECTRICITY, date(2026, 4, 1)) is tariffs.tariffs[2]
    assert tariffs.at(Kind.ELECTRICITY, date(2025, 12, 31)) is None
    assert tariffs.at(Kind.WATER, date(2026, 4, 1)) is None


# -- costs --------------------------------------------------------------------------------------


def test_a_weekday_by_the_hour() -> None:
    tariffs = of(peak_offpeak(0.30, 0.20, fixed=2.4))
    day = local(2026, 1, 14)  # a Wednesday
    bounds, used = hours(day, day + 86400, value=2.0)
    costs = bucket_costs(tariffs, Kind.ELECTRICITY, bounds=bounds, consumption=used, tz=AMS)
    assert len(costs) == 24
    assert all(c is not None and c.fixed == pytest.approx(0.1) for c in costs)
    assert costs[6] == BucketCost(pytest.approx(0.4), pytest.approx(0.1))  # type: ignore[arg-type]
    assert costs[7] is not None
    assert costs[7].energy == pytest.approx(0.6)
    day_cost = bucket_costs(
        tariffs, Kind.ELECTRICITY, bounds=[day, day + 86400], consumption=used, tz=AMS
    )
    assert day_cost[0] is not None
    assert day_cost[0].energy == pytest.approx(2.0 * (16 * 0.30 + 8 * 0.20))
    assert day_cost[0].fixed == pytest.approx(2.4)
    assert day_cost[0].total == pytest.approx(2.4 + 2.0 * (16 * 0.30 + 8 * 0.20))


def _sunday_tariff() -> Tariffs:
    """Sunday: 1.00 from 00:00 to 03:00, 0.10 after; 2.30 a day."""
    tariff = {
        "kind": "electricity",
        "valid_from": "2026-01-01",
        "fixed_per_day": 2.3,
        "periods": [
            {"name": "week", "days": [0, 1, 2, 3, 4, 5], "start": "00:00", "end": "24:00",
             "price": 0.5},
            {"name": "early", "days": [6], "start": "00:00", "end": "03:00", "price": 1.0},
            {"name": "late", "days": [6], "start": "03:00", "end": "24:00", "price": 0.1},
        ],
    }  # fmt: skip
    return of(tariff)


def test_spring_forward_day_has_23_priced_hours_and_shares_the_fixed_cost_by_23() -> None:
    tariffs = _sunday_tariff()
    day, next_day = local(2026, 3, 29), local(2026, 3, 30)
    bounds, used = hours(day, next_day)
    assert len(used) == 23  # 02:00 does not exist
    costs = bucket_costs(tariffs, Kind.ELECTRICITY, bounds=bounds, consumption=used, tz=AMS)
    assert [c.fixed for c in costs if c] == pytest.approx([0.1] * 23)
    assert [c.energy for c in costs if c][:3] == pytest.approx([1.0, 1.0, 0.1])  # 00, 01, 03
    whole = bucket_costs(
        tariffs, Kind.ELECTRICITY, bounds=[day, next_day], consumption=used, tz=AMS
    )[0]
    assert whole is not None
    assert whole.energy == pytest.approx(2 * 1.0 + 21 * 0.1)
    assert whole.fixed == pytest.approx(2.3)


def test_fall_back_day_prices_the_repeated_hour_twice() -> None:
    tariffs = _sunday_tariff()
    day, next_day = local(2026, 10, 25), local(2026, 10, 26)
    bounds, used = hours(day, next_day)
    assert len(used) == 25
    whole = bucket_costs(
        tariffs, Kind.ELECTRICITY, bounds=[day, next_day], consumption=used, tz=AMS
    )[0]
    assert whole is not None
    assert whole.energy == pytest.approx(4 * 1.0 + 21 * 0.1)  # 00, 01, 02, 02 early
    costs = bucket_costs(tariffs, Kind.ELECTRICITY, bounds=bounds, consumption=used, tz=AMS)
    assert sum(c.fixed for c in costs if c) == pytest.approx(2.3)
    assert costs[0] is not None
    assert costs[0].fixed == pytest.approx(2.3 / 25)


def test_a_tariff_change_mid_month() -> None:
    doc = {
        "currency": "EUR",
        "tariffs": [
            peak_offpeak(0.30, 0.20, fixed=1.0, valid_to="2026-01-15"),
            peak_offpeak(0.40, 0.25, fixed=2.0, valid_from="2026-01-16"),
        ],
    }
    tariffs = parse_tariffs(doc)
    month, next_month = local(2026, 1, 1), local(2026, 2, 1)
    _, used = hours(month, next_month)
    cost = bucket_costs(
        tariffs, Kind.ELECTRICITY, bounds=[month, next_month], consumption=used, tz=AMS
    )[0]
    expected = 0.0
    for start, value in used:
        t = datetime.fromtimestamp(start, AMS)
        peak = t.weekday() < 5 and 7 <= t.hour < 23
        old = t.day <= 15
        expected += value * ((0.30 if peak else 0.20) if old else (0.40 if peak else 0.25))
    assert cost is not None
    assert cost.energy == pytest.approx(expected)
    assert cost.fixed == pytest.approx(15 * 1.0 + 16 * 2.0)
    # Weekly buckets across the change share both tariffs' fixed costs by their days.
    weeks = [float(b) for b in CAL.buckets(Resolution.WEEK, local(2026, 1, 12), local(2026, 1, 19))]
    week = bucket_costs(tariffs, Kind.ELECTRICITY, bounds=weeks, consumption=[], tz=AMS)
    assert [w.fixed for w in week if w] == [pytest.approx(4 * 1.0 + 3 * 2.0)]


def test_fixed_costs_count_only_days_begun() -> None:
    """ "This month" on the 10th at noon: ten days' fixed costs (today's whole), not 31."""
    tariffs = of(flat("gas", 1.0, fixed=2.0))
    month, next_month = local(2026, 1, 1), local(2026, 2, 1)
    now = local(2026, 1, 10, 12)
    so_far = bucket_costs(
        tariffs, Kind.GAS, bounds=[month, next_month], consumption=[], tz=AMS, until=now
    )[0]
    assert so_far == BucketCost(0.0, pytest.approx(10 * 2.0))  # type: ignore[arg-type]
    later = bucket_costs(
        tariffs, Kind.GAS, bounds=[next_month, local(2026, 3, 1)], consumption=[], tz=AMS,
        until=now,
    )  # fmt: skip
    assert later == [BucketCost(0.0, 0.0)]  # a tariff, nothing charged yet


def test_no_tariff_is_unknown_not_free_and_part_cover_counts_the_covered_part() -> None:
    tariffs = of(flat("gas", 1.0, fixed=1.0, valid_from="2026-01-16"))
    month, next_month = local(2026, 1, 1), local(2026, 2, 1)
    _, used = hours(month, next_month)
    before = bucket_costs(
        tariffs, Kind.GAS, bounds=[local(2025, 12, 1), month], consumption=[], tz=AMS
    )
    assert before == [None]
    water = bucket_costs(tariffs, Kind.WATER, bounds=[month, next_month], consumption=used, tz=AMS)
    assert water == [None]
    cost = bucket_costs(tariffs, Kind.GAS, bounds=[month, next_month], consumption=used, tz=AMS)[0]
    assert cost == BucketCost(pytest.approx(16 * 24.0), pytest.approx(16.0))  # type: ignore[arg-type]
    span = covered_span(tariffs, Kind.GAS, CAL)
    assert span == (local(2026, 1, 16), float("inf"))
    assert covered_span(tariffs, Kind.WATER, CAL) is None


def test_slots_are_priced_by_their_hour_and_get_a_slot_of_the_fixed_cost() -> None:
    tariffs = of(peak_offpeak(0.30, 0.20, fixed=8.64))
    start = local(2026, 1, 14, 6) + 3580  # Wednesday 06:59:40, two slots before the peak
    bounds = [start + 10 * i for i in range(5)]
    used = [(b, 1.0) for b in bounds[:-1]]
    costs = bucket_costs(tariffs, Kind.ELECTRICITY, bounds=bounds, consumption=used, tz=AMS)
    assert [c.energy for c in costs if c] == pytest.approx([0.2, 0.2, 0.3, 0.3])
    assert [c.fixed for c in costs if c] == pytest.approx([0.001] * 4)


def test_costs_from_the_stores_hourly_series_on_a_dst_day(tmp_path: Path) -> None:
    """The store's hourly series of the spring-forward day feeds the costs directly."""
    tariffs = _sunday_tariff()
    day, next_day = local(2026, 3, 29), local(2026, 3, 30)
    with open_store(str(tmp_path / "t.sqlite"), tz=AMS) as store:
        for hour in range(int(day) // 3600, int(next_day) // 3600):
            store.add_hour("e", hour * 3600, [1] * 360)  # 360 Wh = 0.36 kWh an hour
        series = store.series("e", day, next_day, Resolution.HOUR)
    bounds = [float(b) for b in CAL.buckets(Resolution.HOUR, day, next_day)]
    assert [t for t, _ in series] == bounds[:-1]
    used = [(t, pulses / 1000) for t, pulses in series]
    whole = bucket_costs(
        tariffs, Kind.ELECTRICITY, bounds=[day, next_day], consumption=used, tz=AMS
    )[0]
    assert whole is not None
    assert whole.energy == pytest.approx(0.36 * (2 * 1.0 + 21 * 0.1))


def test_documents_are_not_changed_by_parsing() -> None:
    doc = {"currency": "EUR", "tariffs": [peak_offpeak(0.3, 0.2)]}
    kept = copy.deepcopy(doc)
    parse_tariffs(doc)
    assert doc == kept


def test_flat_days_and_prices_per_day() -> None:
    tariffs = of(peak_offpeak(0.30, 0.20), flat("gas", 1.5))
    electricity, gas = tariffs.tariffs
    assert electricity.flat_price(0) is None  # Monday has two prices
    assert electricity.flat_price(6) == 0.20  # Sunday is off-peak all day
    assert gas.flat_price(2) == 1.5
    day = local(2026, 1, 14)  # Wednesday
    _, used = hours(day, day + 2 * 86400)
    by_day = priced_by_day(tariffs, Kind.ELECTRICITY, used, AMS)
    assert by_day == {
        date(2026, 1, 14): pytest.approx(16 * 0.30 + 8 * 0.20),
        date(2026, 1, 15): pytest.approx(16 * 0.30 + 8 * 0.20),
    }
    # Whole-day buckets take their energy from the days: the same as pricing the hours.
    days = [day, day + 86400, day + 2 * 86400]
    from_days = bucket_costs(
        tariffs, Kind.ELECTRICITY, bounds=days, consumption=(), tz=AMS, energy_by_day=by_day
    )
    from_hours = bucket_costs(tariffs, Kind.ELECTRICITY, bounds=days, consumption=used, tz=AMS)
    assert from_days == from_hours
    assert priced_by_day(tariffs, Kind.WATER, used, AMS) == {}
