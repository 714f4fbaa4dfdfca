"""The API's documents, declared once: every answer and request body is a :class:`msgspec.Struct`.

A declaration here is what the handlers build (mypy checks every field), what request bodies
are decoded and validated into (:func:`~.params.decode_body`: types, bounds, unknown and missing
fields, each refusal naming the field), and what ``/api/openapi.json`` describes (its components
are generated from these classes, see :mod:`.openapi`). Field order is the order of the JSON.
Rules a type cannot say (a threshold command the module takes, a reading not in the future) stay
with the handlers; where the schema should still show them they are hints only
(``extra_json_schema``).

Classes are named as the OpenAPI components are; import the module (``shapes.Meter``) where the
domain class of the same name lives. msgspec takes +2.7 MB on import (pydantic +14.5 MB), which
the Pi's memory budget affords.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType
from starlette.responses import Response

from ..calendar import Resolution
from ..costs.shapes import CostBucket, Costs, KindCost, Period, Tariff, Tariffs
from ..events import EventKind
from ..meters import CONSTANT_MAX, CONSTANT_MIN, Direction, Kind

__all__ = [
    "COMPONENTS",
    "MAX_TOKEN_DAYS",
    "TIME_MAX",
    "TIME_MIN",
    "Error",
    "Event",
    "Health",
    "LiveMeter",
    "LiveUpdate",
    "LoginRequest",
    "LoginResult",
    "LogoutResult",
    "Meter",
    "MeterUpdate",
    "ModuleHealth",
    "Reading",
    "ReadingRequest",
    "ReadingResult",
    "Session",
    "ThresholdsRequest",
    "ThresholdsResult",
    "Token",
    "TokenRequest",
    "TokenResult",
    "answer",
    "encode",
]

#: Earliest and latest instants accepted (1970-01-01 to 9999-12-31 UTC).
TIME_MIN: Final = 0.0
TIME_MAX: Final = 253402300799.0
#: The longest expiry a token may be given, in days (ten years).
MAX_TOKEN_DAYS: Final = 3650

Time = Annotated[float, Meta(description="Unix seconds")]
Count = Annotated[int, Meta(ge=0)]
#: A meter's constant, in the bounds every other input of it has (see ``meters``).
PulsesPerUnit = Annotated[float, Meta(ge=CONSTANT_MIN, le=CONSTANT_MAX)]
#: Unix seconds, or ISO 8601 with an offset (checked by :func:`~.params.parse_time`).
TimeInput = Annotated[
    Annotated[float, Meta(ge=TIME_MIN, le=TIME_MAX)]
    | Annotated[str, Meta(extra_json_schema={"format": "date-time"})],
    Meta(description="Unix seconds, or ISO 8601 (RFC 3339) with an offset"),
]


class Error(msgspec.Struct):
    """Every refusal (4xx) and the rare internal error (500)."""

    error: Annotated[str, Meta(description="What is wrong, in a few words")]
    detail: Annotated[Any, Meta(description="More: the reason, the allowed values (any JSON)")]


# -- meters ---------------------------------------------------------------------------------------


class Meter(msgspec.Struct):
    """A meter's settings and its live values."""

    key: str
    name: str
    module: str
    register: Annotated[int, Meta(ge=1, le=5)]
    kind: Kind
    unit: str
    pulses_per_unit: Annotated[float, Meta(gt=0)]
    enabled: bool
    reading: Annotated[
        float,
        Meta(
            description="The display reading now: from the last anchor, else the pulses "
            "counted / pulses_per_unit"
        ),
    ]
    rate: Annotated[float, Meta(description="Live power or flow")] | None
    rate_unit: str
    today: Annotated[float, Meta(description="Consumption since local midnight")]
    yesterday_same_time: Annotated[
        float | None,
        Meta(
            description="Consumption yesterday from midnight to the same clock time (null: "
            "logging began after yesterday's midnight: nothing to compare with)"
        ),
    ]
    since: Annotated[
        Time | None, Meta(description="When logging of this meter began (null: not yet)")
    ] = None
    last_pulse_at: Annotated[
        Time | None,
        Meta(description="The last pulse within the last two days (null: none in that time)"),
    ] = None
    direction: Annotated[
        Direction,
        Meta(description="production: the meter counts what is made or returned (solar)"),
    ] = Direction.CONSUMPTION


class MeterUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """``PUT /api/meters/{key}``: the settings to change (absent: unchanged)."""

    name: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"\S")] | UnsetType = UNSET
    kind: Kind | UnsetType = UNSET
    pulses_per_unit: PulsesPerUnit | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    direction: Direction | UnsetType = UNSET


class Reading(msgspec.Struct):
    key: str
    at: Time
    reading: float
    unit: str


class ReadingRequest(msgspec.Struct, forbid_unknown_fields=True):
    reading: Annotated[float, Meta(ge=0, le=1e15)]
    at: TimeInput | UnsetType = UNSET
    replaced: Annotated[bool, Meta(description="A new physical meter from `at` on")] = False
    pulses_per_unit: (
        Annotated[
            float,
            Meta(
                ge=CONSTANT_MIN,
                le=CONSTANT_MAX,
                description="The new meter's constant (only with replaced)",
            ),
        ]
        | UnsetType
    ) = UNSET


class ReadingSet(msgspec.Struct):
    """A reading set by hand or configured (an anchor), oldest first."""

    at: Time
    kind: Literal["initial", "correction", "replacement"]
    reading: float
    pulses_per_unit: float
    undoable: Annotated[
        bool, Meta(description="A correction that keeps the constant: DELETE takes it back")
    ]


class ReadingResult(msgspec.Struct):
    key: str
    at: Time
    reading: float
    unit: str
    #: The anchor's kind (:class:`~s0pcm.store.AnchorKind`): the two a person sets.
    kind: Literal["correction", "replacement"]
    previous: float | None


#: Said of every number a bucket holds: null is "no data", which is not zero.
NO_DATA: Final = "null: no data (the bucket ends before logging began or starts after now)"


class Bucket(msgspec.Struct):
    start: Time
    end: Time
    pulses: Annotated[Count | None, Meta(description=NO_DATA)]
    value: Annotated[
        float | None, Meta(description=f"pulses / pulses_per_unit, in unit; {NO_DATA}")
    ]
    reading_start: Annotated[
        float | None, Meta(description=f"The reading at the bucket's start; {NO_DATA}")
    ]
    reading_end: Annotated[
        float | None, Meta(description=f"The reading at the bucket's end; {NO_DATA}")
    ]
    cost: Annotated[
        float | None, Meta(description="Energy cost (null: no tariff covers it, or no data)")
    ]
    base_load: Annotated[
        float | None,
        Meta(
            description="Electricity per day: the lowest average power of a whole night hour "
            "(00:00-06:00), in W: what stays on all night. Null otherwise."
        ),
    ] = None


class Consumption(msgspec.Struct):
    key: str
    unit: str
    resolution: Resolution
    buckets: list[Bucket]
    since: Annotated[
        Time | None, Meta(description="When logging of this meter began (null: not yet)")
    ] = None
    now: Annotated[Time | None, Meta(description="The server's now: no data after it")] = None


class Intervals(msgspec.Struct):
    key: str
    intervals: Annotated[
        # Pairs as arrays of two numbers: ``prefixItems`` (what a tuple becomes) trips the
        # schema checker of the API's fuzz test.
        list[Annotated[list[float], Meta(min_length=2, max_length=2)]],
        Meta(description="[slot start, pulses] of the 10 s slots with pulses"),
    ]


# -- status ---------------------------------------------------------------------------------------


class Counters(msgspec.Struct):
    """The module's ledger counters (:class:`~s0pcm.ledger.LedgerStats`)."""

    telegrams: Count
    headers: Count
    rejected: Count
    restarts: Count
    spikes: Count
    glitches: Count
    mismatches: Count
    gaps: Count
    unconfirmed: Count


class ModuleMeter(msgspec.Struct):
    key: str
    name: str
    register: int
    kind: Kind
    enabled: bool
    unit: str
    reading: float
    pulses: Count
    rate: float | None
    rate_unit: str


class ModuleHealth(msgspec.Struct):
    """One module of the health document (:func:`~s0pcm.logger.status.module_status`)."""

    name: str
    module: str
    port: str | None
    connected: bool
    since: Time | None
    last_record_at: Time | None
    last_telegram_at: Time | None
    module_id: str | None
    firmware: str | None
    thresholds: list[int] | None
    thresholds_pending: str | None
    last_problem: str | None
    connects: int
    disconnects: int
    rejected: Annotated[dict[str, int], Meta(description="Rejected lines by kind of reason")]
    watchdog_resets: int
    last_telegram_age: float | None
    counters: Counters
    meters: list[ModuleMeter]


class MqttLink(msgspec.Struct):
    """The MQTT link (:class:`~s0pcm.publish.mqtt.LinkStatus`); absent without ``[mqtt]``."""

    broker: str
    connected: bool = False
    since: Annotated[Time | None, Meta(description="When the link came up or went down")] = None
    last_publish: Annotated[
        Time | None, Meta(description="When the broker last acknowledged a message")
    ] = None
    last_error: Annotated[str | None, Meta(description="The last problem, in one line")] = None
    sent: Annotated[Count, Meta(description="Messages acknowledged since the logger started")] = 0
    failures: Annotated[Count, Meta(description="Failed connection tries in a row")] = 0
    outbox: Annotated[Count, Meta(description="Messages waiting to be sent")] = 0
    dropped: Annotated[Count, Meta(description="Events the full outbox dropped unsent, ever")] = 0


class Health(msgspec.Struct):
    """``GET /api/health`` and the live stream's ``health`` event (``s0pcm status --json``)."""

    at: Time
    live: Annotated[
        bool,
        Meta(description="true: from the logger in this process; false: as it last stored it"),
    ]
    modules: list[ModuleHealth]
    mqtt: MqttLink | None = None


class Event(msgspec.Struct):
    at: Time
    kind: EventKind
    module: str
    meter: str | None
    value: float | None
    detail: str


class PowerMeter(msgspec.Struct):
    key: str
    name: str
    kind: Kind
    rate_unit: str
    points: Annotated[
        list[Annotated[list[float | None], Meta(min_length=2, max_length=2)]],
        Meta(description="[time, rate] oldest first: per record where the logger runs here, "
             "else per five minutes from the store; null: not known"),
    ]  # fmt: skip
    direction: Direction = Direction.CONSUMPTION


class Power(msgspec.Struct):
    """``GET /api/power``: the live power and flow of the last hours, per enabled meter."""

    start: Time
    end: Time
    meters: list[PowerMeter]


class LiveMeter(msgspec.Struct):
    reading: float
    rate: float | None
    today: float
    last_pulse_at: Time | None = None


class LiveUpdate(msgspec.Struct):
    """The live stream's ``update`` event: one record's meters and events."""

    at: Time
    module: str
    meters: dict[str, LiveMeter]
    events: list[Event]


class ThresholdsRequest(msgspec.Struct, forbid_unknown_fields=True):
    command: Annotated[
        str,
        Meta(
            max_length=200,
            examples=["T2=40;"],
            description="Tx=y; per register x, y ms (the module's limits apply)",
            extra_json_schema={"pattern": r"^\s*T[1-5]=[0-9]{1,5}(;T[1-5]=[0-9]{1,5})*;?\s*$"},
        ),
    ]


class ThresholdsResult(msgspec.Struct):
    module: str
    command: str
    pending: Literal[True] = True


# -- sessions and tokens --------------------------------------------------------------------------


class Session(msgspec.Struct):
    logged_in: bool
    csrf: str | None
    public_read: bool
    password_set: bool
    timezone: Annotated[str, Meta(description="Days, hours and months are the logger's")]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, Meta(min_length=1, max_length=1024)]


class LoginResult(msgspec.Struct, kw_only=True):
    logged_in: Literal[True] = True
    csrf: str


class LogoutResult(msgspec.Struct):
    logged_in: Literal[False] = False


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"\S")]
    days: (
        Annotated[
            float,
            Meta(
                ge=1e-6,
                le=MAX_TOKEN_DAYS,
                description="It stops working this many days from now (absent: never)",
            ),
        ]
        | UnsetType
    ) = UNSET


class Token(msgspec.Struct, kw_only=True):
    id: Annotated[str, Meta(description="Names the token to revoke it; not the token")]
    name: str
    created: Time | None
    expires: Time | None
    expired: bool


class TokenResult(Token, kw_only=True):
    token: Annotated[str, Meta(description="The token itself: shown this once")]


#: Every document the OpenAPI components describe (and, through them, the ones they hold).
COMPONENTS: Final = (
    Error, Meter, MeterUpdate, Reading, ReadingRequest, ReadingResult, Consumption, Intervals,
    Costs, CostBucket, KindCost, Health, Event, Period, Tariff, Tariffs, Session, LoginRequest,
    LoginResult, LogoutResult, ThresholdsRequest, ThresholdsResult, TokenRequest, Token,
    TokenResult, Power, ReadingSet,
)  # fmt: skip

#: What a handler answers: one document, or a list of them.
Document = msgspec.Struct | Sequence[msgspec.Struct]


def encode(document: Document) -> bytes:
    """The JSON of ``document``: UTF-8, compact, in field order."""
    return msgspec.json.encode(document)


def answer(
    document: Document, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON answer of ``document``."""
    return Response(
        encode(document), status_code=status, headers=headers, media_type="application/json"
    )
