"""``/memory``: the wire protocol of the botwire 0.2 client, so its users only change BOTWIRE_URL.

That client stores strings (it JSON-encodes anything else itself), so values here are strings;
a value written through ``/v1`` that is not a string is returned as its JSON text. Auth, scopes
and quotas are those of ``/v1``. Errors carry the ``{"detail": ...}`` that client reads as well
as the ``{"error": {...}}`` body of the rest of the API (added in ``errors._legacy``).
"""

from __future__ import annotations


from fastapi import APIRouter, Request
from starlette.responses import Response

from .._codec import decode, encode
from ..engines import base as ops
from ..errors import InvalidInput, NotFound
from .errors import LegacyErrorBody, documented
from .v1 import READ, WRITE, PageLimit, Who, ctx_of, json_body, json_object, json_object_of, name
from .v1 import read_row, reply, write

router = APIRouter(prefix="/memory", tags=["botwire 0.2 compatibility"])
VALUE = json_object_of(("value",), value={"type": "string"})


def _as_string(text: str | None) -> str:
    value = decode(text or "null")
    return value if isinstance(value, str) else str(text)


@router.put(
    "/{namespace}/{key:path}",
    summary="Store a string (botwire 0.2)",
    responses=documented(*WRITE, model=LegacyErrorBody),
    openapi_extra=json_body(VALUE),
)
async def put(request: Request, namespace: str, key: str, who: Who) -> Response:
    ctx = ctx_of(request)
    namespace, key = name(namespace, "namespace"), name(key)
    who.require(namespace, "write")
    body = await json_object(request, "value")
    value = body.get("value")
    if not isinstance(value, str):
        raise InvalidInput('the body must be {"value": "<string>"}')
    text = encode(value, ctx.settings.max_value_bytes)
    size = len(text.encode())  # as stored, the size the listing reports too
    await write(ctx, who, ops.Put(namespace, ((key, text),)), namespace, 1, size)
    return reply({"namespace": namespace, "key": key, "stored": True, "bytes": size})


@router.get(
    "/{namespace}/{key:path}",
    summary="Read a string (botwire 0.2)",
    responses=documented(*READ, "not_found", model=LegacyErrorBody),
)
async def get(request: Request, namespace: str, key: str, who: Who) -> Response:
    row = await read_row(ctx_of(request), who, namespace, key)
    return reply(
        {
            "namespace": name(namespace, "namespace"),
            "key": row.key,
            "value": _as_string(row.value),
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


@router.delete(
    "/{namespace}/{key:path}",
    summary="Delete a key (botwire 0.2)",
    responses=documented(*READ, "not_found", model=LegacyErrorBody),
)
async def delete(request: Request, namespace: str, key: str, who: Who) -> Response:
    namespace, key = name(namespace, "namespace"), name(key)
    who.require(namespace, "write")
    if not await ctx_of(request).engine.aexecute(ops.Delete(namespace, key)):
        raise NotFound(f"key {key!r} not found in namespace {namespace!r}")
    return reply({"deleted": True, "namespace": namespace, "key": key})


@router.get(
    "/{namespace}",
    summary="List keys, newest first (botwire 0.2)",
    responses=documented(*READ, model=LegacyErrorBody),
)
async def list_keys(
    request: Request, namespace: str, who: Who, limit: PageLimit = 100
) -> Response:
    namespace = name(namespace, "namespace")
    who.require(namespace, "read")
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000")
    # botwire's own ~ names stay out, as in /v1 listings; the query skips them, so limit holds
    rows = await ctx_of(request).engine.aexecute(ops.Recent(namespace, limit, internal=False))
    keys = [{"key": r.key, "bytes": r.size, "updated_at": r.updated_at} for r in rows]
    return reply({"namespace": namespace, "count": len(keys), "keys": keys})
