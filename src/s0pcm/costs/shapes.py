"""The documents of costs, declared once: the tariff document and the ``/api/costs`` answer.

Each is a :class:`msgspec.Struct`: the API decodes request bodies into it (types, bounds, unknown
and missing fields, each refusal naming the field), encodes answers from it, and generates its
OpenAPI schema from it. What a type cannot say (the periods cover the week once, tariffs of a
kind do not overlap, an ISO 4217 code, whole hours) :func:`~.tariffs.parse_tariffs` checks with
messages a person can act on; those rules appear here only as schema hints
(``extra_json_schema``), so a refusal names the rule, not a regular expression.

Classes are named as the OpenAPI components are; import the module (``shapes.Tariff``) where
the domain class of the same name lives.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from ..calendar import Resolution
from ..meters import Direction, Kind

__all__ = [
    "MAX_PERIODS",
    "MAX_TARIFFS",
    "CostBucket",
    "Costs",
    "KindCost",
    "Period",
    "Tariff",
    "Tariffs",
]

MAX_TARIFFS: Final = 200
MAX_PERIODS: Final = 50
#: Prices and fixed costs are at most this big (either sign for a price).
MAX_PRICE: Final = 1e9

Weekday = Annotated[int, Meta(ge=0, le=6)]
Money = Annotated[float, Meta(description="In the tariffs' currency (null: no tariff covers it)")]
Time = Annotated[float, Meta(description="Unix seconds")]


class Period(msgspec.Struct, forbid_unknown_fields=True):
    """A time-of-use period: its price applies from start to end on days."""

    name: Annotated[str, Meta(min_length=1, max_length=64)]
    days: Annotated[
        list[Weekday],
        Meta(
            min_length=1,
            max_length=7,
            description="Weekdays the period applies on, 0 = Monday",
            extra_json_schema={"uniqueItems": True},
        ),
    ]
    start: Annotated[str, Meta(extra_json_schema={"pattern": "^([01][0-9]|2[0-3]):00$"})]
    end: Annotated[
        str,
        Meta(
            description="Not after start: the period covers both ends of the day "
            "(23:00-07:00 is 00:00-07:00 and 23:00-24:00)",
            extra_json_schema={"pattern": "^([01][0-9]|2[0-4]):00$"},
        ),
    ]
    price: Annotated[float, Meta(ge=-MAX_PRICE, le=MAX_PRICE)]


class Tariff(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One kind's prices over a span of local dates (both inclusive)."""

    kind: Kind
    valid_from: date
    valid_to: Annotated[date, Meta(description="Last day (inclusive)")] | None = None
    fixed_per_day: Annotated[float, Meta(ge=0, le=MAX_PRICE)] = 0.0
    periods: Annotated[
        list[Period],
        Meta(
            min_length=1,
            max_length=MAX_PERIODS,
            description="Cover every hour of the week exactly once",
        ),
    ]
    direction: Annotated[
        Direction,
        Meta(
            description="production: a feed-in tariff, its price what a unit produced earns "
            "(the fixed charge is a cost all the same)"
        ),
    ] = Direction.CONSUMPTION


class Tariffs(msgspec.Struct, forbid_unknown_fields=True):
    """All tariffs, in one currency (``GET`` and ``PUT /api/tariffs``)."""

    currency: Annotated[
        str,
        Meta(
            description="An ISO 4217 code (EUR, GBP, CHF, USD, …)",
            extra_json_schema={"pattern": "^ *[A-Za-z]{3} *$"},
        ),
    ]
    tariffs: Annotated[list[Tariff], Meta(max_length=MAX_TARIFFS)]


class KindCost(msgspec.Struct, kw_only=True):
    """One kind's consumption in a bucket (in the kind's unit) and what it cost; with production
    meters of the kind also what they counted, the net and the feed-in compensation."""

    value: Annotated[
        float | None,
        Meta(description="Consumption; null: no data (before logging or after now), or no "
             "consumption meter of the kind"),
    ]  # fmt: skip
    unit: str
    energy_cost: Money | None
    fixed_cost: Money | None
    cost: Annotated[
        float | None, Meta(description="energy_cost + fixed_cost - compensation (null: unknown)")
    ]
    produced: Annotated[
        float | None,
        Meta(description="What the production meters counted (null: none, or no data)"),
    ] = None
    net: Annotated[
        float | None, Meta(description="value - produced: below zero, more made than used")
    ] = None
    compensation: Annotated[
        float | None, Meta(description="What produced earns by the feed-in tariffs (null: none)")
    ] = None


class CostBucket(msgspec.Struct):
    start: Time
    end: Time
    by_kind: dict[Kind, KindCost]
    total: Money | None


class Costs(msgspec.Struct):
    """``GET /api/costs``: per bucket and kind of the enabled meters."""

    currency: str
    resolution: Resolution
    buckets: list[CostBucket]
    since: Annotated[
        Time | None, Meta(description="When logging began, of any meter here (null: not yet)")
    ] = None
    now: Annotated[Time | None, Meta(description="The server's now: no data after it")] = None
