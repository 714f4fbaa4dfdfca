"""Tariffs as data: what a unit of each kind costs, when, and what a day costs regardless.

A tariff document (the API's ``GET /api/tariffs``, kept in the store as the state document
``_tariffs``)::

    {"currency": "EUR",
     "tariffs": [
       {"kind": "electricity", "valid_from": "2026-01-01", "valid_to": "2026-12-31",
        "fixed_per_day": 0.65,
        "periods": [
          {"name": "peak", "days": [0, 1, 2, 3, 4], "start": "07:00", "end": "23:00",
           "price": 0.31},
          {"name": "off-peak", "days": [0, 1, 2, 3, 4], "start": "23:00", "end": "07:00",
           "price": 0.24},
          {"name": "off-peak", "days": [5, 6], "start": "00:00", "end": "24:00", "price": 0.24}]}]}

* ``valid_from`` and ``valid_to`` are local dates, both inclusive (``valid_to`` null: open-ended);
  two tariffs of one kind may not share a day, gaps are allowed (no cost is known there).
* ``days`` are ISO weekdays counted from 0 = Monday; ``start``/``end`` are local clock times on
  whole hours (costs are computed per hour, from the store's hourly series), on the same day: a
  period whose end is not after its start covers both ends of each of its days, so
  ``23:00``-``07:00`` on Monday is Monday 00:00-07:00 and 23:00-24:00 (the nights as a
  weekday's tariff sheet lists them). The periods of a tariff cover every hour of the week
  exactly once.
* ``price`` is per unit of the kind's default unit (kWh, m³, GJ); ``fixed_per_day`` is charged
  per local day and shared out over the buckets of that day by their length (a 23-hour DST day's
  hour carries 1/23 of it).
* ``direction`` (default ``consumption``): ``production`` makes a feed-in tariff, whose price is
  what a unit the production meters of its kind count earns (the supplier's compensation for
  solar returned to the grid); its ``fixed_per_day`` is a cost all the same (a feed-in fee).
  Consumption and feed-in tariffs of a kind are apart: each may have its own dates.

Everything here is pure: validating a document and turning per-hour (or per-slot) consumption
into costs per bucket. Reading the store is the caller's business.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec

from ..calendar import Calendar
from ..errors import TariffError
from ..meters import Direction, Kind
from . import shapes
from .shapes import MAX_PERIODS, MAX_TARIFFS

__all__ = [
    "STATE_KEY",
    "BucketCost",
    "Period",
    "Tariff",
    "TariffError",
    "Tariffs",
    "bucket_costs",
    "covered_span",
    "parse_tariffs",
    "priced_by_day",
]

#: The store's state document holding the tariffs.
STATE_KEY: Final = "_tariffs"
DEFAULT_CURRENCY: Final = "EUR"
#: ISO 4217 currency codes in use (and a few recently withdrawn, for old tariffs): what the
#: browser's ``Intl.NumberFormat`` formats as money. Anything else would break the Costs page.
_ISO_4217: Final = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP
    ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR
    ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD
    MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR
    PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL
    THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF
    XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL
"""
CURRENCIES: Final = frozenset(_ISO_4217.split())
WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CLOCK: Final = re.compile(r"([01][0-9]|2[0-4]):([0-5][0-9])")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DAY: Final = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Period:
    """A time-of-use period: its price applies from ``start`` to ``end`` on ``days``."""

    name: str
    #: Weekdays the period applies on, 0 = Monday.
    days: tuple[int, ...]
    #: Local clock hours: ``start`` 0..23, ``end`` 1..24; ``end <= start``: both ends of the day.
    start: int
    end: int
    price: float

    def hours(self) -> Iterator[tuple[int, int]]:
        """The ``(weekday, hour)`` pairs of the week this period covers."""
        if self.end > self.start:
            hours = list(range(self.start, self.end))
        else:
            hours = [*range(self.start, 24), *range(0, self.end)]
        for day in self.days:
            for hour in hours:
                yield day, hour

    def document(self) -> shapes.Period:
        return shapes.Period(
            self.name, list(self.days), f"{self.start:02d}:00", f"{self.end:02d}:00", self.price
        )


@dataclass(frozen=True, slots=True)
class Tariff:
    """One kind's prices over a span of local dates."""

    kind: Kind
    valid_from: date
    #: Last day (inclusive); None: open-ended.
    valid_to: date | None
    fixed_per_day: float
    periods: tuple[Period, ...]
    direction: Direction = Direction.CONSUMPTION
    #: Price per ``weekday * 24 + hour``, filled from the periods.
    prices: tuple[float, ...] = field(default=(), compare=False, repr=False)
    #: Per weekday its one price, or None when it has more than one.
    flats: tuple[float | None, ...] = field(default=(), compare=False, repr=False)

    def applies(self, d: date) -> bool:
        return self.valid_from <= d and (self.valid_to is None or d <= self.valid_to)

    def price(self, weekday: int, hour: int) -> float:
        return self.prices[weekday * 24 + hour]

    def flat_price(self, weekday: int) -> float | None:
        """The price of the whole of ``weekday`` when it has one (then a day's consumption
        prices without its hours), else None."""
        return self.flats[weekday]

    def document(self) -> shapes.Tariff:
        return shapes.Tariff(
            kind=self.kind,
            valid_from=self.valid_from,
            valid_to=self.valid_to,
            fixed_per_day=self.fixed_per_day,
            periods=[p.document() for p in self.periods],
            direction=self.direction,
        )


@dataclass(frozen=True, slots=True)
class Tariffs:
    """All tariffs, in one currency."""

    currency: str = DEFAULT_CURRENCY
    tariffs: tuple[Tariff, ...] = ()

    def of(self, kind: Kind, direction: Direction = Direction.CONSUMPTION) -> tuple[Tariff, ...]:
        return tuple(t for t in self.tariffs if t.kind is kind and t.direction is direction)

    def at(
        self, kind: Kind, d: date, direction: Direction = Direction.CONSUMPTION
    ) -> Tariff | None:
        """The tariff of ``kind`` (and ``direction``) on local date ``d``, if any."""
        for t in self.tariffs:
            if t.kind is kind and t.direction is direction and t.applies(d):
                return t
        return None

    def document(self) -> shapes.Tariffs:
        """What ``GET /api/tariffs`` answers."""
        return shapes.Tariffs(self.currency, [t.document() for t in self.tariffs])

    def to_document(self) -> dict[str, object]:
        """The document as plain JSON values: what the store keeps as ``_tariffs``."""
        doc: dict[str, object] = msgspec.to_builtins(self.document())
        return doc


# --- validation ----------------------------------------------------------------------------------


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _object(value: object, where: str, known: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TariffError(where, f"must be an object, got {_type_name(value)}")
    for key in value:
        if key not in known:
            raise TariffError(
                f"{where}.{key}" if where else str(key),
                f"unknown field (known: {', '.join(known)})",
            )
    return value


def _number(value: object, where: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TariffError(where, f"must be a number, got {_type_name(value)}")
    number = float(value)
    if not math.isfinite(number) or abs(number) > 1e9:
        raise TariffError(where, f"must be a finite number of at most 1e9, got {value!r}")
    if minimum is not None and number < minimum:
        raise TariffError(where, f"must be at least {minimum:g}, got {value!r}")
    return number


def _string(value: object, where: str, *, most: int) -> str:
    if not isinstance(value, str):
        raise TariffError(where, f"must be a string, got {_type_name(value)}")
    text = value.strip()
    if not text or len(text) > most:
        raise TariffError(where, f"must be 1..{most} characters, got {value!r}")
    return text


def _date(value: object, where: str) -> date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise TariffError(where, f"must be a date YYYY-MM-DD, got {value!r}")
    try:
        d = date.fromisoformat(value)
    except ValueError:
        raise TariffError(where, f"is not a date: {value!r}") from None
    if not 2 <= d.year <= 9998:  # a day's local bounds must fit in a datetime in every zone
        raise TariffError(where, f"must lie between the years 2 and 9998, got {value!r}")
    return d


def _clock(value: object, where: str, *, end: bool) -> int:
    """A whole local clock hour ``HH:00`` (``24:00`` only as an end)."""
    m = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise TariffError(where, f'must be a local clock time "HH:MM", got {value!r}')
    hour, minute = int(m.group(1)), int(m.group(2))
    if minute:
        raise TariffError(
            where, f"must be a whole hour (costs are computed per hour), got {value!r}"
        )
    if hour == 24 and not end:
        raise TariffError(where, '"24:00" can only end a period')
    if hour == 0 and end:
        return 24
    return hour


def _period(value: object, where: str) -> Period:
    doc = _object(value, where, ("name", "days", "start", "end", "price"))
    for key in ("name", "days", "start", "end", "price"):
        if key not in doc:
            raise TariffError(f"{where}.{key}", "missing")
    name = _string(doc["name"], f"{where}.name", most=64)
    days = doc["days"]
    if not isinstance(days, list) or not days:
        raise TariffError(f"{where}.days", "must be a non-empty array of weekdays 0..6 (0 Monday)")
    for n, day in enumerate(days):
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            raise TariffError(
                f"{where}.days[{n}]", f"must be a weekday 0..6 (0 Monday), got {day!r}"
            )
    if len(set(days)) != len(days):
        raise TariffError(f"{where}.days", "names a weekday twice")
    start = _clock(doc["start"], f"{where}.start", end=False)
    stop = _clock(doc["end"], f"{where}.end", end=True)
    price = _number(doc["price"], f"{where}.price")
    return Period(name, tuple(days), start, stop, price)


def _tariff(value: object, where: str) -> Tariff:
    doc = _object(
        value, where, ("kind", "direction", "valid_from", "valid_to", "fixed_per_day", "periods")
    )
    for key in ("kind", "valid_from", "periods"):
        if key not in doc:
            raise TariffError(f"{where}.{key}", "missing")
    kinds = [k.value for k in Kind]
    if doc["kind"] not in kinds:
        raise TariffError(
            f"{where}.kind", f"must be one of {', '.join(kinds)}, got {doc['kind']!r}"
        )
    kind = Kind(doc["kind"])
    directions = [d.value for d in Direction]
    raw_direction = doc.get("direction", Direction.CONSUMPTION.value)
    if raw_direction not in directions:
        raise TariffError(
            f"{where}.direction",
            f"must be one of {', '.join(directions)}, got {raw_direction!r}",
        )
    direction = Direction(raw_direction)
    valid_from = _date(doc["valid_from"], f"{where}.valid_from")
    raw_to = doc.get("valid_to")  # absent or null: open-ended
    valid_to = None if raw_to is None else _date(raw_to, f"{where}.valid_to")
    if valid_to is not None and valid_to < valid_from:
        raise TariffError(f"{where}.valid_to", "is before valid_from")
    fixed = _number(doc.get("fixed_per_day", 0), f"{where}.fixed_per_day", minimum=0)
    raw_periods = doc["periods"]
    if not isinstance(raw_periods, list) or not 1 <= len(raw_periods) <= MAX_PERIODS:
        raise TariffError(f"{where}.periods", f"must be an array of 1..{MAX_PERIODS} periods")
    periods = tuple(_period(p, f"{where}.periods[{n}]") for n, p in enumerate(raw_periods))
    owner: list[int | None] = [None] * (7 * 24)
    for n, period in enumerate(periods):
        for day, hour in period.hours():
            slot = day * 24 + hour
            other = owner[slot]
            if other is not None:
                raise TariffError(
                    f"{where}.periods[{n}]",
                    f"overlaps periods[{other}] on {WEEKDAYS[day]} {hour:02d}:00",
                )
            owner[slot] = n
    for slot, who in enumerate(owner):
        if who is None:
            day, hour = divmod(slot, 24)
            raise TariffError(
                f"{where}.periods",
                f"{WEEKDAYS[day]} {hour:02d}:00-{hour + 1:02d}:00 is in no period "
                "(the periods must cover the whole week)",
            )
    prices = tuple(periods[n].price for n in owner if n is not None)
    days = [prices[d * 24 : d * 24 + 24] for d in range(7)]
    flats = tuple(day[0] if min(day) == max(day) else None for day in days)
    return Tariff(kind, valid_from, valid_to, fixed, periods, direction, prices, flats)


def parse_tariffs(doc: object, *, stored: bool = False) -> Tariffs:
    """Check a tariff document; raises :class:`TariffError` naming the offending field.

    ``stored``: a document already in the database (an older version took any code): any three
    letters pass as its currency, so its tariffs are not lost; new documents need ISO 4217."""
    top = _object(doc, "", ("currency", "tariffs"))
    for key in ("currency", "tariffs"):
        if key not in top:
            raise TariffError(key, "missing")
    currency = _string(top["currency"], "currency", most=16).strip().upper()
    known = re.fullmatch("[A-Z]{3}", currency) is not None if stored else currency in CURRENCIES
    if not known:
        raise TariffError("currency", "an ISO 4217 code such as EUR, GBP, CHF or USD")
    raw = top["tariffs"]
    if not isinstance(raw, list) or len(raw) > MAX_TARIFFS:
        raise TariffError("tariffs", f"must be an array of at most {MAX_TARIFFS} tariffs")
    tariffs = tuple(_tariff(t, f"tariffs[{n}]") for n, t in enumerate(raw))
    for n, t in enumerate(tariffs):
        for m, other in enumerate(tariffs[:n]):
            if other.kind is not t.kind or other.direction is not t.direction:
                continue
            first = max(t.valid_from, other.valid_from)
            last = min(d for d in (t.valid_to, other.valid_to, date.max) if d is not None)
            if first <= last:
                what = (
                    t.kind.value
                    if t.direction is Direction.CONSUMPTION
                    else (f"{t.kind.value} feed-in")
                )
                raise TariffError(
                    f"tariffs[{n}]",
                    f"{what} tariffs[{m}] and tariffs[{n}] both apply on {first}",
                )
    return Tariffs(currency, tariffs)


# --- costs ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BucketCost:
    """What a bucket cost: energy (consumption times the period's price) and its share of the
    fixed daily costs, in the tariffs' currency."""

    energy: float
    fixed: float

    @property
    def total(self) -> float:
        return self.energy + self.fixed


def covered_span(
    tariffs: Tariffs,
    kind: Kind,
    calendar: Calendar,
    direction: Direction = Direction.CONSUMPTION,
) -> tuple[float, float] | None:
    """The instants from the first day any tariff of ``kind`` applies to the end of the last
    (``inf`` when open-ended); None without a tariff. Consumption outside costs nothing known,
    so callers need not read it."""
    of_kind = tariffs.of(kind, direction)
    if not of_kind:
        return None
    first = min(t.valid_from for t in of_kind)
    ends = [t.valid_to for t in of_kind]
    end = (
        math.inf
        if any(d is None for d in ends)
        else float(calendar.day_start(max(d for d in ends if d is not None) + _DAY))
    )
    return float(calendar.day_start(first)), end


def priced_by_day(
    tariffs: Tariffs,
    kind: Kind,
    consumption: Iterable[tuple[float, float]],
    tz: ZoneInfo | Calendar,
    direction: Direction = Direction.CONSUMPTION,
) -> dict[date, float]:
    """Energy cost per local date of ``(start, value)`` hours (or slots), each priced by the
    tariff of its date and the period of its local weekday and hour; dates without a tariff are
    left out."""
    calendar = tz if isinstance(tz, Calendar) else Calendar(tz)
    out: dict[date, float] = {}
    for start, value in consumption:
        if not value:
            continue
        local = datetime.fromtimestamp(start, calendar.tz)
        d = local.date()
        t = tariffs.at(kind, d, direction)
        if t is not None:
            out[d] = out.get(d, 0.0) + value * t.price(local.weekday(), local.hour)
    return out


def bucket_costs(
    tariffs: Tariffs,
    kind: Kind,
    *,
    bounds: Sequence[float],
    consumption: Sequence[tuple[float, float]],
    tz: ZoneInfo | Calendar,
    fixed: bool = True,
    energy_by_day: Mapping[date, float] | None = None,
    until: float = math.inf,
    since: float = -math.inf,
    direction: Direction = Direction.CONSUMPTION,
) -> list[BucketCost | None]:
    """Costs per bucket ``[bounds[i], bounds[i + 1])``.

    ``consumption`` is ``(start, value)`` in the kind's default unit for sub-buckets that each
    lie within one bucket: local clock hours (the store's hourly series) or 10-second slots. Each
    is priced by the tariff of its local date and the period of its local weekday and hour, so a
    DST day's repeated hour is priced twice, its skipped hour not at all. Buckets made of whole
    local days may take their energy costs already priced per date (``energy_by_day``, see
    :func:`priced_by_day`) instead. ``fixed``: add each local day's fixed cost, shared out by
    overlap. Days that begin at or after ``until`` (the clock now) add no fixed cost yet: "this
    month" shows what has been charged so far, a day counting from its start; nor do days that
    end before ``since`` (logging began): no data is not a month of fixed charges. A bucket no
    tariff covers on any of its days is None (unknown, not free).
    """
    calendar = tz if isinstance(tz, Calendar) else Calendar(tz)
    count = len(bounds) - 1
    if count <= 0:
        return []
    of_kind = tariffs.of(kind, direction)
    energy = [0.0] * count
    fixed_share = [0.0] * count
    covered = [False] * count
    if not of_kind:
        return [None] * count
    by_date: dict[date, Tariff | None] = {}

    def tariff_on(d: date) -> Tariff | None:
        if d not in by_date:
            by_date[d] = tariffs.at(kind, d, direction)
        return by_date[d]

    i = 0
    for start, value in consumption:
        while i < count and bounds[i + 1] <= start:
            i += 1
        if i >= count:
            break
        if start < bounds[i] or not value:
            continue
        local = datetime.fromtimestamp(start, calendar.tz)
        t = tariff_on(local.date())
        if t is not None:
            energy[i] += value * t.price(local.weekday(), local.hour)

    for i in range(count):
        begin, end = bounds[i], bounds[i + 1]
        d = calendar.local_date(begin)
        while True:
            day_begin, day_end = calendar.day_start(d), calendar.day_start(d + _DAY)
            if day_begin >= end:
                break
            t = tariff_on(d)
            if energy_by_day is not None:
                energy[i] += energy_by_day.get(d, 0.0)
            if t is not None:
                covered[i] = True
                if fixed and t.fixed_per_day and day_begin < until and day_end > since:
                    overlap = min(end, day_end) - max(begin, day_begin)
                    fixed_share[i] += t.fixed_per_day * overlap / (day_end - day_begin)
            d += _DAY
    return [BucketCost(energy[i], fixed_share[i]) if covered[i] else None for i in range(count)]
