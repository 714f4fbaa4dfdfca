"""The OpenAPI 3.1 document of the API, written as data next to the handlers it describes.

A schemathesis run in the tests generates requests from this document and checks every answer
against it (status codes, content types, response schemas), so it has to say exactly what the
handlers do. ``GET /api/openapi.json`` serves it; :mod:`.docs` renders the reference page.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Final

from ..calendar import Resolution
from ..events import EventKind
from ..meters import Kind
from .params import MAX_SPAN, TIME_MAX, TIME_MIN

__all__ = ["openapi_document"]

Schema = dict[str, Any]

KINDS: Final = [k.value for k in Kind]
RESOLUTIONS: Final = [r.value for r in Resolution]
EVENT_KINDS: Final = [k.value for k in EventKind]


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], *, required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


NUMBER: Final[Schema] = {"type": "number"}
INTEGER: Final[Schema] = {"type": "integer"}
STRING: Final[Schema] = {"type": "string"}
BOOLEAN: Final[Schema] = {"type": "boolean"}
TIME: Final[Schema] = {"type": "number", "description": "Unix seconds"}
NULLABLE_TIME: Final[Schema] = _nullable(TIME)
TIME_INPUT: Final[Schema] = {
    "anyOf": [
        {"type": "number", "minimum": TIME_MIN, "maximum": TIME_MAX},
        {"type": "string", "format": "date-time"},
    ],
    "description": "Unix seconds, or ISO 8601 (RFC 3339) with an offset",
}

SCHEMAS: Final[dict[str, Schema]] = {
    "Error": _object(
        {
            "error": {"type": "string", "description": "What is wrong, in a few words"},
            "detail": {"description": "More: the reason, the allowed values (any JSON)"},
        }
    ),
    "Meter": _object(
        {
            "key": STRING,
            "name": STRING,
            "module": STRING,
            "register": {"type": "integer", "minimum": 1, "maximum": 5},
            "kind": {"enum": KINDS},
            "unit": STRING,
            "pulses_per_unit": {"type": "number", "exclusiveMinimum": 0},
            "enabled": BOOLEAN,
            "reading": {
                "type": "number",
                "description": "The display reading now: from the last anchor, else the pulses "
                "counted / pulses_per_unit",
            },
            "rate": _nullable({"type": "number", "description": "Live power or flow"}),
            "rate_unit": STRING,
            "today": {"type": "number", "description": "Consumption since local midnight"},
            "yesterday_same_time": {
                "type": "number",
                "description": "Consumption yesterday from midnight to the same clock time",
            },
        }
    ),
    "MeterUpdate": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"},
            "kind": {"enum": KINDS},
            "pulses_per_unit": {"type": "number", "minimum": 1e-6, "maximum": 1e9},
            "enabled": BOOLEAN,
        },
        "additionalProperties": False,
    },
    "Reading": _object({"key": STRING, "at": TIME, "reading": NUMBER, "unit": STRING}),
    "ReadingRequest": {
        "type": "object",
        "properties": {
            "reading": {"type": "number", "minimum": 0, "maximum": 1e15},
            "at": TIME_INPUT,
            "replaced": {"type": "boolean", "description": "A new physical meter from `at` on"},
            "pulses_per_unit": {
                "type": "number",
                "minimum": 1e-6,
                "maximum": 1e9,
                "description": "The new meter's constant (only with replaced)",
            },
        },
        "required": ["reading"],
        "additionalProperties": False,
    },
    "ReadingResult": _object(
        {
            "key": STRING,
            "at": TIME,
            "reading": NUMBER,
            "unit": STRING,
            "kind": {"enum": ["correction", "replacement"]},
            "previous": _nullable(NUMBER),
        }
    ),
    "Bucket": _object(
        {
            "start": TIME,
            "end": TIME,
            "pulses": {"type": "integer", "minimum": 0},
            "value": {"type": "number", "description": "pulses / pulses_per_unit, in unit"},
            "reading_start": {
                "type": "number",
                "description": "The reading at the bucket's start",
            },
            "reading_end": {"type": "number", "description": "The reading at the bucket's end"},
            "cost": _nullable(
                {"type": "number", "description": "Energy cost (null: no tariff covers it)"}
            ),
        }
    ),
    "Consumption": _object(
        {
            "key": STRING,
            "unit": STRING,
            "resolution": {"enum": RESOLUTIONS},
            "buckets": {"type": "array", "items": _ref("Bucket")},
        }
    ),
    "Intervals": _object(
        {
            "key": STRING,
            "intervals": {
                "type": "array",
                "description": "[slot start, pulses] of the 10 s slots with pulses",
                "items": {
                    "type": "array",
                    "items": {"type": "number"},
                    "minItems": 2,
                    "maxItems": 2,
                },
            },
        }
    ),
    "KindCost": _object(
        {
            "value": NUMBER,
            "unit": STRING,
            "energy_cost": _nullable(NUMBER),
            "fixed_cost": _nullable(NUMBER),
            "cost": _nullable(NUMBER),
        }
    ),
    "Costs": _object(
        {
            "currency": STRING,
            "resolution": {"enum": RESOLUTIONS},
            "buckets": {
                "type": "array",
                "items": _object(
                    {
                        "start": TIME,
                        "end": TIME,
                        "by_kind": {
                            "type": "object",
                            "propertyNames": {"enum": KINDS},
                            "additionalProperties": _ref("KindCost"),
                        },
                        "total": _nullable(NUMBER),
                    }
                ),
            },
        }
    ),
    "Counters": _object(
        {
            name: {"type": "integer", "minimum": 0}
            for name in (
                "telegrams",
                "headers",
                "rejected",
                "restarts",
                "spikes",
                "glitches",
                "mismatches",
                "gaps",
            )
        }
    ),
    "ModuleHealth": _object(
        {
            "name": STRING,
            "module": STRING,
            "port": _nullable(STRING),
            "connected": BOOLEAN,
            "since": _nullable(TIME),
            "last_record_at": _nullable(TIME),
            "last_telegram_at": _nullable(TIME),
            "module_id": _nullable(STRING),
            "firmware": _nullable(STRING),
            "thresholds": _nullable({"type": "array", "items": INTEGER}),
            "thresholds_pending": _nullable(STRING),
            "last_problem": _nullable(STRING),
            "connects": INTEGER,
            "disconnects": INTEGER,
            "last_telegram_age": _nullable(NUMBER),
            "counters": _ref("Counters"),
            "meters": {
                "type": "array",
                "items": _object(
                    {
                        "key": STRING,
                        "name": STRING,
                        "register": INTEGER,
                        "kind": {"enum": KINDS},
                        "enabled": BOOLEAN,
                        "unit": STRING,
                        "reading": NUMBER,
                        "pulses": {"type": "integer", "minimum": 0},
                        "rate": _nullable(NUMBER),
                        "rate_unit": STRING,
                    }
                ),
            },
        }
    ),
    "Health": _object(
        {
            "at": TIME,
            "live": {
                "type": "boolean",
                "description": "true: from the logger in this process; false: as it last stored it",
            },
            "modules": {"type": "array", "items": _ref("ModuleHealth")},
        }
    ),
    "Event": _object(
        {
            "at": TIME,
            "kind": {"enum": EVENT_KINDS},
            "module": STRING,
            "meter": _nullable(STRING),
            "value": _nullable(NUMBER),
            "detail": STRING,
        }
    ),
    "Period": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 64},
            "days": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0, "maximum": 6},
                "minItems": 1,
                "maxItems": 7,
                "uniqueItems": True,
                "description": "Weekdays the period applies on, 0 = Monday",
            },
            "start": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):00$"},
            "end": {
                "type": "string",
                "pattern": "^([01][0-9]|2[0-4]):00$",
                "description": "Not after start: the period covers both ends of the day "
                "(23:00-07:00 is 00:00-07:00 and 23:00-24:00)",
            },
            "price": {"type": "number", "minimum": -1e9, "maximum": 1e9},
        },
        "required": ["name", "days", "start", "end", "price"],
        "additionalProperties": False,
    },
    "Tariff": {
        "type": "object",
        "properties": {
            "kind": {"enum": KINDS},
            "valid_from": {"type": "string", "format": "date"},
            "valid_to": _nullable(
                {"type": "string", "format": "date", "description": "Last day (inclusive)"}
            ),
            "fixed_per_day": {"type": "number", "minimum": 0, "maximum": 1e9},
            "periods": {
                "type": "array",
                "items": _ref("Period"),
                "minItems": 1,
                "maxItems": 50,
                "description": "Cover every hour of the week exactly once",
            },
        },
        "required": ["kind", "valid_from", "periods"],
        "additionalProperties": False,
    },
    "Tariffs": {
        "type": "object",
        "properties": {
            "currency": {
                "type": "string",
                "pattern": "^ *[A-Za-z]{3} *$",
                "description": "An ISO 4217 code (EUR, GBP, CHF, USD, …)",
            },
            "tariffs": {"type": "array", "items": _ref("Tariff"), "maxItems": 200},
        },
        "required": ["currency", "tariffs"],
        "additionalProperties": False,
    },
    "Session": _object(
        {
            "logged_in": BOOLEAN,
            "csrf": _nullable(STRING),
            "public_read": BOOLEAN,
            "password_set": BOOLEAN,
            "timezone": STRING,
        }
    ),
    "LoginRequest": {
        "type": "object",
        "properties": {"password": {"type": "string", "minLength": 1, "maxLength": 1024}},
        "required": ["password"],
        "additionalProperties": False,
    },
    "LoginResult": _object({"logged_in": {"const": True}, "csrf": STRING}),
    "LogoutResult": _object({"logged_in": {"const": False}}),
    "ThresholdsRequest": {
        "type": "object",
        "properties": {
            "command": {
                "type": "string",
                "maxLength": 200,
                "pattern": r"^\s*T[1-5]=[0-9]{1,5}(;T[1-5]=[0-9]{1,5})*;?\s*$",
                "examples": ["T2=40;"],
                "description": "Tx=y; per register x, y ms (the module's limits apply)",
            },
        },
        "required": ["command"],
        "additionalProperties": False,
    },
    "ThresholdsResult": _object({"module": STRING, "command": STRING, "pending": {"const": True}}),
    "TokenRequest": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"\S"},
            "days": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 3650,
                "description": "It stops working this many days from now (absent: never)",
            },
        },
        "required": ["name"],
        "additionalProperties": False,
    },
    "Token": _object(
        {
            "id": {"type": "string", "description": "Names the token to revoke it; not the token"},
            "name": STRING,
            "created": NULLABLE_TIME,
            "expires": NULLABLE_TIME,
            "expired": BOOLEAN,
        }
    ),
    "TokenResult": _object(
        {
            "id": STRING,
            "name": STRING,
            "created": NULLABLE_TIME,
            "expires": NULLABLE_TIME,
            "expired": BOOLEAN,
            "token": {"type": "string", "description": "The token itself: shown this once"},
        }
    ),
}

_ERRORS: Final = {
    400: "Bad parameter or body",
    401: "Not logged in, or a bad token",
    403: "Missing or wrong CSRF token, or a token where a session is needed",
    404: "No such meter, module or token",
    408: "The body came too slowly",
    409: "Cannot be done here (read-only database, no logger in this process)",
    413: "Body too large",
    415: "The body is not sent as application/json",
    429: "Too many failed logins, or live clients",
}
READ: Final[list[dict[str, list[str]]]] = [{}, {"bearerAuth": []}, {"sessionCookie": []}]
SESSION: Final[list[dict[str, list[str]]]] = [{"sessionCookie": [], "csrfToken": []}]
WRITE: Final[list[dict[str, list[str]]]] = [
    {"bearerAuth": []},
    {"sessionCookie": [], "csrfToken": []},
]


def _param(name: str, where: str, schema: Schema, description: str, **extra: Any) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
        **extra,
    }


START: Final = _param("start", "query", TIME_INPUT, "Start (inclusive)", required=True)
END: Final = _param("end", "query", TIME_INPUT, "End (exclusive), after start", required=True)
limits = ", ".join(f"{r.value} {MAX_SPAN[r] / 86400:g} days" for r in Resolution)
RESOLUTION: Final = _param(
    "resolution",
    "query",
    {"enum": RESOLUTIONS},
    f"Bucket size; longest range per resolution: {limits}",
    required=True,
)


def _op(
    summary: str,
    *,
    tag: str,
    ok: tuple[int, Schema | None, str] = (200, None, ""),
    params: list[Schema] | None = None,
    body: Schema | None = None,
    errors: tuple[int, ...] = (),
    security: list[dict[str, list[str]]] | None = None,
    description: str = "",
    media: str = "application/json",
) -> Schema:
    status, schema, what = ok
    responses: dict[str, Any] = {
        str(status): {
            "description": what or "OK",
            **({"content": {media: {"schema": schema}}} if schema is not None else {}),
        }
    }
    for code in errors:
        responses[str(code)] = {
            "description": _ERRORS[code],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    op: Schema = {"summary": summary, "tags": [tag], "responses": responses}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    op["security"] = security if security is not None else []
    return op


def _paths(keys: list[str], modules: list[str]) -> dict[str, Any]:
    read_errors = (401,)
    key_schema: Schema = {"type": "string", "minLength": 1}
    module_schema: Schema = {"type": "string", "minLength": 1}
    if keys:
        key_schema["examples"] = keys
    if modules:
        module_schema["examples"] = modules
    key = _param("key", "path", key_schema, "Meter key")
    write_errors = (400, 401, 403, 408, 409, 413, 415)
    return {
        "/api/meters": {
            "get": _op("Every configured meter, with its reading now", tag="meters",
                       ok=(200, {"type": "array", "items": _ref("Meter")}, ""),
                       errors=read_errors, security=READ),
        },
        "/api/meters/{key}": {
            "get": _op("One meter", tag="meters", ok=(200, _ref("Meter"), ""), params=[key],
                       errors=(*read_errors, 404), security=READ),
            "put": _op("Change a meter's settings (stored in the database, over the "
                       "configuration file)", tag="meters", ok=(200, _ref("Meter"), ""),
                       params=[key], body=_ref("MeterUpdate"), errors=(*write_errors, 404),
                       security=WRITE),
        },
        "/api/meters/{key}/reading": {
            "get": _op("The meter's reading at a moment", tag="meters",
                       ok=(200, _ref("Reading"), ""),
                       params=[key, _param("at", "query", TIME_INPUT, "Default: now")],
                       errors=(400, *read_errors, 404), security=READ),
            "post": _op("Set the reading again (a correction) or record a new meter (a "
                        "replacement): an anchor and an event, as `s0pcm set-reading`",
                        tag="meters", ok=(201, _ref("ReadingResult"), "Anchored"),
                        params=[key], body=_ref("ReadingRequest"),
                        errors=(*write_errors, 404), security=WRITE),
        },
        "/api/meters/{key}/consumption": {
            "get": _op("Consumption per bucket", tag="meters", ok=(200, _ref("Consumption"), ""),
                       params=[key, START, END, RESOLUTION], errors=(400, *read_errors, 404),
                       security=READ,
                       description="Buckets are local clock hours (23 or 25 on DST days), "
                       "local days, ISO weeks, months and years; every bucket that overlaps "
                       "[start, end) is whole. `cost` is the energy cost of this meter."),
        },
        "/api/meters/{key}/intervals": {
            "get": _op("The 10-second slots with pulses (at most a day)", tag="meters",
                       ok=(200, _ref("Intervals"), ""), params=[key, START, END],
                       errors=(400, *read_errors, 404), security=READ),
        },
        "/api/costs": {
            "get": _op("Costs per bucket and kind of meter", tag="costs",
                       ok=(200, _ref("Costs"), ""), params=[START, END, RESOLUTION],
                       errors=(400, *read_errors), security=READ),
        },
        "/api/tariffs": {
            "get": _op("The tariffs", tag="costs", ok=(200, _ref("Tariffs"), ""),
                       errors=read_errors, security=READ),
            "put": _op("Replace the tariffs", tag="costs", ok=(200, _ref("Tariffs"), ""),
                       body=_ref("Tariffs"), errors=write_errors, security=WRITE),
        },
        "/api/health": {
            "get": _op("Per module its connection, firmware, thresholds and counters "
                       "(`s0pcm status --json`)", tag="status", ok=(200, _ref("Health"), ""),
                       errors=read_errors, security=READ),
        },
        "/api/events": {
            "get": _op("Device events, newest first", tag="status",
                       ok=(200, {"type": "array", "items": _ref("Event")}, ""),
                       params=[
                           _param("start", "query", TIME_INPUT, "From (inclusive)"),
                           _param("end", "query", TIME_INPUT, "To (exclusive)"),
                           _param("module", "query", {"type": "string", "maxLength": 64},
                                  "Only this module's"),
                           _param("meter", "query", {"type": "string", "maxLength": 128},
                                  "Only this meter's"),
                           _param("kind", "query",
                                  {"type": "array", "items": {"enum": EVENT_KINDS}},
                                  "Only these kinds", style="form", explode=False),
                           _param("limit", "query",
                                  {"type": "integer", "minimum": 1, "maximum": 1000,
                                   "default": 100}, "At most this many"),
                       ],
                       errors=(400, *read_errors), security=READ),
        },
        "/api/live": {
            "get": _op("Server-Sent Events: `update` on every record, `health` every 10 s",
                       tag="status", ok=(200, {"type": "string"}, "An event stream"),
                       errors=(*read_errors, 429), security=READ, media="text/event-stream",
                       description="`update`: {at, module, meters: {key: {reading, rate, "
                       "today}}, events}; `health`: the health document, also right after "
                       "connecting. Only `health` when the logger runs in another process."),
        },
        "/api/modules/{name}/thresholds": {
            "post": _op("Queue a threshold command for the module's next start-up",
                        tag="status", ok=(202, _ref("ThresholdsResult"), "Queued"),
                        params=[_param("name", "path", module_schema, "Module name")],
                        body=_ref("ThresholdsRequest"), errors=(*write_errors, 404),
                        security=WRITE),
        },
        "/api/login": {
            "post": _op("Log in with the password", tag="session",
                        ok=(200, _ref("LoginResult"), "Logged in; sets the session cookie"),
                        body=_ref("LoginRequest"), errors=(400, 401, 408, 413, 415, 429)),
        },
        "/api/logout": {
            "post": _op("End the session", tag="session", ok=(200, _ref("LogoutResult"), ""),
                        errors=(401, 403), security=[{}, *WRITE]),
        },
        "/api/session": {
            "get": _op("Whether this client is logged in, and its CSRF token", tag="session",
                       ok=(200, _ref("Session"), "")),
        },
        "/api/tokens": {
            "get": _op("The API tokens (never the tokens themselves)", tag="session",
                       ok=(200, {"type": "array", "items": _ref("Token")}, ""),
                       errors=(401, 403), security=[{"sessionCookie": []}]),
            "post": _op("A new API token (shown once, stored hashed)", tag="session",
                        ok=(201, _ref("TokenResult"), "Created"), body=_ref("TokenRequest"),
                        errors=write_errors, security=SESSION),
        },
        "/api/tokens/{id}": {
            "delete": _op("Revoke an API token", tag="session", ok=(204, None, "Revoked"),
                          params=[_param("id", "path", {"type": "string"}, "The token's id")],
                          errors=(401, 403, 404, 409), security=SESSION),
        },
        "/api/openapi.json": {
            "get": _op("This document", tag="reference", ok=(200, {"type": "object"}, "")),
        },
        "/api/docs": {
            "get": _op("The API reference, as a page", tag="reference",
                       ok=(200, {"type": "string"}, "HTML"), media="text/html"),
        },
    }  # fmt: skip


def openapi_document(*, meter_keys: Sequence[str] = (), modules: Sequence[str] = ()) -> Schema:
    """The document; the configured ``meter_keys`` and ``modules`` are given as examples of the
    path parameters (so a generated request can reach a real meter)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "s0pcm",
            "version": "1",
            "description": "Readings, consumption, costs and health of the meters on an S0 Pulse "
            "Counter Module. Times are Unix seconds in answers; parameters take Unix seconds or "
            "ISO 8601 with an offset. Errors are `{error, detail}` with a 4xx status.",
        },
        "paths": _paths(list(meter_keys), list(modules)),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API token"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "s0pcm_session"},
                "csrfToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRF-Token",
                    "description": "The session's CSRF token (from login or GET /api/session)",
                },
            },
        },
    }
