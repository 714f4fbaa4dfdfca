"""API errors: every refusal is a small JSON document with a 4xx status.

Handlers raise :class:`ApiError`; the app turns it (and Starlette's own HTTP exceptions, such as
an unknown path or a wrong method) into ``{"error": ..., "detail": ...}``. Anything else that
escapes a handler is a bug and becomes a logged 500 without internals in the body.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .shapes import Error, answer

__all__ = ["ApiError", "api_error_handler", "http_error_handler", "unexpected_error_handler"]

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the API refuses: ``status`` (4xx), a short ``error`` and an optional
    ``detail`` (the offending parameter, the allowed values...)."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


def error_response(
    status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
) -> Response:
    return answer(Error(error, detail), status=status, headers=headers)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.detail, exc.headers)


_REASONS = {404: "not found", 405: "method not allowed"}


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = _REASONS.get(exc.status_code, str(exc.detail).lower())
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, error, None, headers)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    # The method and path only: query strings and headers may carry secrets.
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error")
