"""The hot path: ``GET`` / ``HEAD`` / ``PUT`` of one key, answered as plain ASGI.

These three requests are most of a voice fleet's traffic. FastAPI's routing and dependency
injection cost several times the work itself (see BENCHMARKS.md), so ``Edge`` hands them here.
Behaviour is the routes' own: both call ``v1.get_value`` / ``get_meta`` / ``put_value``, and
the conformance and API tests run through this path.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect
from starlette.responses import Response

from . import errors, v1
from .auth import secret_from_headers
from .state import Context

KEY_ROUTE = "/v1/namespaces/{ns}/keys/{key}"
_KEY_PATH = re.compile(r"/v1/namespaces/([^/]+)/keys/([^/]+)")
METHODS = frozenset(("GET", "HEAD", "PUT"))


def match(method: str, path: str) -> tuple[str, str] | None:
    """``(raw namespace, raw key)`` when this request is one the fast path answers."""
    if method not in METHODS:
        return None
    found = _KEY_PATH.fullmatch(path)
    return (found[1], found[2]) if found else None


async def answer(ctx: Context, scope: Any, receive: Any, raw_ns: str, raw_key: str) -> Response:
    headers: dict[str, str] = {}
    for k, v in scope["headers"]:  # the first of repeated headers, as Starlette reads them
        headers.setdefault(k.decode("latin-1"), v.decode("latin-1"))
    client = scope.get("client")
    try:
        who = await ctx.keyring.authenticate(
            secret_from_headers(headers), client[0] if client else "unknown"
        )
        method = scope["method"]
        if method == "GET":
            return await v1.get_value(ctx, who, raw_ns, raw_key)
        if method == "HEAD":
            return await v1.get_meta(ctx, who, raw_ns, raw_key)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        body = await _body(receive)
        return await v1.put_value(ctx, who, raw_ns, raw_key, headers, query.get("ttl"), body)
    except Exception as exc:  # the routes' exception handlers, for this path
        errors.count(ctx, errors.code_for(exc))
        return errors.for_exception(exc)


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()  # a partial body is never stored
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
