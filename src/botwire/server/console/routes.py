"""``/console``: the pages, their forms, and what every answer carries.

A page is a route of ``router``; each route's handler is wrapped (``ConsoleRoute``) so that every
answer, an error's too, gets the security headers (``HEADERS``) and errors become pages rather
than the API's JSON. Who is asking is the session's key (``sessions.py``), checked by the same
``Principal`` methods as ``/v1``: a key sees only namespaces within its prefixes, a read key
gets no edit controls and its forms are refused (403), forgetting needs admin.

Every ``POST`` carries the session's CSRF token (compared in constant time; 403 without it);
the sign-in form carries one of its own, paired with a short-lived cookie. Sign-in is throttled
by the server's ``KeyRing``, exactly as bad API keys are.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, RedirectResponse, Response

from ..._codec import check_name
from ..._version import __version__
from ..._wire import make_cursor, redact, segment
from ...engines import base as ops
from ...engines.sql import utc_day
from ...errors import (
    AuthenticationFailed,
    InvalidInput,
    NotFound,
    PermissionDenied,
    StorageUnavailable,
    VersionConflict,
)
from ...memory import AsyncMemory
from ...voice import core, facts
from ...voice.facts import Origin
from ...voice.platforms.registry import BY_NAME
from .. import keys, v1
from ..auth import Principal, TooManyFailures
from ..errors import code_for, count, for_exception
from ..state import Context
from . import render, view
from .sessions import Session, Sessions

COOKIE = "botwire_console"
SIGN_IN_COOKIE = "botwire_console_sign_in"
SIGN_IN_SECONDS = 3600  # a sign-in form is good for an hour
LIST_PAGE = 50
CONSOLE = Origin("console", None, None)
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {
    "console.css": "text/css",
    "console.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
_STATUS = {
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "version_conflict": 409,
    "too_many_auth_failures": 429,
    "storage_unavailable": 503,
}


class ConsoleRoute(APIRoute):
    """Errors as pages, and the security headers on every answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a page
                response = error_page(request, exc)
            response.headers.update(HEADERS)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return answer


router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


# -- plumbing ---------------------------------------------------------------------------------


def base(request: Request) -> str:
    return str(request.scope.get("root_path", "")) + "/console"


def ctx_of(request: Request) -> Context:
    return v1.ctx_of(request)


def sessions_of(request: Request) -> Sessions:
    """The app's session store, made on first use."""
    ctx = ctx_of(request)
    held = getattr(request.app.state, "console_sessions", None)
    if not isinstance(held, Sessions) or held.engine is not ctx.engine:
        settings = ctx.settings
        held = Sessions(ctx.engine, settings.console_idle, settings.console_max_age)
        request.app.state.console_sessions = held
    return held


class SignIn(Exception):
    """No live session: to the sign-in page (``expired`` when the browser had one)."""

    def __init__(self, expired: bool) -> None:
        super().__init__("sign in first")
        self.expired = expired


@dataclass(frozen=True)
class Visitor:
    """A signed-in browser: its key (``who``) and session."""

    who: Principal
    session: Session

    def can(self, ns: str, right: str) -> bool:
        return self.who.can(ns, right)

    @property
    def rights(self) -> str:
        return self.who.key.rights


async def visitor(request: Request) -> Visitor:
    cookie = request.cookies.get(COOKIE)
    found = await sessions_of(request).find(cookie)
    if found is None:
        raise SignIn(expired=bool(cookie))
    session, key = found
    return Visitor(Principal(key), session)


async def form_of(request: Request) -> dict[str, str]:
    """The urlencoded body of a form (the last value of a repeated field wins)."""
    body = await request.body()
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise InvalidInput("the form is not UTF-8") from None


async def posted(request: Request) -> tuple[Visitor, dict[str, str]]:
    """A state-changing request: a live session and its CSRF token, or 403."""
    try:
        who = await visitor(request)
    except SignIn:
        raise PermissionDenied("your console session has ended: sign in again") from None
    form = await form_of(request)
    if not who.session.csrf_ok(form.get("csrf")):
        raise PermissionDenied("this form is missing its security token: reload the page")
    return who, form


def page(
    request: Request,
    name: str,
    status: int = 200,
    who: Visitor | None = None,
    **values: Any,
) -> Response:
    html = render.page(
        name,
        base=base(request),
        who=who,
        csrf=who.session.csrf if who is not None else "",
        version=__version__,
        **values,
    )
    return Response(html, status, media_type="text/html; charset=utf-8")


def to(request: Request, path: str, **query: Any) -> RedirectResponse:
    shown = {k: v for k, v in query.items() if v not in (None, "")}
    tail = f"?{urlencode(shown)}" if shown else ""
    return RedirectResponse(base(request) + path + tail, status_code=303)


def caller_path(ns: str) -> str:
    return f"/callers/{segment(ns)}"


def error_page(request: Request, exc: Exception) -> Response:
    if isinstance(exc, SignIn):
        return to(request, "/sign-in", expired=1 if exc.expired else None)
    if isinstance(exc, RequestValidationError):
        exc = InvalidInput("the request's parameters are not valid")
    if isinstance(exc, HTTPException):
        return page(request, "error.html", exc.status_code, message=str(exc.detail))
    code = code_for(exc)
    count(ctx_of(request), code)  # in the metrics, as the API's errors
    if code in ("internal", "storage_unavailable"):
        for_exception(exc)  # logged under the request id, as the API logs it
    if code == "internal":
        return page(request, "error.html", 500, message="Something went wrong here.")
    status = _STATUS.get(code, 400)
    message = str(exc)
    if isinstance(exc, StorageUnavailable):
        message = "The database is not available right now; try again shortly."
    response = page(request, "error.html", status, message=message)
    if isinstance(exc, TooManyFailures):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def memory_of(ctx: Context, ns: str) -> AsyncMemory:
    return AsyncMemory(ns, engine=ctx.engine, max_value_bytes=ctx.settings.max_value_bytes)


def namespace(raw: str, who: Visitor, right: str = "read") -> str:
    ns = v1.name(raw, "namespace")
    who.who.require(ns, right)
    return ns


# -- static files -----------------------------------------------------------------------------


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in _STATIC_TYPES:
        raise NotFound(f"no console file {name!r}")
    response = FileResponse(STATIC / name, media_type=_STATIC_TYPES[name])
    response.headers["Cache-Control"] = "max-age=300"
    return response


# -- signing in and out -------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    await visitor(request)
    return to(request, "/callers")


def _sign_in_form(request: Request, status: int = 200, **values: Any) -> Response:
    token = secrets.token_urlsafe(32)
    response = page(request, "sign_in.html", status, sign_in_token=token, **values)
    set_cookie(request, response, SIGN_IN_COOKIE, token, SIGN_IN_SECONDS)
    return response


def set_cookie(request: Request, response: Response, name: str, value: str, age: float) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(age),
        path=base(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    if await sessions_of(request).find(request.cookies.get(COOKIE)) is not None:
        return to(request, "/callers")
    query = request.query_params
    return _sign_in_form(request, expired="expired" in query, signed_out="signed_out" in query)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await form_of(request)
    token, expected = form.get("sign_in_token", ""), request.cookies.get(SIGN_IN_COOKIE, "")
    if not (token and expected and secrets.compare_digest(token.encode(), expected.encode())):
        return _sign_in_form(request, 403, error="This form expired: sign in again.")
    ctx = ctx_of(request)
    client = request.client.host if request.client else "unknown"
    try:
        who = await ctx.keyring.authenticate(form.get("api_key", "").strip() or None, client)
    except TooManyFailures as exc:
        response = _sign_in_form(request, 429, error="Too many failed attempts; wait a minute.")
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except AuthenticationFailed:
        return _sign_in_form(request, 401, error="That API key is not valid.")
    session_id = await sessions_of(request).open(who.key)
    response = to(request, "/callers")
    set_cookie(request, response, COOKIE, session_id, ctx.settings.console_max_age)
    response.delete_cookie(SIGN_IN_COOKIE, path=base(request))
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await posted(request)
    await sessions_of(request).close(request.cookies.get(COOKIE))
    response = to(request, "/sign-in", signed_out=1)
    response.delete_cookie(COOKIE, path=base(request))
    return response


# -- callers ------------------------------------------------------------------------------------


async def listing(
    request: Request, who: Visitor, q: str, cursor: str | None
) -> tuple[str, list[str], str | None]:
    """One page of the namespaces within the key's prefixes that start with what ``q`` names."""
    prefix = view.search_prefix(q, ctx_of(request).voice.now().config) if q else ""
    if prefix:
        view.check_namespace(prefix)
    after = v1.cursor_after(cursor)
    found: list[str] = []
    for scope in who.who.listing_prefixes(prefix):
        if len(found) >= LIST_PAGE:
            break
        op = ops.Namespaces(scope, after, LIST_PAGE - len(found))
        found += await ctx_of(request).engine.aexecute(op)
    more = make_cursor(found[-1]) if len(found) == LIST_PAGE else None
    return prefix, found, more


@router.get("/callers")
async def callers(request: Request, q: str = "", cursor: str | None = None) -> Response:
    who = await visitor(request)
    prefix, names, more = await listing(request, who, q, cursor)
    rows = await view.caller_rows(ctx_of(request).engine, names)
    return page(
        request,
        "callers.html",
        who=who,
        q=q,
        prefix=prefix,
        rows=rows,
        more=more,
        forgotten=request.query_params.get("forgotten"),
    )


async def caller_page(
    request: Request,
    who: Visitor,
    ns: str,
    status: int = 200,
    cursor: view.Cursor | None = None,
    **values: Any,
) -> Response:
    ctx = ctx_of(request)
    memory = memory_of(ctx, ns)
    config = ctx.voice.now().config
    brief = await core.arun(core.briefing(config.budget, config.variables), memory)
    return page(
        request,
        "caller.html",
        status,
        who=who,
        ns=ns,
        facts=await view.fact_views(memory),
        open_items=await view.open_items(memory),
        timeline=await view.timeline(memory, cursor),
        cursor=cursor,
        notes=await view.notes(memory),
        memory_text=brief.memory,
        **values,
    )


@router.get("/callers/{ns}")
async def caller(request: Request, ns: str, before: str | None = None) -> Response:
    who = await visitor(request)
    name = namespace(ns, who)
    cursor = view.Cursor.parse(before)
    query = request.query_params
    return await caller_page(
        request, who, name, cursor=cursor, saved=query.get("saved"), deleted=query.get("deleted")
    )


def parse_value(raw: str, form: str) -> Any:
    if form == "text":
        return raw
    try:
        return v1.parse_json(raw.encode())
    except InvalidInput as exc:
        message = f"the value is not valid JSON ({exc}); choose Text to store it as text"
        raise InvalidInput(message) from None


def version_of(raw: str | None) -> int:
    if raw is None or not raw.isdigit() or len(raw) > 18:
        raise InvalidInput("the form has no valid version: reload the page")
    return int(raw)


async def edit_fact(
    ctx: Context, who: Principal, ns: str, key: str, value: Any, version: int
) -> None:
    """Compare-and-set one fact over the version the form showed (0: absent), recorded as the
    console's, charged against the namespace's quotas like any write; another version is
    ``VersionConflict`` and nothing is written."""
    cost = core.cost([value, core.Provenance(CONSOLE.entry(value))])
    plan = facts.put(key, lambda _: value, CONSOLE, expected=version)
    await ctx.quotas.charged(who, ns, cost, lambda: core.arun(plan, memory_of(ctx, ns)))


def fact_key(raw: str | None) -> str:
    key = check_name((raw or "").strip())
    if not facts.is_plain(key):
        raise InvalidInput(f"{key!r} is kept by botwire itself and cannot be edited here")
    return key


@router.post("/callers/{ns}/facts")
async def save_fact(request: Request, ns: str) -> Response:
    who, form = await posted(request)
    name = namespace(ns, who, "write")
    key = fact_key(form.get("key"))
    value = parse_value(form.get("value", ""), form.get("format", "text"))
    version = version_of(form.get("version"))
    ctx = ctx_of(request)
    try:
        await edit_fact(ctx, who.who, name, key, value, version)
    except VersionConflict:
        current = await view.fact_views(memory_of(ctx, name))
        now = next((f for f in current if f.fact.key == key), None)
        conflict = {"key": key, "mine": view.as_field(value), "now": now}
        return await caller_page(request, who, name, 409, conflict=conflict)
    return to(request, caller_path(name), saved=key)


@router.post("/callers/{ns}/facts/delete")
async def delete_fact(request: Request, ns: str) -> Response:
    who, form = await posted(request)
    name = namespace(ns, who, "write")
    key = fact_key(form.get("key"))
    version = version_of(form.get("version"))
    if version < 1:
        raise InvalidInput("the form names no version of the fact to delete: reload the page")
    memory = memory_of(ctx_of(request), name)
    try:
        await core.arun(facts.delete(key, CONSOLE, expected=version), memory)
    except VersionConflict:
        now = [f for f in await view.fact_views(memory) if f.fact.key == key]
        conflict = {"key": key, "mine": None, "now": now[0] if now else None}
        return await caller_page(request, who, name, 409, conflict=conflict)
    return to(request, caller_path(name), deleted=key)


@router.get("/callers/{ns}/search")
async def search(request: Request, ns: str, q: str = "") -> Response:
    who = await visitor(request)
    name = namespace(ns, who)
    memory = memory_of(ctx_of(request), name)
    recall = await core.arun(core.recall(q, 10), memory) if q.strip() else None
    hits = await memory.search(q, 20) if q.strip() else []
    shown = [h for h in hits if h.key is None or facts.is_plain(h.key)]
    return page(request, "search.html", who=who, ns=name, q=q, recall=recall, hits=shown)


@router.get("/callers/{ns}/export")
async def export(request: Request, ns: str) -> Response:
    who = await visitor(request)
    name = namespace(ns, who)
    data = await view.export(memory_of(ctx_of(request), name))
    text = json.dumps(data, ensure_ascii=False, indent=2)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100]
    headers = {"Content-Disposition": f'attachment; filename="botwire-{safe}.json"'}
    return Response(text, 200, headers, media_type="application/json")


@router.get("/callers/{ns}/forget")
async def forget_page(request: Request, ns: str) -> Response:
    who = await visitor(request)
    name = namespace(ns, who, "admin")
    return page(request, "forget.html", who=who, ns=name)


@router.post("/callers/{ns}/forget")
async def forget(request: Request, ns: str) -> Response:
    who, form = await posted(request)
    name = namespace(ns, who, "admin")
    if form.get("confirm", "") != name:
        message = "The namespace you typed does not match; nothing was forgotten."
        return page(request, "forget.html", 400, who=who, ns=name, error=message)
    await ctx_of(request).engine.aexecute(ops.Forget(name))
    return to(request, "/callers", forgotten=name)


# -- usage --------------------------------------------------------------------------------------


@router.get("/usage")
async def usage(request: Request, q: str = "", cursor: str | None = None) -> Response:
    who = await visitor(request)
    prefix, names, more = await listing(request, who, q, cursor)
    ctx = ctx_of(request)
    day = utc_day(time.time())
    rows = []
    for ns in names:  # the quotas' own counters: the day's writes and the bytes stored
        writes = await ctx.engine.aexecute(ops.Writes(ns, day))
        stored = await ctx.engine.aexecute(ops.Usage(ns))
        rows.append((ns, writes, stored))
    writes_limit, bytes_limit = ctx.quotas.limits(who.who)
    return page(
        request,
        "usage.html",
        who=who,
        q=q,
        prefix=prefix,
        rows=rows,
        more=more,
        writes_limit=writes_limit,
        bytes_limit=bytes_limit,
    )


# -- keys (admin) -------------------------------------------------------------------------------


async def keys_page(request: Request, who: Visitor, status: int = 200, **values: Any) -> Response:
    """The keys within the visitor's prefixes, as ``GET /v1/keys`` lists them."""
    mine = await keys.listed(ctx_of(request), who.who)
    return page(request, "keys.html", status, who=who, keys=mine[::-1], **values)


@router.get("/keys")
async def keys_index(request: Request) -> Response:
    who = await visitor(request)
    return await keys_page(request, who, revoked=request.query_params.get("revoked"))


def _optional_int(raw: str | None, what: str) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 16:
        raise InvalidInput(f"{what} must be a whole number (0: unlimited), or empty")
    return int(raw)


@router.post("/keys")
async def create_key(request: Request) -> Response:
    """As ``POST /v1/keys``: within the maker's prefixes and rights, no more quota than it has;
    the secret is shown on this answer only."""
    who, form = await posted(request)
    who.who.require_right("admin")
    prefixes = [p.strip() for p in form.get("prefixes", "").replace(",", "\n").splitlines()]
    prefixes = [p for p in prefixes if p] or ([""] if form.get("every") == "on" else [])
    limits = (
        _optional_int(form.get("writes_per_day"), "writes per day"),
        _optional_int(form.get("max_bytes"), "max bytes"),
    )
    rights, name = form.get("rights", "read"), form.get("name", "")
    secret, record = await keys.create(ctx_of(request), who.who, name, prefixes, rights, *limits)
    return await keys_page(request, who, 201, created=record, secret=secret)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    """As ``DELETE /v1/keys/{id}``: only an active key within the revoker's prefixes."""
    who, _ = await posted(request)
    who.who.require_right("admin")
    key_id = v1.name(key_id, "key id")
    await keys.revoke(ctx_of(request), who.who, key_id)
    return to(request, "/keys", revoked=key_id)


# -- status -------------------------------------------------------------------------------------


@router.get("/status")
async def status(request: Request) -> Response:
    who = await visitor(request)
    ctx = ctx_of(request)
    try:
        await ctx.engine.aexecute(ops.FindKey("readyz"))
        database_ok = True
    except StorageUnavailable:
        database_ok = False
    root = str(request.base_url).rstrip("/")
    platforms = []
    for name, on in ctx.voice.now().settings.enabled().items():
        routes = [root + route.path for route in BY_NAME[name].routes]
        platforms.append((name, on, routes))
    operator = who.who.covers("") and who.rights == "admin"
    return page(
        request,
        "status.html",
        who=who,
        database=redact(ctx.engine.url) if operator else None,
        database_ok=database_ok,
        platforms=platforms,
    )


# -- anything else under /console -----------------------------------------------------------


@router.api_route("/{rest:path}", methods=["GET", "POST", "HEAD"])
async def missing(request: Request, rest: str) -> Response:
    raise NotFound("There is no such page in the console.")
