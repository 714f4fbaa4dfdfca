"""Reading what a request asks for: times, ranges, resolutions, limits and JSON bodies.

Every parser raises :class:`~.errors.ApiError` (400) naming the parameter, so bad input is a 4xx
answer whatever it is; handlers get plain, checked values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, TypeVar

import anyio
import msgspec
from starlette.requests import ClientDisconnect, Request

from ..calendar import Resolution
from .errors import ApiError
from .shapes import TIME_MAX, TIME_MIN

__all__ = [
    "MAX_BODY",
    "MAX_SPAN",
    "bad",
    "body_time",
    "decode_body",
    "json_body",
    "parse_time",
    "query_limit",
    "query_range",
    "query_resolution",
    "query_time",
]

#: Bucketed ranges end before 9998: the year (or week) holding the end must end in 9999 at the
#: latest, which ``datetime`` can still hold.
BUCKETED_MAX: Final = datetime(9998, 1, 1, tzinfo=UTC).timestamp()
#: Longest range per resolution (seconds): a bucket list stays small and a query quick.
MAX_SPAN: Final[Mapping[Resolution, float]] = {
    Resolution.INTERVAL: 86400.0,
    Resolution.HOUR: 93 * 86400.0,
    Resolution.DAY: 3700 * 86400.0,
    Resolution.WEEK: 1100 * 7 * 86400.0,
    Resolution.MONTH: 1200 * 31 * 86400.0,
    Resolution.YEAR: 100 * 366 * 86400.0,
}
#: Request bodies are small documents; anything bigger is refused before parsing.
MAX_BODY: Final = 256 * 1024
#: Seconds a client has to send a request body (a Pi's worker slots are few).
BODY_TIMEOUT: Final = 10.0
T = TypeVar("T")
_NUMBER: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ISO: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?"
    r"(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})"
)


def bad(parameter: str, message: str, status: int = 400) -> ApiError:
    return ApiError(status, f"bad {parameter}", message)


def parse_time(text: str, parameter: str) -> float:
    """Unix seconds, or ISO 8601 with an offset (``2026-03-29T02:30:00+02:00``, ``...Z``).

    A ``+`` that a URL turned into a space is taken back.
    """
    text = text.strip()
    if _NUMBER.fullmatch(text):
        value = float(text)
    else:
        candidate = text
        if not _ISO.fullmatch(candidate) and re.fullmatch(r".*[0-9] [0-9]{2}:?[0-9]{2}", text):
            candidate = text[::-1].replace(" ", "+", 1)[::-1]
        if not _ISO.fullmatch(candidate):
            raise bad(
                parameter,
                "a time is Unix seconds or ISO 8601 with an offset, "
                f"e.g. 2026-11-01T12:00:00+01:00; got {text[:64]!r}",
            )
        iso = candidate.replace("z", "Z").replace("t", "T")
        iso = re.sub(r"\.([0-9]{6})[0-9]+", r".\1", iso)  # datetime keeps microseconds
        try:
            value = datetime.fromisoformat(iso).timestamp()
        except (ValueError, OverflowError, OSError):
            raise bad(parameter, f"not a valid date and time: {text[:64]!r}") from None
    if not (math.isfinite(value) and TIME_MIN <= value <= TIME_MAX):
        raise bad(parameter, "a time must lie between 1970 and 9999")
    return value


def query_time(request: Request, name: str, default: float | None = None) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise bad(name, "missing")
        return default
    return parse_time(raw, name)


def query_resolution(request: Request, default: Resolution | None = None) -> Resolution:
    raw = request.query_params.get("resolution")
    if raw is None:
        if default is None:
            raise bad("resolution", f"missing: one of {', '.join(r.value for r in Resolution)}")
        return default
    try:
        return Resolution(raw)
    except ValueError:
        raise bad(
            "resolution", f"one of {', '.join(r.value for r in Resolution)}, got {raw[:32]!r}"
        ) from None


def query_range(
    request: Request, *, resolution: Resolution | None = None, required: bool = True
) -> tuple[float, float]:
    """``start`` and ``end``: ``end`` after ``start``, and within the longest range allowed for
    ``resolution`` (the interval limit when None)."""
    if required:
        start, end = query_time(request, "start"), query_time(request, "end")
    else:
        start = query_time(request, "start", TIME_MIN)
        end = query_time(request, "end", TIME_MAX)
    if end <= start:
        raise bad("end", "must be after start")
    if resolution is not None:
        if end > BUCKETED_MAX:
            raise bad("end", "a range with buckets must end before 9998")
        span = MAX_SPAN[resolution]
        if end - start > span:
            raise bad(
                "end",
                f"a range at resolution {resolution.value} covers at most {span / 86400:g} days",
            )
    return start, end


def query_limit(request: Request, *, default: int = 100, most: int = 1000) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,7}", raw) or not 1 <= int(raw) <= most:
        raise bad("limit", f"a whole number 1..{most}, got {raw[:32]!r}")
    return int(raw)


def query_choice(request: Request, name: str, choices: Sequence[str]) -> list[str] | None:
    """A comma-separated list (or repeated parameter) of values from ``choices``; None if
    absent."""
    if name not in request.query_params:
        return None
    raw = [part for value in request.query_params.getlist(name) for part in value.split(",")]
    for value in raw:
        if value not in choices:
            raise bad(name, f"one of {', '.join(choices)}, got {value[:32]!r}")
    return raw


def query_text(request: Request, name: str, *, most: int = 64) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > most:
        raise bad(name, f"at most {most} characters")
    return raw


async def json_body(request: Request, into: type[T]) -> T:
    """The request's JSON document as ``into`` (a :mod:`.shapes` declaration); 400 naming the
    field when it is not one, 413 when it is too big, 415 when it is not sent as
    ``application/json`` (which a cross-site form cannot do)."""
    return decode_body(await _body(request), into)


async def _body(request: Request) -> bytes:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise ApiError(415, "unsupported media type", "send the body as application/json")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise ApiError(413, "body too large", f"at most {MAX_BODY} bytes")
    body = b""
    try:
        with anyio.fail_after(BODY_TIMEOUT):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    raise ApiError(413, "body too large", f"at most {MAX_BODY} bytes")
    except TimeoutError:
        raise ApiError(408, "body too slow", f"send it within {BODY_TIMEOUT:g} s") from None
    except ClientDisconnect:
        # Nobody is left to answer; a 400 ends the request without a traceback in the log.
        raise ApiError(400, "body cut short", "the client went away mid-body") from None
    return body


def decode_body(body: bytes, into: type[T]) -> T:
    """``body`` decoded and validated as ``into``.

    msgspec refuses what is no JSON text (NaN, a lone surrogate: it could be stored, never
    encoded again) and numbers no float holds (400 digits) as well as every value its
    declaration does not allow, so each is a 400, never a crash where the value is used.
    """
    try:
        return msgspec.json.decode(body, type=into)
    except msgspec.ValidationError as e:
        field, message = _invalid(str(e))
        raise ApiError(400, f"bad {field}", message) from None
    except msgspec.DecodeError as e:
        raise ApiError(400, "malformed JSON", str(e)[:200]) from None


_NAMED: Final = re.compile(r"Object (?:contains unknown|missing required) field `([^`]{0,32})")


def _invalid(text: str) -> tuple[str, str]:
    """The field a msgspec validation error names (``tariffs[0].valid_from``; ``body`` for the
    whole document), and what is wrong with it."""
    message, _, path = text.partition(" - at `$")
    field = path.removesuffix("`").removeprefix(".")
    named = _NAMED.match(message)
    if named is not None:
        field = f"{field}.{named[1]}" if field else named[1]
        message = "unknown field" if "unknown" in message else "missing"
    return field or "body", message


def body_time(value: float | str, name: str) -> float:
    """Unix seconds (a number, its range checked by the declaration) or ISO 8601 with an
    offset (a string)."""
    return parse_time(value, name) if isinstance(value, str) else float(value)
