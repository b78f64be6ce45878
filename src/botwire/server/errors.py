"""Every failure becomes ``{"error": {"code", "message"}}`` with its status (``_wire.CODES``).

Bad input is the client's error (4xx) whatever part of the stack notices it; a 500 only ever
means a bug here, and its message says nothing about the request or the server's secrets.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .._wire import CODES, error_body
from ..errors import (
    AuthenticationFailed,
    BotWireError,
    InvalidInput,
    InvalidKey,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StorageUnavailable,
    UnsupportedValue,
    ValueTooLarge,
    VersionConflict,
)

log = logging.getLogger("botwire.server")

_BY_CLASS: tuple[tuple[type[BaseException], str], ...] = (
    (InvalidKey, "invalid_key"),
    (ValueTooLarge, "value_too_large"),
    (InvalidInput, "invalid_input"),
    (UnsupportedValue, "unsupported_value"),
    (NotFound, "not_found"),
    (VersionConflict, "version_conflict"),
    (QuotaExceeded, "write_quota_exceeded"),
    (StorageUnavailable, "storage_unavailable"),
    (AuthenticationFailed, "unauthorized"),
    (PermissionDenied, "forbidden"),
    (OverflowError, "invalid_input"),  # an integer too large for the database
    (ClientDisconnect, "invalid_input"),
)
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


class MalformedJson(InvalidInput):
    code = "malformed_json"


class BodyTooLarge(InvalidInput):
    code = "body_too_large"


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"


class NotAnInteger(UnsupportedValue):
    code = "not_an_integer"


def code_for(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code in CODES:
        return code
    for cls, name in _BY_CLASS:
        if isinstance(exc, cls):
            return name
    return "internal"


def error_response(code: str, message: str, **extra: Any) -> Response:
    status = CODES[code][0]
    headers = {}
    retry = extra.pop("retry_after", None)
    if retry is not None:
        headers["Retry-After"] = str(int(retry))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="botwire"'
    body = json.dumps(error_body(code, message, **extra), ensure_ascii=False)
    return Response(body, status, headers, media_type="application/json")


def for_exception(exc: BaseException) -> Response:
    code = code_for(exc)
    if isinstance(exc, ClientDisconnect):
        return error_response(code, "the client went away before its request body ended")
    if isinstance(exc, OverflowError):
        return error_response(code, "a number in the request is too large")
    extra: dict[str, Any] = {}
    if isinstance(exc, VersionConflict):
        extra = {"current_version": exc.current_version, "expected": exc.expected}
    elif isinstance(exc, ValueTooLarge):
        extra = {"size": exc.size, "limit": exc.limit}
    elif getattr(exc, "retry_after", None) is not None:
        extra = {"retry_after": exc.retry_after}  # type: ignore[attr-defined]
    if code == "internal":
        log.error("unexpected %s while answering a request", type(exc).__name__, exc_info=exc)
        return error_response(code, "internal error; the server log has the details")
    return error_response(code, str(exc), **extra)


async def on_botwire_error(request: Request, exc: Exception) -> Response:
    _count(request, code_for(exc))
    return _legacy(request, for_exception(exc))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "invalid_request")
    _count(request, code)
    return _legacy(request, error_response(code, str(exc.detail)))


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    _count(request, "invalid_request")
    return _legacy(request, error_response("invalid_request", "; ".join(parts) or "invalid"))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    _count(request, code_for(exc))
    return _legacy(request, for_exception(exc))


def _legacy(request: Request, response: Response) -> Response:
    """Under /memory, errors also carry the ``detail`` the botwire 0.2 client reads."""
    if not request.scope.get("path", "").startswith("/memory/"):
        return response
    body = json.loads(bytes(response.body))
    body["detail"] = body["error"]["message"]
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    text = json.dumps(body, ensure_ascii=False)
    return Response(text, response.status_code, headers, media_type="application/json")


def _count(request: Request, code: str) -> None:
    ctx = getattr(request.app.state, "ctx", None)
    if ctx is not None:
        count(ctx, code)


def count(ctx: Any, code: str) -> None:
    """Record an error answer in the metrics (and a quota rejection as one)."""
    ctx.metrics.errors.labels(code).inc()
    if code in ("write_quota_exceeded", "storage_quota_exceeded"):
        ctx.metrics.quota_rejections.labels(code.split("_")[0]).inc()


HANDLERS = {
    BotWireError: on_botwire_error,
    ClientDisconnect: on_unexpected,
    OverflowError: on_unexpected,
    HTTPException: on_http_error,
    RequestValidationError: on_validation_error,
    Exception: on_unexpected,
}
