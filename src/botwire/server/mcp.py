"""``/mcp``: the call tools (``botwire.mcp_tools``) over the Model Context Protocol.

``POST /mcp`` is streamable HTTP in stateless mode (no session: any replica answers any request,
and a restarted server goes on answering); ``GET /mcp/sse`` with ``POST /mcp/messages/`` is the
older SSE transport for clients that speak only it (its stream lives in one process: one
replica, or sticky routing).

**Who may call** is checked before any MCP code runs (401, 429 for a client that keeps guessing):
an API key (``Authorization: Bearer``, ``X-API-Key``), or one of the voice platforms' secrets
configured on this server (the platform itself, like its webhooks).

**Whose memory** a tool touches comes from the request's headers, set by the platform or the
client's own configuration, never from the model's arguments:

* ``X-Call-Id`` (Vapi sends it): the caller that the call's verified call-start webhook named
  (``calls.py``);
* ``X-Botwire-Caller``: a phone number in the client's configuration (a LiveKit worker, an
  agent's request header filled from the platform's caller variable); ``X-Botwire-Call-Id``
  names the call for provenance.

Then the key's prefixes bound it: a key for ``phone:+1415`` never reaches another caller.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import AuthenticationFailed, BotWireError, MissingDependency
from ..voice.core import MCP_TOOLS
from ..voice.facts import Origin
from ..voice.phone import InvalidNumber
from ..voice.settings import SECRETS
from . import calls, errors
from .auth import Principal, secret_from_headers
from .voice import VOICE, Voice, tool_in, unknown_caller

log = logging.getLogger("botwire.mcp")
PRINCIPAL = "botwire.principal"


class NotInstalled(MissingDependency):
    """``/mcp`` on a server without the ``mcp`` extra: 501, naming the install."""

    code = "not_installed"


WRITES = frozenset({"remember", "remember_fact", "forget"})
TOOL_NAMES = frozenset(MCP_TOOLS)


class Endpoint:
    """The MCP server of one running app: built and run by the app's lifespan."""

    def __init__(self) -> None:
        from mcp.server.sse import SseServerTransport
        from mcp.server.streamable_http_manager import (
            StreamableHTTPASGIApp,
            StreamableHTTPSessionManager,
        )
        from mcp.server.transport_security import TransportSecuritySettings

        from .. import mcp_tools

        # the Host header is the proxy's business here (an API key is required anyway)
        open_hosts = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self.tools = mcp_tools
        self.server = mcp_tools.build(answer)
        self.manager = StreamableHTTPSessionManager(
            app=self.server, stateless=True, json_response=True, security_settings=open_hosts
        )
        self.sdk = StreamableHTTPASGIApp(self.manager)
        self.sse = SseServerTransport("/mcp/messages/", security_settings=open_hosts)

    async def streamable(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /mcp``: a plain ``tools/call`` (the one request of a tool call, and of most
        of a session) answered here from the same ``answer`` as the SDK's server; everything
        else (``initialize``, ``tools/list``, notifications, batches, newer protocol revisions)
        by the SDK, the body handed on as it came."""
        body = await _body(receive)
        request = Request(scope, receive)
        call = direct_call(request, body)
        if call is None:
            await self.sdk(scope, _replay(body, receive), send)
            return
        ident, name, args = call
        text, ok = await answer(_Direct(request), name, args)
        result = self.tools.result(text, ok).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        result.pop("resultType", None)  # newer revisions' field: the handshake ones have none
        reply = JSONResponse({"jsonrpc": "2.0", "id": ident, "result": result})
        await reply(scope, receive, send)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The session manager's task group, held by a task of its own: an app's lifespan may
        start and stop in two different tasks, which a task group does not allow."""
        started, stop = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with self.manager.run():
                started.set()
                await stop.wait()

        task = asyncio.create_task(hold())
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()  # it failed to start: say why
        try:
            yield
        finally:
            stop.set()
            await task

    async def sse_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.sse.connect_sse(scope, receive, send) as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())


@dataclass(frozen=True)
class _Direct:
    """What ``answer`` reads of the SDK's request context: the HTTP request."""

    request: Request


def direct_call(request: Request, body: bytes) -> tuple[Any, str, dict[str, Any]] | None:
    """``(id, tool, arguments)`` of a single ``tools/call`` the SDK would answer the same way
    (JSON in and out, a handshake protocol revision, a known tool); None: the SDK's to answer."""
    from mcp.server.streamable_http import check_accept_headers
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    version = request.headers.get("mcp-protocol-version")
    if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
        return None
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json" or not check_accept_headers(request)[0]:
        return None
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return None
    ident, params = message.get("id"), message.get("params")
    if message.get("method") != "tools/call" or not _an_id(ident) or not isinstance(params, dict):
        return None
    name, args = params.get("name"), params.get("arguments", {})
    if name not in TOOL_NAMES or not isinstance(args, dict) or set(params) - {"name", "arguments"}:
        return None
    return ident, name, args


def _an_id(ident: Any) -> bool:
    return (isinstance(ident, str) or type(ident) is int) and ident != ""


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read given again, then the client's own messages."""
    sent = False

    async def again() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def start() -> Endpoint | None:
    """The endpoint, or None when the ``mcp`` extra is not installed (``/mcp`` then says so)."""
    try:
        return Endpoint()
    except ImportError:
        return None


def routes() -> list[BaseRoute]:
    return [
        Route("/mcp", STREAMABLE, methods=["POST"]),
        Route("/mcp/sse", Gate(lambda e: e.sse_stream), methods=["GET"]),
        Mount("/mcp/messages", app=Gate(lambda e: e.sse.handle_post_message)),
    ]


class Gate:
    """The endpoint's ``part``, behind the key check (an ASGI app, as Starlette routes take)."""

    def __init__(self, part: Callable[[Endpoint], ASGIApp]) -> None:
        self.part = part

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        ctx = request.app.state.ctx
        try:
            scope.setdefault("state", {})[PRINCIPAL] = await authenticate(request)
        except AuthenticationFailed as exc:
            await _refuse(scope, receive, send, exc)
            return
        if ctx.mcp is None:
            await _refuse(scope, receive, send, NotInstalled("/mcp", "mcp"))
            return
        await self.part(ctx.mcp)(scope, receive, send)


STREAMABLE = Gate(lambda e: e.streamable)  # POST /mcp, which ``Edge`` answers directly too


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    response = errors.for_exception(exc)
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="botwire"'
    errors.count(Request(scope).app.state.ctx, errors.code_for(exc))
    await response(scope, receive, send)


async def authenticate(request: Request) -> Principal:
    """An API key's principal, or the voice platforms' own for one of their secrets."""
    secret = secret_from_headers(request.headers)
    voice: Voice = request.app.state.ctx.voice.now()
    if secret and _is_voice_secret(voice, secret):
        return VOICE
    client = request.client.host if request.client else "unknown"
    return await request.app.state.ctx.keyring.authenticate(secret, client)  # type: ignore[no-any-return]


def _is_voice_secret(voice: Voice, secret: str) -> bool:
    given = secret.encode()
    found = False
    for name in SECRETS:  # every one compared, in constant time
        value = getattr(voice.settings, name)
        found |= bool(value) and hmac.compare_digest(given, str(value).encode())
    return found


# -- one tool call ------------------------------------------------------------------------


async def answer(ctx: Any, name: str, args: dict[str, Any]) -> tuple[str, bool]:
    """Tool ``name`` for the caller the request's headers bind it to (``mcp_tools.Answer``)."""
    request: Request = ctx.request
    who: Principal = request.scope["state"][PRINCIPAL]
    voice: Voice = request.app.state.ctx.voice.now()
    bound = await bind(voice, request.headers)
    if isinstance(bound, str):
        return bound, False
    right = "write" if name in WRITES else "read"
    if not who.can(bound.ns, right):
        return f"This API key may not {right} this caller's memory.", False
    origin = Origin("mcp", bound.platform, bound.call_id)
    try:
        return await tool_in(voice, bound.ns, name, args, origin, who)
    except BotWireError as exc:  # the database is away, say: a tool error, in words
        log.warning("mcp: tool %s failed: %s", name, exc)
        return "The memory is unavailable right now.", False


async def bind(voice: Voice, headers: Any) -> calls.Bound | str:
    """The call's caller from the headers, or why there is none (said to the model)."""
    call_id = headers.get("x-call-id")
    if call_id:
        found = await calls.lookup(voice.engine, call_id)
        if found is not None:
            return found  # the caller, or why the call's caller has no memory
    number = headers.get("x-botwire-caller")
    if number:
        try:
            ns = voice.namespace(number)
        except InvalidNumber as exc:
            return unknown_caller(exc)
        platform = headers.get("x-botwire-platform") or "mcp"
        return calls.Bound(ns, platform, headers.get("x-botwire-call-id") or call_id)
    if call_id:
        return (
            "This call is not known to botwire: its call-start webhook has not reached this "
            "server, so nothing is remembered in it."
        )
    return (
        "This request names no call, so botwire cannot tell whose memory to use: the client "
        "sends X-Call-Id (Vapi) or X-Botwire-Caller."
    )
