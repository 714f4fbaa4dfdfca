"""The OpenAPI 3.1 document of the API: paths written as data next to the handlers they describe,
schemas generated from the declarations the handlers build and decode (:mod:`.shapes`).

A schemathesis run in the tests generates requests from this document and checks every answer
against it (status codes, content types, response schemas), so it has to say exactly what the
handlers do. ``GET /api/openapi.json`` serves it; :mod:`.docs` renders the reference page. The
document itself is declared too (:class:`Document`, :class:`Operation`), so the page reads typed
fields; only the JSON Schemas inside are plain data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from ..calendar import Resolution
from . import shapes
from .params import MAX_SPAN

__all__ = ["Document", "Operation", "Parameter", "openapi_document"]

#: A JSON Schema (or any other free-form part of the document).
Schema = dict[str, object]
Security = list[dict[str, list[str]]]

_REF: Final = "#/components/schemas/{name}"


def _ref(name: str) -> Schema:
    return {"$ref": _REF.format(name=name)}


def _array(name: str) -> Schema:
    return {"type": "array", "items": _ref(name)}


class Parameter(msgspec.Struct, omit_defaults=True):
    name: str
    where: str = msgspec.field(name="in")
    required: bool
    schema: Schema
    description: str
    style: str | None = None
    explode: bool | None = None


class Body(msgspec.Struct):
    """A request body: JSON, of the component ``schema`` refers to."""

    content: dict[str, dict[str, Schema]]
    required: bool = True

    @property
    def schema(self) -> Schema:
        return self.content["application/json"]["schema"]


class Operation(msgspec.Struct, omit_defaults=True):
    summary: str
    tags: list[str]
    responses: dict[str, Schema]
    security: Security
    description: str = ""
    parameters: list[Parameter] = []
    request_body: Body | None = msgspec.field(default=None, name="requestBody")


class Info(msgspec.Struct):
    title: str
    version: str
    description: str


class Document(msgspec.Struct):
    openapi: str
    info: Info
    paths: dict[str, dict[str, Operation]]
    components: Schema


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
    503: "The disk refused it (full or failing)",
}
READ: Final[Security] = [{}, {"bearerAuth": []}, {"sessionCookie": []}]
SESSION: Final[Security] = [{"sessionCookie": [], "csrfToken": []}]
WRITE: Final[Security] = [
    {"bearerAuth": []},
    {"sessionCookie": [], "csrfToken": []},
]


def _param(
    name: str,
    where: str,
    schema: Schema,
    description: str,
    *,
    required: bool = False,
    style: str | None = None,
    explode: bool | None = None,
) -> Parameter:
    return Parameter(
        name,
        where,
        required or where == "path",
        schema,
        description,
        style=style,
        explode=explode,
    )


#: Inline (it holds no component), as a parameter's schema.
TIME_INPUT: Final[Schema] = msgspec.json.schema(shapes.TimeInput)
START: Final = _param("start", "query", TIME_INPUT, "Start (inclusive)", required=True)
END: Final = _param("end", "query", TIME_INPUT, "End (exclusive), after start", required=True)
limits = ", ".join(f"{r.value} {MAX_SPAN[r] / 86400:g} days" for r in Resolution)
RESOLUTION: Final = _param(
    "resolution",
    "query",
    _ref("Resolution"),
    f"Bucket size; longest range per resolution: {limits}",
    required=True,
)


def _op(
    summary: str,
    *,
    tag: str,
    ok: tuple[int, Schema | None, str] = (200, None, ""),
    params: Sequence[Parameter] = (),
    body: str | None = None,
    errors: tuple[int, ...] = (),
    security: Security | None = None,
    description: str = "",
    media: str = "application/json",
) -> Operation:
    """An operation answering ``ok`` (status, schema, what), refusing with ``errors``; ``body``
    names the component its request body is."""
    status, schema, what = ok
    responses: dict[str, Schema] = {
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
    return Operation(
        summary,
        [tag],
        responses,
        security if security is not None else [],
        description=description,
        parameters=list(params),
        request_body=None if body is None else Body({"application/json": {"schema": _ref(body)}}),
    )


def _paths(keys: list[str], modules: list[str]) -> dict[str, dict[str, Operation]]:
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
                       ok=(200, _array("Meter"), ""),
                       errors=read_errors, security=READ),
        },
        "/api/meters/{key}": {
            "get": _op("One meter", tag="meters", ok=(200, _ref("Meter"), ""), params=[key],
                       errors=(*read_errors, 404), security=READ),
            "put": _op("Change a meter's settings (stored in the database, over the "
                       "configuration file)", tag="meters", ok=(200, _ref("Meter"), ""),
                       params=[key], body="MeterUpdate", errors=(*write_errors, 404),
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
                        params=[key], body="ReadingRequest",
                        errors=(*write_errors, 404), security=WRITE),
            "delete": _op("Take back a correction (the reading set at `at`)", tag="meters",
                          ok=(200, _ref("ReadingSet"), "Taken back"),
                          params=[key, _param("at", "query", TIME_INPUT, "The correction's "
                                              "moment", required=True)],
                          errors=(400, 401, 403, 404, 409), security=WRITE),
        },
        "/api/meters/{key}/consumption": {
            "get": _op("Consumption per bucket", tag="meters", ok=(200, _ref("Consumption"), ""),
                       params=[key, START, END, RESOLUTION], errors=(400, *read_errors, 404),
                       security=READ,
                       description="Buckets are local clock hours (23 or 25 on DST days), "
                       "local days, ISO weeks, months and years; every bucket that overlaps "
                       "[start, end) is whole. `cost` is the energy cost of this meter."),
        },
        "/api/meters/{key}/export.csv": {
            "get": _op("Consumption as CSV, as `s0pcm export` writes it", tag="meters",
                       ok=(200, {"type": "string"}, "CSV: start, pulses, consumption, reading"),
                       params=[key, START, END, RESOLUTION], errors=(400, *read_errors, 404),
                       security=READ, media="text/csv",
                       description="One row per bucket with data: none before logging began "
                       "or after now."),
        },
        "/api/meters/{key}/readings": {
            "get": _op("The readings set (the configured one, corrections, replacements)",
                       tag="meters", ok=(200, _array("ReadingSet"), ""), params=[key],
                       errors=(*read_errors, 404), security=READ),
        },
        "/api/power": {
            "get": _op("Live power and flow of the last hours", tag="meters",
                       ok=(200, _ref("Power"), ""),
                       params=[_param("hours", "query",
                                      {"type": "number", "exclusiveMinimum": 0, "maximum": 6,
                                       "default": 3}, "Hours back from now")],
                       errors=(400, *read_errors), security=READ),
        },
        "/api/backup": {
            "get": _op("A consistent copy of the database (SQLite), for the owner",
                       tag="status", ok=(200, {"type": "string"}, "The SQLite file"),
                       errors=(401, 403, 409, 503), security=[{"sessionCookie": []}],
                       media="application/vnd.sqlite3",
                       description="A logged-in session only (a token gets 403); with "
                       "PostgreSQL, 409: use pg_dump."),
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
                       body="Tariffs", errors=write_errors, security=WRITE),
        },
        "/api/health": {
            "get": _op("Per module its connection, firmware, thresholds and counters "
                       "(`s0pcm status --json`)", tag="status", ok=(200, _ref("Health"), ""),
                       errors=read_errors, security=READ),
        },
        "/api/events": {
            "get": _op("Device events, newest first", tag="status",
                       ok=(200, _array("Event"), ""),
                       params=[
                           _param("start", "query", TIME_INPUT, "From (inclusive)"),
                           _param("end", "query", TIME_INPUT, "To (exclusive)"),
                           _param("module", "query", {"type": "string", "maxLength": 64},
                                  "Only this module's"),
                           _param("meter", "query", {"type": "string", "maxLength": 128},
                                  "Only this meter's"),
                           _param("kind", "query",
                                  _array("EventKind"),
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
                        body="ThresholdsRequest", errors=(*write_errors, 404),
                        security=WRITE),
        },
        "/api/login": {
            "post": _op("Log in with the password", tag="session",
                        ok=(200, _ref("LoginResult"), "Logged in; sets the session cookie"),
                        body="LoginRequest", errors=(400, 401, 408, 413, 415, 429)),
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
                       ok=(200, _array("Token"), ""),
                       errors=(401, 403), security=[{"sessionCookie": []}]),
            "post": _op("A new API token (shown once, stored hashed)", tag="session",
                        ok=(201, _ref("TokenResult"), "Created"), body="TokenRequest",
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


def openapi_document(*, meter_keys: Sequence[str] = (), modules: Sequence[str] = ()) -> Document:
    """The document; the configured ``meter_keys`` and ``modules`` are given as examples of the
    path parameters (so a generated request can reach a real meter)."""
    _, schemas = msgspec.json.schema_components(shapes.COMPONENTS, ref_template=_REF)
    return Document(
        openapi="3.1.0",
        info=Info(
            title="s0pcm",
            version="1",
            description="Readings, consumption, costs and health of the meters on an S0 Pulse "
            "Counter Module. Times are Unix seconds in answers; parameters take Unix seconds or "
            "ISO 8601 with an offset. Errors are `{error, detail}` with a 4xx status.",
        ),
        paths=_paths(list(meter_keys), list(modules)),
        components={
            "schemas": schemas,
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
    )
