"""The writing half of the API, and logging in.

Every write is checked by :meth:`Auth.require_write` (session + CSRF token, or an API token)
before its body is even read, validated completely before anything changes, and made durable
before the answer goes out (through the logger's commit when it runs in this process).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from msgspec import UnsetType
from starlette.requests import Request
from starlette.responses import Response

from ..costs.shapes import Tariffs as TariffsDocument
from ..costs.tariffs import STATE_KEY as TARIFFS_KEY
from ..costs.tariffs import TariffError, parse_tariffs
from ..errors import CannotUndo, ProtocolError, ReadingExists, StoreError
from ..logger.overrides import (
    METERS_KEY,
    THRESHOLDS_KEY,
    add_reading,
    settings_document,
    undo_reading,
)
from ..protocol import parse_thresholds
from . import shapes
from .auth import (
    AUTH_KEY,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    list_tokens,
    new_token,
    revoke_tokens,
)
from .context import Context
from .errors import ApiError
from .params import bad, body_time, json_body, query_time
from .read import context, live_values

__all__ = ["ROUTES"]

log = logging.getLogger(__name__)

#: A reading may be dated this far in the future (clocks differ a little).
FUTURE_SLACK = 300.0


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _commit(ctx: Context) -> None:
    try:
        ctx.commit()
    except StoreError as e:
        raise ApiError(409, "cannot write the database", e.reason) from None


def writes(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Any]:
    """A store that refuses the write (opened read-only, say) is a 409, not a crash."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except StoreError as e:
            raise ApiError(409, "cannot write the database", e.reason) from None

    return wrapped


# -- sessions -------------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    ctx = context(request)
    body = await json_body(request, shapes.LoginRequest)
    await ctx.auth.check_login(_client(request), body.password)
    cookie, session = ctx.auth.new_session()
    log.info("login from %s", _client(request))
    response = shapes.answer(shapes.LoginResult(csrf=session.csrf))
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def logout(request: Request) -> Response:
    ctx = context(request)
    auth = ctx.auth
    if request.headers.get("authorization") is not None or auth.session(request) is not None:
        session = auth.require_write(request)
        if session is not None:
            auth.revoke(session)
    response = shapes.answer(shapes.LogoutResult())  # also when there was nothing to end
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def get_session(request: Request) -> Response:
    ctx = context(request)
    session = ctx.auth.session(request)
    return shapes.answer(
        shapes.Session(
            logged_in=session is not None,
            csrf=None if session is None else session.csrf,
            public_read=ctx.auth.public_read,
            password_set=ctx.auth.password_set(),
            # Days, hours and months are the logger's local ones, wherever the browser is.
            timezone=ctx.tz.key,
        )
    )


# -- meters ---------------------------------------------------------------------------------------


@writes
async def put_meter(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_write(request)
    meter = ctx.meter(request.path_params["key"])
    body = await json_body(request, shapes.MeterUpdate)
    if isinstance(body.name, str):
        body.name = body.name.strip()
    change = msgspec.to_builtins(body)  # the fields given (absent ones are UNSET)
    ctx.documents.set(
        METERS_KEY, settings_document(ctx.documents.get(METERS_KEY), meter.key, change)
    )
    _commit(ctx)  # the logger anchors a new constant (it holds every pulse counted before)
    updated = ctx.meter(meter.key)
    values = await live_values(ctx, (updated,))
    return shapes.answer(ctx.meter_view(updated, values[updated.key]))


@writes
async def post_reading(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_write(request)
    meter = ctx.meter(request.path_params["key"])
    body = await json_body(request, shapes.ReadingRequest)
    reading, replaced = float(body.reading), body.replaced
    now = ctx.clock()
    at = now if isinstance(body.at, UnsetType) else body_time(body.at, "at")
    if at > now + FUTURE_SLACK:
        raise bad("at", "lies in the future")
    ppu = None if isinstance(body.pulses_per_unit, UnsetType) else float(body.pulses_per_unit)
    if ppu is not None and not replaced:
        raise bad("pulses_per_unit", "goes with replaced: a new meter's constant")
    try:
        before = add_reading(
            ctx.store, meter, at=at, reading=reading, replaced=replaced, pulses_per_unit=ppu
        )
    except ReadingExists:
        raise ApiError(409, "a reading is already set at that moment", at) from None
    ctx.documents.forget(METERS_KEY)  # a replacement may have changed the constant
    _commit(ctx)
    return shapes.answer(
        shapes.ReadingResult(
            key=meter.key,
            at=at,
            reading=reading,
            unit=meter.unit,
            kind="replacement" if replaced else "correction",
            previous=None if before is None or not math.isfinite(before) else round(before, 6),
        ),
        status=201,
    )


@writes
async def delete_reading(request: Request) -> Response:
    """``DELETE /api/meters/{key}/reading?at=T``: take back the correction set at ``T``."""
    ctx = context(request)
    ctx.auth.require_write(request)
    meter = ctx.meter(request.path_params["key"])
    at = query_time(request, "at")  # the moment of the correction to take back
    try:
        anchor = undo_reading(ctx.store, meter, at=at, now=ctx.clock())
    except CannotUndo as e:
        raise ApiError(409, "cannot take back", str(e)) from None
    _commit(ctx)
    return shapes.answer(
        shapes.ReadingSet(
            anchor.at, anchor.kind.value, anchor.reading, anchor.pulses_per_unit, False
        )
    )


# -- tariffs, thresholds, tokens -------------------------------------------------------------------


@writes
async def put_tariffs(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_write(request)
    body = await json_body(request, TariffsDocument)
    try:
        tariffs = parse_tariffs(msgspec.to_builtins(body))  # what a type cannot say
    except TariffError as e:
        raise ApiError(400, f"bad {e.field or 'body'}", e.message) from None
    ctx.documents.set(TARIFFS_KEY, tariffs.to_document())
    _commit(ctx)
    return shapes.answer(tariffs.document())


@writes
async def post_thresholds(request: Request) -> Response:
    """Store the request; the logger queues it for the module's next start-up (at once when it
    runs in this process, within seconds from another), and the header after that confirms it."""
    ctx = context(request)
    ctx.auth.require_write(request)
    module = ctx.module(request.path_params["name"])
    body = await json_body(request, shapes.ThresholdsRequest)
    try:
        thresholds = parse_thresholds(body.command, model=module.model)
    except ProtocolError as e:
        raise bad("command", e.reason) from None
    previous = ctx.threshold_request(module.name)
    seq = max(ctx.thresholds_taken(module.name), previous.seq if previous else 0) + 1
    stored = ctx.documents.get(THRESHOLDS_KEY)
    requests = dict(stored) if isinstance(stored, dict) else {}
    requests[module.name] = {"command": thresholds.to_command(), "seq": seq, "at": ctx.clock()}
    ctx.documents.set(THRESHOLDS_KEY, requests)
    _commit(ctx)
    log.info("thresholds %s requested for %s", thresholds.to_command(), module.name)
    return shapes.answer(shapes.ThresholdsResult(module.name, thresholds.to_command()), status=202)


async def get_tokens(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_session(request, write=False)
    now = ctx.clock()
    doc = ctx.documents.get(AUTH_KEY) or {}
    return shapes.answer([info.document(now) for info in list_tokens(doc)])


@writes
async def post_token(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_session(request)
    body = await json_body(request, shapes.TokenRequest)
    name = body.name.strip()
    days = None if isinstance(body.days, UnsetType) else float(body.days)
    now = ctx.clock()
    token = new_token(ctx.store, name, days=days, now=now, commit=False)
    ctx.documents.forget(AUTH_KEY)
    _commit(ctx)
    info = list_tokens(ctx.documents.get(AUTH_KEY) or {})[-1]
    log.info("API token %r (%s) created", name, info.id)
    result = shapes.TokenResult(**msgspec.structs.asdict(info.document(now)), token=token)
    return shapes.answer(result, status=201)


@writes
async def delete_token(request: Request) -> Response:
    ctx = context(request)
    ctx.auth.require_session(request)
    token_id = request.path_params["id"]
    gone = revoke_tokens(ctx.store, token_id, by_name=False, commit=False)
    if not gone:
        raise ApiError(404, "no such token", f"{token_id[:40]!r} is not the id of a token")
    ctx.documents.forget(AUTH_KEY)
    _commit(ctx)
    log.info("API token %r (%s) revoked", gone[0].name, gone[0].id)
    return Response(status_code=204)


ROUTES: list[tuple[str, Callable[[Request], Any], list[str]]] = [
    ("/api/login", login, ["POST"]),
    ("/api/logout", logout, ["POST"]),
    ("/api/session", get_session, ["GET"]),
    ("/api/meters/{key}", put_meter, ["PUT"]),
    ("/api/meters/{key}/reading", post_reading, ["POST"]),
    ("/api/meters/{key}/reading", delete_reading, ["DELETE"]),
    ("/api/tariffs", put_tariffs, ["PUT"]),
    ("/api/modules/{name}/thresholds", post_thresholds, ["POST"]),
    ("/api/tokens", get_tokens, ["GET"]),
    ("/api/tokens", post_token, ["POST"]),
    ("/api/tokens/{id}", delete_token, ["DELETE"]),
]
