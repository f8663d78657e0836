"""One error envelope for every failure: ``{"detail": {"code", "message", "details"}}``.

SDK errors carry their own code and status; Falcon's own errors (no route, wrong method, a body
it cannot parse) are translated to the API's error codes; anything else is a 500 whose text is
generic, with the real exception logged server-side only.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon
import falcon.asgi

from chitram_core.errors import (
    ChitramError,
    RateLimitExceeded,
    ServiceUnavailable,
    TokenExpired,
    Unauthorized,
    is_internal,
)

log = logging.getLogger("chitram_falcon")

GENERIC_500 = "Internal server error"

# Falcon's HTTP errors by status, as the API's error codes (docs/http-api.md#errors).
_CODES_BY_STATUS = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "FILE_TOO_LARGE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
    503: "SERVICE_UNAVAILABLE",
}
_SUCCESS_ONLY_HEADERS = (
    "ETag",
    "Last-Modified",
    "Accept-Ranges",
    "Content-Range",
    "Content-Disposition",
)
_MESSAGES_BY_STATUS = {
    404: "Not found",
    405: "Method not allowed",
    413: "The request body is too large",
}


def envelope(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"detail": {"code": code, "message": message, "details": details or {}}}


def render(
    resp: falcon.asgi.Response,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(envelope(code, message, details), default=str)
    resp.stream = None
    # An error raised after a responder prepared a success (an image read failing in the store)
    # must not keep what described that success: a cache would keep the error for a year.
    for name in _SUCCESS_ONLY_HEADERS:
        resp.delete_header(name)
    if status >= 500 or resp.get_header("Cache-Control") is not None:
        resp.set_header("Cache-Control", "no-store")


def www_authenticate(error: ChitramError | None) -> str:
    """RFC 6750 §3: a bare challenge when no token came, ``invalid_token`` when a bad one did."""
    if error is None or error.code == "UNAUTHORIZED":
        return 'Bearer realm="chitram"'
    if error.code in {"INVALID_TOKEN", "TOKEN_EXPIRED"}:
        description = (
            "The access token expired"
            if isinstance(error, TokenExpired)
            else ("The access token is invalid")
        )
        return f'Bearer realm="chitram", error="invalid_token", error_description="{description}"'
    return 'Bearer realm="chitram"'


async def handle_chitram_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: dict[str, Any]
) -> None:
    assert isinstance(ex, ChitramError)
    if is_internal(ex):
        log.error("%s %s failed: %r", req.method, req.path, ex, exc_info=ex)
        render(resp, 500, "INTERNAL_ERROR", GENERIC_500)
        return
    render(resp, ex.status, ex.code, ex.message, ex.details)
    for name, value in getattr(ex, "http_headers", {}).items():
        resp.set_header(name, value)
    if isinstance(ex, Unauthorized):
        resp.set_header("WWW-Authenticate", www_authenticate(ex))
    if isinstance(ex, RateLimitExceeded):
        resp.set_header("Retry-After", str(max(1, int(ex.retry_after))))
        resp.set_header("X-RateLimit-Limit", str(ex.limit))
        resp.set_header("X-RateLimit-Remaining", "0")
    if isinstance(ex, ServiceUnavailable):
        resp.set_header("Retry-After", str(max(1, int(ex.retry_after))))


def _falcon_code(ex: falcon.HTTPError) -> tuple[int, str, str]:
    status = ex.status_code
    if isinstance(ex, falcon.MediaNotFoundError | falcon.MediaMalformedError):
        return 422, "VALIDATION_ERROR", "The request body is missing or is not valid"
    if status == 415:
        return 422, "VALIDATION_ERROR", "The request body has an unsupported media type"
    code = _CODES_BY_STATUS.get(status)
    if code is None:
        code = "INTERNAL_ERROR" if status >= 500 else "INVALID_REQUEST"
    if is_internal(status):
        return 500, "INTERNAL_ERROR", GENERIC_500
    message = _MESSAGES_BY_STATUS.get(status) or ex.description or ex.title or "Request failed"
    return status, code, message


async def handle_falcon_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: dict[str, Any]
) -> None:
    assert isinstance(ex, falcon.HTTPError)
    status, code, message = _falcon_code(ex)
    render(resp, status, code, message)
    for name, value in dict(ex.headers or {}).items():
        if name.lower() != "content-type":
            resp.set_header(name, value)
    if status == 401:
        resp.set_header("WWW-Authenticate", www_authenticate(None))


async def handle_unexpected(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: dict[str, Any]
) -> None:
    log.error("unhandled error in %s %s", req.method, req.path, exc_info=ex)
    render(resp, 500, "INTERNAL_ERROR", GENERIC_500)


def install(app: falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]) -> None:
    """Register the handlers; Falcon picks the most specific one for each exception."""
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_falcon_error)
    app.add_error_handler(ChitramError, handle_chitram_error)
