"""The FastAPI application: ``create_app(settings)``; ``app_from_env()`` for uvicorn workers.

Requests pass through one small ASGI layer (``Edge``) before FastAPI sees them: it routes on
the raw, still percent-encoded path (so a ``/`` inside a key stays inside its segment), refuses
bodies over ``max_body_bytes`` before reading them, gives every request an id (``X-Request-Id``,
``state.REQUEST_ID``), records metrics by route template and writes the access log.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Match

from .._version import __version__
from ..engines import open_engine
from ..engines.base import Engine, FindKey
from ..errors import StorageUnavailable
from ..voice.settings import VoiceSettings
from . import console, docs, errors, fast, legacy, mcp, v1, voice
from .config import Settings
from .errors import BodyTooLarge, error_response
from .metrics import method_label
from .state import REQUEST_ID, Context

Scope = dict[str, Any]
log = logging.getLogger("botwire.server")
access_log = logging.getLogger("botwire.access")
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    voice_settings: VoiceSettings | None = None,
) -> FastAPI:
    """An application over ``engine`` (or one opened from ``settings.database`` at startup,
    closed at shutdown). ``voice_settings`` defaults to ``VoiceSettings.load()``, then follows
    the settings file while the server runs."""
    settings = settings or Settings.from_env()
    live = voice_settings is None
    voice_settings = voice_settings or VoiceSettings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engine is None
        ctx = Context.build(engine or open_engine(settings.database), settings)
        ctx.voice = voice.Voices(voice_settings, ctx.engine, ctx.quotas, live=live)
        ctx.mcp = mcp.start()
        app.state.ctx = ctx
        try:
            await ctx.engine.aexecute(FindKey("startup"))  # create or migrate the schema now
        except StorageUnavailable as exc:  # served anyway: /readyz answers 503 until it answers
            log.warning("the database is not reachable at startup: %s", exc)
        try:
            async with ctx.mcp.running() if ctx.mcp is not None else nullcontext():
                yield
        finally:
            if owned:
                await ctx.engine.aclose()

    app = FastAPI(
        title="botwire",
        version=__version__,
        summary="Persistent memory for voice AI agents: keys, logs and namespaces over HTTP.",
        lifespan=lifespan,
        docs_url=None,  # docs.router serves /docs from local files
        redoc_url=None,
    )
    for exc_class, handler in errors.HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    app.include_router(v1.router)
    app.include_router(legacy.router)
    app.include_router(voice.router, include_in_schema=False)  # platform-shaped: docs/voice.md
    app.include_router(docs.router)
    if settings.console:  # docs/console.md
        app.include_router(console.router)
    app.router.routes.extend(mcp.routes())  # docs/mcp.md
    _add_health(app)
    app.add_middleware(Edge, max_body=settings.max_body_bytes)
    if settings.cors_origins:  # outside Edge, so the fast path's answers get the headers too
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "PUT", "POST", "DELETE", "HEAD"],
            allow_headers=[
                "Authorization",
                "X-API-Key",
                "Content-Type",
                "If-Match",
                "If-None-Match",
                "X-Request-Id",
            ],
            expose_headers=["ETag", "Retry-After", "X-Request-Id"],
        )
    return app


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory``: settings from ``BOTWIRE_*`` variables."""
    return create_app(Settings.from_env())


PROMETHEUS_TEXT = {
    "description": "the Prometheus text exposition format",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


def _add_health(app: FastAPI) -> None:
    @app.get("/healthz", summary="The process is up", tags=["health"])
    async def healthz() -> Response:
        return v1.reply({"status": "ok"})

    @app.get(
        "/readyz",
        summary="The database answers",
        tags=["health"],
        responses=errors.documented("storage_unavailable"),
    )
    async def readyz(request: Request) -> Response:
        try:
            await v1.ctx_of(request).engine.aexecute(FindKey("readyz"))
        except StorageUnavailable as exc:  # the driver's words go to the log only
            return errors.for_exception(exc)
        return v1.reply({"status": "ready"})

    @app.get(
        "/metrics",
        summary="Prometheus metrics (needs an API key)",
        tags=["health"],
        response_class=Response,
        responses={200: PROMETHEUS_TEXT, **errors.documented(*v1.ANY)},
    )
    async def metrics(request: Request, who: v1.Who) -> Response:
        # every worker's sum, read from files in multiprocess mode: off the event loop
        body = await run_in_threadpool(v1.ctx_of(request).metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


class Edge:
    """Raw-path routing, the body size limit, request ids, metrics and the access log, as plain
    ASGI."""

    def __init__(self, app: Any, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path")
        if raw:
            scope["path"] = raw.split(b"?", 1)[0].decode("latin-1")
        request_id = _request_id(scope)
        tag = (b"x-request-id", request_id.encode())
        token = REQUEST_ID.set(request_id)
        start = time.perf_counter()
        status = [500]
        observed = [False]

        def observe() -> None:  # once, at the answer's last byte: work after it is not timed
            if not observed[0]:
                observed[0] = True
                self._observe(scope, request_id, status[0], time.perf_counter() - start)

        async def send_tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), tag]}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                observe()

        try:
            await self._dispatch(scope, receive, send_tagged)
        finally:
            REQUEST_ID.reset(token)
            observe()

    async def _dispatch(self, scope: Scope, receive: Any, send: Any) -> None:
        declared = _content_length(scope)
        ctx = getattr(getattr(scope.get("app"), "state", None), "ctx", None)
        hot = fast.match(scope["method"], scope["path"]) if ctx is not None else None
        webhook = None  # the hot path never asks for the webhooks' table
        if ctx is not None and hot is None:
            webhook = voice.match(scope["method"], scope["path"])
        streamed = webhook is not None and webhook[2] in voice.STREAMED  # limits its own body
        if declared is not None and declared > self.max_body and not streamed:
            reply = error_response("body_too_large", self._too_large())
            known = fast.KEY_ROUTE if hot is not None else webhook[2] if webhook else None
            if known is not None:  # the metrics' label; other routes are found by _template
                scope["route_template"] = known
            if ctx is not None:
                errors.count(ctx, "body_too_large")
            await reply(scope, receive, send)
        elif hot is not None and ctx is not None:
            scope["route_template"] = fast.KEY_ROUTE
            reply = await fast.answer(ctx, scope, self._limited(receive), *hot)
            await reply(scope, receive, send)
        elif ctx is not None and scope["path"] == "/mcp" and scope["method"] == "POST":
            scope["route_template"] = "/mcp"  # FastAPI's routing would cost more than the call
            await mcp.STREAMABLE(scope, self._limited(receive), send)
        elif webhook is not None:
            handler, params, scope["route_template"] = webhook
            body = receive if streamed else self._limited(receive)
            reply = await voice.answer(ctx, scope, body, handler, params)
            await reply(scope, receive, send)
        else:
            await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Any) -> Any:
        seen = [0]

        async def receive_limited() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > self.max_body:
                    raise BodyTooLarge(self._too_large())
            return message  # type: ignore[no-any-return]

        return receive_limited

    def _too_large(self) -> str:
        return f"the request body is over the server's limit of {self.max_body} bytes"

    def _observe(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        app = scope.get("app")
        ctx = getattr(getattr(app, "state", None), "ctx", None)
        if ctx is None:
            return
        # the template, never the path: paths hold namespace names
        template = scope.get("route_template") or _template(app, scope)
        method = method_label(scope["method"])  # any token is a method: a bounded label
        ctx.metrics.requests.labels(method, template, str(status)).inc()
        ctx.metrics.latency.labels(method, template).observe(seconds)
        if ctx.settings.access_log:
            ms = seconds * 1000
            access_log.info("%s %s %s %d %.1fms", request_id, method, template, status, ms)


def _template(app: Any, scope: Scope) -> str:
    """The path template of the route that answered: FastAPI's routes leave it in the scope;
    plain Starlette ones (``/openapi.json``) are looked up."""
    route = scope.get("route")
    if route is None:
        route = next((r for r in app.router.routes if r.matches(scope)[0] == Match.FULL), None)
    return getattr(route, "path", None) or "unmatched"


def _request_id(scope: Scope) -> str:
    """The caller's ``X-Request-Id`` when it is short and safe to echo, else a new one."""
    for header, value in scope.get("headers", ()):
        if header == b"x-request-id" and _SAFE_REQUEST_ID.fullmatch(value):
            return value.decode("ascii")  # type: ignore[no-any-return]
    return secrets.token_hex(8)


def _content_length(scope: Scope) -> int | None:
    for header, value in scope.get("headers", ()):
        if header == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
