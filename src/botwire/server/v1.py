"""``/v1``: every engine operation over HTTP.

Namespaces, keys and log names are single path segments, percent-encoded by the client (a
``/`` inside a key is ``%2F``); the edge middleware routes on the raw path and ``name`` decodes
each segment. A key's value travels as the raw JSON body (``PUT``) or answer (``GET``), its
version as the ``ETag``: ``If-Match: "7"`` writes only over version 7, ``If-None-Match: *`` only
when the key is absent, and a mismatch is 412 with the current version in the error body.
"""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from .. import _codec, _search
from .._codec import check_name, check_ttl, decode, encode
from .._wire import make_cursor, read_cursor
from ..engines import base as ops
from ..engines.sql import utc_day
from ..errors import InvalidInput, NotFound, UnsupportedValue
from . import keys
from .auth import MAX_QUOTA, Principal, secret_from_headers
from .errors import InvalidCursor, MalformedJson, NotAnInteger, documented
from .state import Context

MAX_PAGE = 1000
MISSING_HEADER = "X-Botwire-Error"
MAX_LAST = 100_000  # entries in one read(last=N)
router = APIRouter(prefix="/v1")

# What the OpenAPI document says: the error codes each kind of route answers, and the bodies.
ANY = ("unauthorized", "too_many_auth_failures", "body_too_large", "invalid_request",
       "storage_unavailable")
READ = (*ANY, "invalid_key", "invalid_input", "forbidden")
WRITE = (*READ, "malformed_json", "value_too_large", "storage_quota_exceeded",
         "write_quota_exceeded")
NAME = {"type": "string", "minLength": 1, "maxLength": _codec.MAX_NAME_CHARS,
        "pattern": "^[^\\u0000]*$"}
META = {"description": "`true`: each item is the key's metadata (anything else: its value)"}
TTL = {"type": ["number", "null"], "exclusiveMinimum": 0, "description": "seconds to live"}


def bounded(low: int, high: int) -> Any:
    """A query parameter's documented range, checked by the route itself (400 outside it)."""
    return Query(json_schema_extra={"minimum": low, "maximum": high})


PageLimit = Annotated[int, bounded(1, MAX_PAGE)]
INT64_END = 2**63  # an exclusive bound: 2**63 - 1 has no exact floating-point value
SEQ = {"minimum": 0, "exclusiveMaximum": INT64_END}


def json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its JSON body itself."""
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}


def json_object_of(required: tuple[str, ...], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


# -- request plumbing ---------------------------------------------------------------------------


def ctx_of(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


async def authenticate(request: Request) -> Principal:
    client = request.client.host if request.client else "unknown"
    secret = secret_from_headers(request.headers)
    return await ctx_of(request).keyring.authenticate(secret, client)


Who = Annotated[Principal, Depends(authenticate)]


def name(raw: str, what: str = "key") -> str:
    """A path segment as the client meant it: percent-decoded (strict UTF-8) and checked."""
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise InvalidInput(f"the {what} in the path is not percent-encoded UTF-8") from None
    return check_name(decoded, what)


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"{text[:40]} is too large for a JSON number here")
    return value


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise MalformedJson("the JSON body is nested too deeply") from None
    except ValueError as exc:  # includes UnicodeDecodeError
        raise MalformedJson(f"the body is not valid JSON: {exc}") from None


async def json_object(request: Request, *fields: str) -> dict[str, Any]:
    body = parse_json(await request.body())
    if not isinstance(body, dict):
        raise InvalidInput(f"the body must be a JSON object with {', '.join(fields)}")
    return body


def json_int(value: Any) -> Any:
    """An integer field of a request body as JSON means it: ``340.0`` is the integer 340
    (JSON Schema's ``integer``). Anything else is returned for the field's own check."""
    if type(value) is float and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def reply(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status, headers, media_type="application/json")


def ttl_of(raw: Any) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            raise InvalidInput(f"ttl must be a number of seconds, not {raw!r}") from None
    return check_ttl(raw)


def cursor_after(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        return read_cursor(cursor)
    except InvalidInput as exc:
        raise InvalidCursor(str(exc)) from None


def _bounded(value: int, what: str, maximum: int) -> int:
    value = _codec.check_int(value, what, minimum=0)
    if value > maximum:
        raise InvalidInput(f"{what} must be at most {maximum}")
    return value


def page_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    return limit


def meta(row: ops.Row) -> dict[str, Any]:
    return {
        "key": row.key,
        "version": row.version,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "expires_at": row.expires_at,
        "size": row.size,
    }


def meta_headers(row: ops.Row) -> dict[str, str]:
    headers = {
        "ETag": f'"{row.version}"',
        "X-Botwire-Version": str(row.version),
        "X-Botwire-Created-At": repr(row.created_at),
        "X-Botwire-Updated-At": repr(row.updated_at),
        "X-Botwire-Size": str(row.size),
    }
    if row.expires_at is not None:
        headers["X-Botwire-Expires-At"] = repr(row.expires_at)
    return headers


def version_condition(headers: Any) -> int | None:
    """``If-Match: "7"`` -> 7; ``If-None-Match: *`` -> 0 (only if absent); else no condition."""
    match = headers.get("if-match")
    none_match = headers.get("if-none-match")
    if match is not None and none_match is not None:
        raise InvalidInput("send If-Match or If-None-Match, not both")
    if none_match is not None:
        if none_match.strip() != "*":
            raise InvalidInput('If-None-Match supports only "*" (write only if absent)')
        return 0
    if match is None:
        return None
    tag = match.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    if not (tag.isascii() and tag.isdigit() and len(tag) <= 18):
        raise InvalidInput(f'If-Match takes a version ETag such as "7", not {match[:40]!r}')
    return int(tag) or -1  # "0" is no version a key can have: 412, as for any mismatch


async def write(ctx: Context, who: Principal, op: Any, ns: str, writes: int, added: int) -> Any:
    """Run a write op under the namespace's quotas: charged first, refunded if it fails."""
    return await ctx.quotas.charged(who, ns, (writes, added), lambda: ctx.engine.aexecute(op))


def _value_text(value: Any, ctx: Context) -> str:
    return encode(value, ctx.settings.max_value_bytes)


async def read_row(ctx: Context, who: Principal, raw_ns: str, raw_key: str) -> ops.Row:
    """One key's row with its value, for a key with read rights; ``NotFound`` when missing."""
    ns, key = name(raw_ns, "namespace"), name(raw_key)
    who.require(ns, "read")
    (row,) = await ctx.engine.aexecute(ops.Info(ns, (key,), values=True))
    if row is None:
        raise NotFound(f"key {key!r} not found in namespace {ns!r}")
    return row  # type: ignore[no-any-return]


# -- keys ----------------------------------------------------------------------------------------


# The three single-key routes below are also served by ``fast.py`` without FastAPI's
# routing and dependency injection (they are most of the traffic); both call these functions.


async def get_value(ctx: Context, who: Principal, raw_ns: str, raw_key: str) -> Response:
    row = await read_row(ctx, who, raw_ns, raw_key)
    return Response(row.value, 200, meta_headers(row), media_type="application/json")


async def get_meta(ctx: Context, who: Principal, raw_ns: str, raw_key: str) -> Response:
    ns, key = name(raw_ns, "namespace"), name(raw_key)
    who.require(ns, "read")
    (row,) = await ctx.engine.aexecute(ops.Info(ns, (key,)))
    if row is None:
        # no body, as for any HEAD: the header tells botwire's "no such key" from a proxy's 404
        return Response(None, 404, {MISSING_HEADER: "not_found"}, media_type="application/json")
    return Response(None, 200, meta_headers(row), media_type="application/json")


async def put_value(
    ctx: Context, who: Principal, raw_ns: str, raw_key: str, headers: Any, ttl: Any, body: bytes
) -> Response:
    ns, key = name(raw_ns, "namespace"), name(raw_key)
    who.require(ns, "write")
    if_version = version_condition(headers)
    text = _value_text(parse_json(body), ctx)
    op = ops.Put(ns, ((key, text),), ttl_of(ttl), if_version)
    (version,) = await write(ctx, who, op, ns, 1, len(text.encode()))
    return reply({"version": version}, headers={"ETag": f'"{version}"'})


@router.get(
    "/namespaces/{ns}/keys/{key}",
    summary="Get a key's value",
    responses=documented(*READ, "not_found"),
)
async def get_key(request: Request, ns: str, key: str, who: Who) -> Response:
    """The stored JSON value as the body; version and times in headers (`ETag` is the version)."""
    return await get_value(ctx_of(request), who, ns, key)


@router.head(
    "/namespaces/{ns}/keys/{key}",
    summary="A key's version and times, no value",
    responses=documented(*READ, "not_found"),
)
async def head_key(request: Request, ns: str, key: str, who: Who) -> Response:
    return await get_meta(ctx_of(request), who, ns, key)


@router.put(
    "/namespaces/{ns}/keys/{key}",
    summary="Set a key",
    responses=documented(*WRITE, "version_conflict"),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {}, "example": {"orders": ["A-1"]}}},
        }
    },
)
async def put_key(
    request: Request,
    ns: str,
    key: str,
    who: Who,
    ttl: Annotated[float | None, Query(gt=0, description="seconds until the key expires")] = None,
) -> Response:
    """The body is the value (any JSON). `If-Match: "<version>"` / `If-None-Match: *` make it a
    compare-and-set; a mismatch is 412 with `current_version` in the error."""
    body = await request.body()
    return await put_value(ctx_of(request), who, ns, key, request.headers, ttl, body)


@router.delete(
    "/namespaces/{ns}/keys/{key}",
    summary="Delete a key",
    responses=documented(*READ, "not_found", "version_conflict"),
)
async def delete_key(request: Request, ns: str, key: str, who: Who) -> Response:
    """`If-Match: "<version>"` deletes only that version; a mismatch (or a missing key) is
    412 with `current_version` in the error."""
    ns, key = name(ns, "namespace"), name(key)
    who.require(ns, "write")
    if request.headers.get("if-none-match") is not None:
        raise InvalidInput('a delete takes If-Match: "<version>", not If-None-Match')
    if_version = version_condition(request.headers)
    if not await ctx_of(request).engine.aexecute(ops.Delete(ns, key, if_version)):
        raise NotFound(f"key {key!r} not found")
    return reply({"deleted": True})


@router.post(
    "/namespaces/{ns}/keys/{key}/incr",
    summary="Add to an integer key, atomically",
    responses=documented(*WRITE, "not_an_integer"),
    openapi_extra=json_body(json_object_of((), by={"type": "integer"}), required=False),
)
async def incr_key(request: Request, ns: str, key: str, who: Who) -> Response:
    """Body `{"by": 1}` (optional). A missing key counts from 0; a non-integer value is 409."""
    ctx = ctx_of(request)
    ns, key = name(ns, "namespace"), name(key)
    who.require(ns, "write")
    raw = await request.body()
    body = parse_json(raw) if raw.strip() else {}
    if not isinstance(body, dict):
        raise InvalidInput('the body must be a JSON object such as {"by": 1}')
    by = json_int(body.get("by", 1))
    op = ops.Incr(ns, key, _codec.check_int(by, "by"))
    try:
        value = await write(ctx, who, op, ns, 1, 20)
    except UnsupportedValue as exc:
        raise NotAnInteger(str(exc)) from None
    return reply({"value": value})


@router.get(
    "/namespaces/{ns}/keys",
    summary="List keys (paged)",
    responses=documented(*READ, "invalid_cursor"),
)
async def list_keys(
    request: Request,
    ns: str,
    who: Who,
    prefix: str = "",
    cursor: str | None = None,
    limit: PageLimit = 100,
    values: bool = False,
    internal: bool = False,
) -> Response:
    """Keys in code-point order with their metadata (and values with `values=true`). Pass
    `next_cursor` back as `cursor` for the next page; it is `null` on the last one. Keys
    starting with `~` (botwire's bookkeeping) are listed only with `internal=true` or a
    `prefix` starting with `~`."""
    ns = name(ns, "namespace")
    who.require(ns, "read")
    if prefix:
        check_name(prefix, "prefix")
    limit = page_limit(limit)
    op = ops.Scan(ns, prefix, cursor_after(cursor), limit, values, internal)
    rows = await ctx_of(request).engine.aexecute(op)
    items = []
    for row in rows:
        item = meta(row)
        if values:
            item["value"] = decode(row.value)
        items.append(item)
    nxt = make_cursor(rows[-1].key) if len(rows) == limit else None
    return reply({"keys": items, "next_cursor": nxt})


@router.get(
    "/namespaces/{ns}/search",
    summary="Keyword search over keys, values and logs",
    responses=documented(*READ),
)
async def search(
    request: Request,
    ns: str,
    who: Who,
    q: Annotated[str, Query(json_schema_extra={"maxLength": _search.MAX_QUERY_CHARS})],
    limit: Annotated[int, bounded(1, _search.MAX_LIMIT)] = 10,
    internal: bool = False,
) -> Response:
    """Keys and log entries matching any word of `q` (in its other forms too, common English
    words ignored), most relevant first. Each hit is `{"key", "log", "seq", "value", "ts",
    "score"}`: `key` for a stored key, `log` and `seq` for a log entry. Keys and logs named
    with a leading `~` are left out unless `internal=true`."""
    ns = name(ns, "namespace")
    who.require(ns, "read")
    op = ops.Search(ns, _search.terms(q), _search.check_limit(limit), internal)
    hits = await ctx_of(request).engine.aexecute(op)
    return reply({"hits": [
        {"key": h.key, "log": h.log, "seq": h.seq, "value": decode(h.value), "ts": h.ts,
         "score": h.score}
        for h in hits
    ]})


@router.delete(
    "/namespaces/{ns}/keys",
    summary="Delete every key of a namespace",
    responses=documented(*READ),
)
async def clear_keys(request: Request, ns: str, who: Who) -> Response:
    ns = name(ns, "namespace")
    who.require(ns, "write")
    return reply({"deleted": await ctx_of(request).engine.aexecute(ops.Clear(ns))})


@router.post(
    "/namespaces/{ns}/batch/get",
    summary="Get many keys",
    responses=documented(*READ, "malformed_json"),
    openapi_extra=json_body(
        json_object_of(("keys",), keys={"type": "array", "items": NAME}, meta=META)
    ),
)
async def batch_get(request: Request, ns: str, who: Who) -> Response:
    """Body `{"keys": [...], "meta": false}`. Answers `{"items": {key: value}}` for the keys that
    exist; with `meta: true`, each item is the key's metadata instead of its value."""
    ns = name(ns, "namespace")
    who.require(ns, "read")
    body = await json_object(request, "keys")
    keys = _codec.check_names(_list(body.get("keys"), "keys"))
    want_meta = body.get("meta", False) is True
    rows = await ctx_of(request).engine.aexecute(ops.Info(ns, keys, values=not want_meta))
    items = {
        row.key: (meta(row) if want_meta else decode(row.value)) for row in rows if row is not None
    }
    return reply({"items": items})


@router.post(
    "/namespaces/{ns}/batch/set",
    summary="Set many keys, all or nothing",
    responses=documented(*WRITE),
    openapi_extra=json_body(
        json_object_of(("items",), items={"type": "object", "propertyNames": NAME}, ttl=TTL)
    ),
)
async def batch_set(request: Request, ns: str, who: Who) -> Response:
    """Body `{"items": {key: value}, "ttl": null}`. Answers `{"versions": {key: version}}`."""
    ctx = ctx_of(request)
    ns = name(ns, "namespace")
    who.require(ns, "write")
    body = await json_object(request, "items")
    items = body.get("items")
    if not isinstance(items, dict):
        raise InvalidInput('"items" must be an object of key -> value')
    texts = tuple((check_name(k), _value_text(v, ctx)) for k, v in items.items())
    op = ops.Put(ns, texts, ttl_of(body.get("ttl")))
    added = sum(len(t.encode()) for _, t in texts)
    versions = await write(ctx, who, op, ns, len(texts), added)
    return reply({"versions": {k: v for (k, _), v in zip(texts, versions, strict=True)}})


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f'"{what}" must be a JSON array')
    return value


# -- namespaces ---------------------------------------------------------------------------------


@router.get(
    "/namespaces",
    summary="List namespaces (paged, only those the key may read)",
    responses=documented(*ANY, "invalid_key", "invalid_input", "invalid_cursor"),
)
async def list_namespaces(
    request: Request,
    who: Who,
    prefix: str = "",
    cursor: str | None = None,
    limit: PageLimit = 100,
    internal: bool = False,
) -> Response:
    if prefix:
        check_name(prefix, "prefix")
    limit = page_limit(limit)
    after = cursor_after(cursor)
    engine = ctx_of(request).engine
    found: list[str] = []
    if who.key.rights in ("read", "write", "admin"):
        for scope in who.listing_prefixes(prefix):
            if len(found) >= limit:
                break
            page = ops.Namespaces(scope, after, limit - len(found), internal)
            found += await engine.aexecute(page)
    nxt = make_cursor(found[-1]) if len(found) == limit else None
    return reply({"namespaces": found, "next_cursor": nxt})


@router.get(
    "/namespaces/{ns}",
    summary="A namespace's key count, stored bytes and writes today, with its quotas",
    responses=documented(*READ),
)
async def namespace_stats(
    request: Request, ns: str, who: Who, internal: bool = False
) -> Response:
    """`keys` counts the keys a listing shows: with a leading `~` only if `internal=true`.
    `writes_today` counts the writes charged today (UTC) when a daily write quota applies;
    `quotas` are the limits this key's writes meet (null: unlimited)."""
    ns = name(ns, "namespace")
    who.require(ns, "read")
    ctx = ctx_of(request)
    count = await ctx.engine.aexecute(ops.Count(ns, internal))
    used = await ctx.engine.aexecute(ops.Usage(ns))
    writes = await ctx.engine.aexecute(ops.Writes(ns, utc_day(time.time())))
    limits = dict(zip(("writes_per_day", "max_bytes"), ctx.quotas.limits(who), strict=True))
    quotas = {k: v or None for k, v in limits.items()}
    floor = await ctx.engine.aexecute(ops.Floor(ns))
    body = {"namespace": ns, "keys": count, "bytes": used, "writes_today": writes}
    return reply({**body, "quotas": quotas, "version_floor": floor})


@router.get(
    "/namespaces/{ns}/logs",
    summary="List a namespace's logs by name (paged with after)",
    responses=documented(*READ),
)
async def list_logs(
    request: Request,
    ns: str,
    who: Who,
    after: Annotated[str, Query(json_schema_extra={**NAME, "minLength": 0})] = "",
    limit: PageLimit = 100,
    internal: bool = False,
) -> Response:
    """Each log with `last_seq` (the last number handed out) and `count` (entries held);
    `after`: the last name of the previous page."""
    ns = name(ns, "namespace")
    who.require(ns, "read")
    if after:
        check_name(after, "after")
    op = ops.Logs(ns, after or None, page_limit(limit), internal)
    found = await ctx_of(request).engine.aexecute(op)
    logs = [{"name": g.name, "last_seq": g.last_seq, "count": g.entry_count} for g in found]
    return reply({"logs": logs})


@router.post(
    "/namespaces/{ns}/restore",
    summary="Write a namespace exactly as exported (admin); all or nothing",
    responses=documented(*WRITE, "namespace_not_empty"),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "JSON Lines (sent as application/x-ndjson; any type is read)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def restore_namespace(
    request: Request, ns: str, who: Who, replace: bool = False
) -> Response:
    """The body is the namespace's block of a `botwire export` file (JSON Lines, from its
    `{"ns": ...}` line to its `{"end": ...}` line). Answers `{"result": "imported"}`, or
    `"unchanged"` when the namespace already holds exactly this; 409 `namespace_not_empty`
    when it holds other data and `replace=true` is not given."""
    from ..transfer import one_block

    ns = name(ns, "namespace")
    who.require(ns, "admin")
    ctx = ctx_of(request)
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the body must be UTF-8 JSON Lines") from None
    dump = one_block(text.splitlines(), ctx.settings.max_value_bytes)
    if dump.ns != ns:
        raise InvalidInput(f"the block is namespace {dump.ns!r}, the URL names {ns!r}")
    added = sum(_size(r.value) for r in dump.keys) + sum(
        _size(e.value) for g in dump.logs for e in g.entries
    )
    result = await write(ctx, who, dump.op(replace), ns, len(dump.keys) + dump.entries, added)
    return reply({"result": result})


def _size(text: str | None) -> int:
    return len((text or "").encode())


@router.delete(
    "/namespaces/{ns}",
    summary="Forget a namespace: every key and log (admin)",
    responses=documented(*READ),
)
async def forget_namespace(request: Request, ns: str, who: Who) -> Response:
    ns = name(ns, "namespace")
    who.require(ns, "admin")
    return reply({"forgotten": await ctx_of(request).engine.aexecute(ops.Forget(ns))})


# -- logs ---------------------------------------------------------------------------------------


@router.post(
    "/namespaces/{ns}/logs/{log}",
    summary="Append entries to a log",
    responses=documented(*WRITE),
    openapi_extra=json_body(json_object_of(("entries",), entries={"type": "array"})),
)
async def append_log(request: Request, ns: str, log: str, who: Who) -> Response:
    """Body `{"entries": [...]}` (any JSON values). Answers `{"seqs": [...]}`, gap-free."""
    ctx = ctx_of(request)
    ns, log = name(ns, "namespace"), name(log, "log name")
    who.require(ns, "write")
    body = await json_object(request, "entries")
    texts = tuple(_value_text(v, ctx) for v in _list(body.get("entries"), "entries"))
    added = sum(len(t.encode()) for t in texts)
    seqs = await write(ctx, who, ops.Append(ns, log, texts), ns, len(texts), added)
    return reply({"seqs": seqs})


@router.get(
    "/namespaces/{ns}/logs/{log}",
    summary="Read a log, oldest first",
    responses=documented(*READ),
)
async def read_log(
    request: Request,
    ns: str,
    log: str,
    who: Who,
    last: Annotated[int | None, bounded(0, MAX_LAST)] = None,
    after: Annotated[int, Query(json_schema_extra=SEQ)] = 0,
    limit: PageLimit = 100,
) -> Response:
    """`last=N`: the newest N entries. Otherwise up to `limit` entries with `seq > after`."""
    ns, log = name(ns, "namespace"), name(log, "log name")
    who.require(ns, "read")
    after, limit = _bounded(after, "after", 2**63 - 1), page_limit(limit)  # checked with last too
    if last is not None:
        op = ops.Read(ns, log, last=_bounded(last, "last", MAX_LAST))
    else:
        op = ops.Read(ns, log, after=after, limit=limit)
    entries = await ctx_of(request).engine.aexecute(op)
    return reply(
        {"entries": [{"seq": e.seq, "value": decode(e.value), "ts": e.ts} for e in entries]}
    )


@router.get(
    "/namespaces/{ns}/logs/{log}/count",
    summary="How many entries a log holds",
    responses=documented(*READ),
)
async def count_log(request: Request, ns: str, log: str, who: Who) -> Response:
    ns, log = name(ns, "namespace"), name(log, "log name")
    who.require(ns, "read")
    return reply({"count": await ctx_of(request).engine.aexecute(ops.LogCount(ns, log))})


@router.delete(
    "/namespaces/{ns}/logs/{log}",
    summary="Delete every entry of a log",
    responses=documented(*READ),
)
async def clear_log(request: Request, ns: str, log: str, who: Who) -> Response:
    ns, log = name(ns, "namespace"), name(log, "log name")
    who.require(ns, "write")
    return reply({"deleted": await ctx_of(request).engine.aexecute(ops.LogClear(ns, log))})


# -- API keys (admin) ---------------------------------------------------------------------------


def key_json(key: ops.ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefixes": list(key.prefixes),
        "rights": key.rights,
        "writes_per_day": key.writes_per_day,
        "max_bytes": key.max_bytes,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
    }


QUOTA = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_QUOTA}
NEW_KEY = json_object_of(
    ("prefixes",),
    prefixes={"type": "array", "minItems": 1, "items": {**NAME, "minLength": 0}},
    rights={"enum": ["read", "write", "admin"], "default": "read"},
    name={"type": "string", "maxLength": 200},
    writes_per_day=QUOTA,
    max_bytes=QUOTA,
)


@router.post(
    "/keys",
    summary="Create an API key (admin); the secret is shown only here",
    status_code=201,
    responses=documented(*ANY, "invalid_key", "invalid_input", "malformed_json", "forbidden"),
    openapi_extra=json_body(NEW_KEY),
)
async def create_key(request: Request, who: Who) -> Response:
    """Body `{"prefixes": ["acme:"], "rights": "write", "name": "...", "writes_per_day": null,
    "max_bytes": null}`. The new key's prefixes must lie within the caller's."""
    body = await json_object(request, "prefixes", "rights")
    prefixes = _list(body.get("prefixes"), "prefixes")
    if not all(isinstance(p, str) for p in prefixes):
        raise InvalidInput('"prefixes" must be strings')
    limits = json_int(body.get("writes_per_day")), json_int(body.get("max_bytes"))
    who.require_right("admin")
    secret, record = await keys.create(
        ctx_of(request), who, body.get("name", ""), prefixes, body.get("rights", "read"), *limits
    )
    return reply({**key_json(record), "key": secret}, status=201)


@router.get(
    "/keys",
    summary="List API keys within the caller's prefixes (admin)",
    responses=documented(*ANY, "forbidden"),
)
async def list_api_keys(request: Request, who: Who) -> Response:
    return reply({"keys": [key_json(k) for k in await keys.listed(ctx_of(request), who)]})


@router.get(
    "/whoami",
    summary="The calling API key: its id, prefixes, rights and quotas (any key; no secret)",
    responses=documented(*ANY),
)
async def my_api_key(who: Who) -> Response:
    """What `botwire keys rotate` copies into the new key before revoking this one. (Not
    `/v1/keys/me`: that path is also `DELETE /v1/keys/{key_id}`'s.)"""
    return reply(key_json(who.key))


@router.delete(
    "/keys/{key_id}",
    summary="Revoke an API key (admin)",
    responses=documented(*READ, "not_found"),
)
async def revoke_api_key(request: Request, key_id: str, who: Who) -> Response:
    who.require_right("admin")
    revoked = await keys.revoke(ctx_of(request), who, name(key_id, "key id"))
    return reply({"revoked": revoked})
