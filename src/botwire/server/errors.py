"""Every failure becomes ``{"error": {"code", "message", "request_id"}}`` with its status
(``_wire.CODES``), and ``documented`` declares those answers in the OpenAPI document.

Bad input is the client's error (4xx) whatever part of the stack notices it; a 500 only ever
means a bug here. Messages are the server's own words: what a database driver said (hosts,
ports, SQL) goes to the log under the request id, never into a body.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .._wire import CODES, error_body
from ..errors import (
    AuthenticationFailed,
    BotWireError,
    InvalidInput,
    InvalidKey,
    NamespaceNotEmpty,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StorageUnavailable,
    UnsupportedValue,
    ValueTooLarge,
    VersionConflict,
)
from .state import REQUEST_ID

log = logging.getLogger("botwire.server")

_BY_CLASS: tuple[tuple[type[BaseException], str], ...] = (
    (InvalidKey, "invalid_key"),
    (ValueTooLarge, "value_too_large"),
    (InvalidInput, "invalid_input"),
    (UnsupportedValue, "unsupported_value"),
    (NotFound, "not_found"),
    (VersionConflict, "version_conflict"),
    (NamespaceNotEmpty, "namespace_not_empty"),
    (QuotaExceeded, "write_quota_exceeded"),
    (StorageUnavailable, "storage_unavailable"),
    (AuthenticationFailed, "unauthorized"),
    (PermissionDenied, "forbidden"),
    (OverflowError, "invalid_input"),  # an integer too large for the database
    (ClientDisconnect, "invalid_input"),
)
# A 404 from routing is not a missing key: the client's URL (a proxy path, say) is wrong.
_HTTP_CODES = {404: "no_such_route", 405: "method_not_allowed", 413: "body_too_large"}


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


STORAGE_MESSAGE = "the database is not available right now; try again shortly"


def error_response(
    code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    status = CODES[code][0]
    headers = dict(headers or {})
    retry = extra.pop("retry_after", None)
    if retry is not None:
        headers["Retry-After"] = str(int(retry))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="botwire"'
    body = error_body(code, message, request_id=REQUEST_ID.get(), **extra)
    text = json.dumps(body, ensure_ascii=False)
    return Response(text, status, headers, media_type="application/json")


def for_exception(exc: BaseException) -> Response:
    code = code_for(exc)
    if isinstance(exc, ClientDisconnect):
        return error_response(code, "the client went away before its request body ended")
    if isinstance(exc, OverflowError):
        return error_response(code, "a number in the request is too large")
    extra: dict[str, Any] = {}
    if isinstance(exc, VersionConflict):
        extra = {"current_version": exc.current_version, "expected": exc.expected}
    elif isinstance(exc, NamespaceNotEmpty):
        extra = {"namespace": exc.namespace}
    elif isinstance(exc, ValueTooLarge):
        extra = {"size": exc.size, "limit": exc.limit}
    elif getattr(exc, "retry_after", None) is not None:
        extra = {"retry_after": exc.retry_after}  # type: ignore[attr-defined]
    if code == "internal":
        log.error(
            "request %s: unexpected %s", REQUEST_ID.get(), type(exc).__name__, exc_info=exc
        )
        return error_response(code, "internal error; the server log has the details")
    if code == "storage_unavailable":
        log.warning("request %s: storage unavailable: %s", REQUEST_ID.get(), exc)
        extra.setdefault("retry_after", 1)  # every 503 says when to come back
        return error_response(code, STORAGE_MESSAGE, **extra)
    return error_response(code, str(exc), **extra)


async def on_botwire_error(request: Request, exc: Exception) -> Response:
    _count(request, code_for(exc))
    return _legacy(request, for_exception(exc))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "invalid_request")
    _count(request, code)
    headers = {"Allow": _allowed(request)} if exc.status_code == 405 else None
    return _legacy(request, error_response(code, str(exc.detail), headers))


def _allowed(request: Request) -> str:
    """The methods of every route on this path (the router names only the first route's)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.scope["path"]):
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


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


# -- the error answers in the OpenAPI document ----------------------------------------------


class ErrorDetail(BaseModel):
    """What failed, in the server's words."""

    model_config = ConfigDict(extra="allow")
    code: str = Field(description="one of the codes listed for this status")
    message: str
    request_id: str | None = Field(
        description="this request's `X-Request-Id`: the server log has the details under it"
    )
    current_version: int | None = Field(None, description="`version_conflict`: the key's version")
    expected: int | None = Field(None, description="`version_conflict`: the version asked for")
    size: int | None = Field(None, description="`value_too_large`: the value's size in bytes")
    limit: int | None = Field(None, description="`value_too_large`: the largest value allowed")


class ErrorBody(BaseModel):
    """Every error answer of the server."""

    error: ErrorDetail


class LegacyErrorBody(ErrorBody):
    """An error under ``/memory``: also the ``detail`` the botwire 0.2 client reads."""

    detail: str


_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
}


def documented(*codes: str, model: type[ErrorBody] = ErrorBody) -> dict[int | str, Any]:
    """The OpenAPI ``responses`` of a route that may answer these codes, one per status."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(CODES[code][0], []).append(code)
    return {status: _answer(status, by_status[status], model) for status in sorted(by_status)}


def _answer(status: int, codes: list[str], model: type[ErrorBody]) -> dict[str, Any]:
    listed = ", ".join(f"`{code}`" for code in codes)
    description = f"{HTTPStatus(status).phrase}: {listed}"
    answer: dict[str, Any] = {"model": model, "description": description}
    if status in _HEADERS:
        answer["headers"] = _HEADERS[status]
    return answer


HANDLERS = {
    BotWireError: on_botwire_error,
    ClientDisconnect: on_unexpected,
    OverflowError: on_unexpected,
    HTTPException: on_http_error,
    RequestValidationError: on_validation_error,
    Exception: on_unexpected,
}
