"""``/voice/...``: the webhooks of every platform in ``voice.platforms.registry``.

One pipeline serves every route: read the raw body, verify it by the platform's own scheme (401
before anything is parsed, read or written), refuse a signed request seen before (the replay
window), parse the payload into a platform-neutral event and run the shared plan (``voice.core``)
on the caller's namespace; the platform shapes the answer. A summariser, when configured, runs
after the answer. Every request's outcome is counted by platform and event
(``botwire_webhooks_total``, :class:`Outcome`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, TypeVar
from urllib.parse import unquote

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from ..engines.base import ApiKey, Engine
from ..errors import (
    AuthenticationFailed,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    StorageUnavailable,
    VersionConflict,
)
from ..memory import AsyncMemory
from ..voice import core
from ..voice.call import summarise_into
from ..voice.config import VoiceConfig
from ..voice.facts import Origin
from ..voice.phone import InvalidNumber, MissingCountryCode, Withheld, namespace_for, to_e164
from ..voice.platforms import Answer, Event, Inbound, Incremental, Platform, Route, registry
from ..voice.records import CallEnd, CallStart, ToolCall
from ..voice.settings import LiveSettings, VoiceSettings, env_name
from ..voice.signatures import SignatureError
from . import calls, errors
from .auth import Principal
from .config import Settings
from .errors import BodyTooLarge
from .metrics import Metrics
from .quotas import OverDailyWriteQuota, Quotas, StorageQuotaExceeded

T = TypeVar("T")
log = logging.getLogger("botwire.voice")
router = APIRouter(prefix="/voice", tags=["voice"])
REPLAY_NS = "~botwire:voice-replay"
# Webhooks write under the server's default quotas, like a key with no overrides.
VOICE = Principal(ApiKey("voice", "", "voice webhooks", ("",), "write", None, None, 0.0))


class Unauthorized(AuthenticationFailed):
    """A webhook's signature or secret was missing, forged, stale or replayed."""


class Replayed(Unauthorized):
    """A signed request seen before."""


class NotConfigured(NotFound):
    """The platform's secret is not set on this server."""


class Voices:
    """The app's voice state: settings read from the environment and ``voice.json`` follow the
    file while the server runs (``live``); settings given to ``create_app`` stay as given."""

    def __init__(
        self, settings: VoiceSettings, engine: Engine, quotas: Quotas, live: bool = False
    ) -> None:
        self._live = LiveSettings(settings) if live else None
        self._voice = Voice.build(settings, engine, quotas)

    def now(self) -> Voice:
        """What one request works with, from start to end."""
        if self._live is not None:
            settings = self._live.get()
            if settings is not self._voice.settings:
                self._voice = Voice.build(settings, self._voice.engine, self._voice.quotas)
        return self._voice


@dataclasses.dataclass(frozen=True)
class Voice:
    """The voice settings in effect, and the engine every webhook writes through."""

    settings: VoiceSettings
    config: VoiceConfig
    engine: Engine
    quotas: Quotas

    @classmethod
    def build(cls, settings: VoiceSettings, engine: Engine, quotas: Quotas) -> Voice:
        return cls(settings, settings.core(), engine, quotas)

    def memory(self, ns: str) -> AsyncMemory:
        return AsyncMemory(ns, engine=self.engine)

    def namespace(self, raw: str | None) -> str:
        """The caller's namespace; :class:`InvalidNumber` for a withheld, national (no country
        code and no ``default_country``) or malformed number."""
        return namespace_for(to_e164(raw, self.config.default_country), self.config.namespace)


def unknown_caller(exc: InvalidNumber) -> str:
    """Why a call has no memory, in words for the agent (and the log)."""
    if isinstance(exc, Withheld):
        return (
            "The caller's number is withheld or was not sent, so nothing is remembered about them."
        )
    if isinstance(exc, MissingCountryCode):
        return (
            f"The caller's number has no country code, so nothing is remembered about them: "
            f"set default_country ('botwire voice configure callers --default-country <code>' "
            f"or {env_name('default_country')})."
        )
    return "The caller's number is not a usable phone number, so nothing is remembered about them."


def _caller(voice: Voice, platform: str, raw: str | None) -> tuple[str | None, str]:
    """``(namespace, "")``, or ``(None, why)`` logged: a number without a country code is a
    setting to fix (a warning), a withheld one is ordinary (info)."""
    try:
        return voice.namespace(raw), ""
    except InvalidNumber as exc:
        level = logging.WARNING if isinstance(exc, MissingCountryCode) else logging.INFO
        log.log(level, "%s call: %s Nothing is stored. (%s)", platform, unknown_caller(exc), exc)
        return None, unknown_caller(exc)


def voice_of(request: Request) -> Voice:
    return request.app.state.ctx.voice.now()  # type: ignore[no-any-return]


# -- authentication -----------------------------------------------------------------------


def _secret(voice: Voice, platform: str, setting: str) -> str:
    """The platform's secret; 404 when it is not set (no secret, no endpoint)."""
    value: str = getattr(voice.settings, setting)
    if not value:
        raise NotConfigured(
            f"{platform} webhooks are not configured on this server. To enable them, run "
            f"'botwire voice configure {platform}' where the server runs (a running server "
            f"picks it up within a second, no restart), or set {env_name(setting)} and restart"
        )
    return value


def _check(verify: Callable[[], T]) -> T:
    try:
        return verify()
    except SignatureError as exc:
        raise Unauthorized(f"the webhook signature was not accepted ({exc.reason})") from None


@asynccontextmanager
async def replay_guard(voice: Voice, platform: Platform, token: str | None) -> AsyncIterator[None]:
    """Refuse a signed request seen before; forget it again if handling it failed, so that the
    platform's retry of a request that did not land is accepted."""
    if token is None:
        yield
        return
    key = hashlib.sha256(f"{platform.name}:{token}".encode()).hexdigest()
    memory = voice.memory(REPLAY_NS)
    try:
        await memory.set(key, int(time.time()), ttl=platform.replay_ttl, if_version=0)
    except VersionConflict:
        raise Replayed("this signed request was already received (replay)") from None
    try:
        yield
    except BaseException:
        await memory.delete(key)
        raise


# -- shared steps -------------------------------------------------------------------------


async def brief(voice: Voice, start: CallStart) -> tuple[str | None, core.Briefing]:
    ns, memory = _caller(voice, start.platform, start.caller)
    if ns is None:
        return None, core.Briefing(
            memory, {**{v: "" for v in voice.config.variables}, "memory": memory}, False
        )
    plan = core.briefing(voice.config.budget, voice.config.variables)
    return ns, await core.arun(plan, voice.memory(ns))


async def run_tool(voice: Voice, call: ToolCall) -> tuple[str, bool]:
    """The tool's answer and whether it succeeded; mistakes are answered, not raised."""
    ns, why = _caller(voice, call.platform, call.caller)
    if ns is None:
        return why, False
    origin = Origin("tool", call.platform, call.call_id)
    return await tool_in(voice, ns, call.name, call.args, origin)


async def tool_in(
    voice: Voice,
    ns: str,
    name: str,
    args: dict[str, Any],
    origin: Origin,
    who: Principal = VOICE,
) -> tuple[str, bool]:
    """Tool ``name`` on the caller at ``ns``, its writes charged to ``who``'s quotas (the
    webhooks' and MCP's one path): the answer and whether it succeeded."""
    writes = core.tool_writes(name, args, origin)

    async def run() -> str:
        return await core.arun(core.tool(name, args, origin, voice.config.budget), voice.memory(ns))

    try:
        if not writes:
            return await run(), True
        return await voice.quotas.charged(who, ns, core.cost(writes), run), True
    except (core.ToolError, InvalidInput) as exc:
        return str(exc), False
    except StorageQuotaExceeded:
        return "This caller's memory has no room left; nothing was stored.", False
    except QuotaExceeded:
        return "This caller's memory is full for today; nothing was stored.", False


async def _charged(
    voice: Voice,
    ns: str,
    cost: tuple[int, int],
    write: Callable[[], Awaitable[T]],
    spent: Callable[[T], tuple[int, int]] | None = None,
) -> T:
    return await voice.quotas.charged(VOICE, ns, cost, write, spent)


async def store_end(voice: Voice, ns: str, event: CallEnd) -> set[str]:
    """``core.end_call`` under the quotas: charged for everything a first delivery stores,
    settled at what this delivery stored."""
    return await _charged(
        voice,
        ns,
        core.cost(core.end_call_writes(event, {"transcript", event.part, "facts"})),
        lambda: core.arun(core.end_call(event, voice.config.facts), voice.memory(ns)),
        lambda wrote: core.cost(core.end_call_writes(event, wrote)),
    )


def _refusal(exc: Exception) -> tuple[str, str]:
    """Which quota refused a finished call (the ``quota_rejections`` label), and why in words
    that do not name the caller (the exception's message names the namespace)."""
    if isinstance(exc, StorageQuotaExceeded):
        return "storage", "has no room for it"
    if isinstance(exc, OverDailyWriteQuota):
        return "write", "is smaller than this call alone"
    return "write", "is used up for today (UTC)"


async def store_end_or_drop(
    voice: Voice, ns: str, event: CallEnd, metrics: Metrics, seen: Outcome | None = None
) -> set[str]:
    """``store_end``, but a call a quota refuses is dropped (nothing of it is stored: quotas
    are admitted before writing), logged and counted instead of raised. A platform sends a
    finished call once (Vapi) or retries it within seconds (Retell), and ElevenLabs requires a
    200 (and disables a webhook that keeps failing): an error answer would lose nothing less.
    The log line names the platform and call id, never the caller's number."""
    try:
        return await store_end(voice, ns, event)
    except (QuotaExceeded, OverDailyWriteQuota) as exc:
        kind, why = _refusal(exc)
        metrics.quota_rejections.labels(kind).inc()
        if seen is not None:
            seen.outcome = "dropped"
        log.warning(
            "%s call %s (%s): not stored, the caller's %s quota %s; the webhook is acknowledged",
            event.platform,
            event.call_id,
            event.part,
            kind,
            why,
        )
        return set()


async def finish(
    voice: Voice, event: CallEnd | None, metrics: Metrics, seen: Outcome | None = None
) -> BackgroundTask | None:
    """Store a finished call (idempotently; dropped with a warning when a quota refuses it).
    Returns the summariser's task, to run after the answer is sent."""
    if event is None:
        return None
    ns, _ = _caller(voice, event.platform, event.caller)
    if ns is None:
        return None
    if event.ended_at is None:
        event = dataclasses.replace(event, ended_at=time.time())
    wrote = await store_end_or_drop(voice, ns, event, metrics, seen)
    # once per call: with the delivery that stored the transcript (Retell sends it twice)
    if "transcript" in wrote and voice.config.summarizer is not None:
        return BackgroundTask(_summarise_later, voice, ns, event, metrics)
    return None


async def _summarise_later(voice: Voice, ns: str, event: CallEnd, metrics: Metrics) -> None:
    await summarise_into(
        voice.config, event, lambda later: store_end_or_drop(voice, ns, later, metrics)
    )


def metrics_of(request: Request) -> Metrics:
    return request.app.state.ctx.metrics  # type: ignore[no-any-return]


# -- outcomes: botwire_webhooks_total{platform, event, outcome} ------------------------------

# a route's event before its body is parsed ("unknown" for one endpoint that takes every event)
_EVENT_OF_KIND = {"start": "call-start", "tool": "tool-calls", "end": "call-end"}
_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (Replayed, "replay"),
    (Unauthorized, "bad_signature"),
    (NotConfigured, "not_configured"),
    (BodyTooLarge, "too_large"),
    (InvalidInput, "malformed"),
    (ClientDisconnect, "disconnected"),
    (StorageUnavailable, "unavailable"),
)


@dataclasses.dataclass
class Outcome:
    """What became of one webhook request: ``ok`` (acted on), ``ignored`` (an event not acted
    on), ``dropped`` (a finished call a quota refused: acknowledged, nothing stored), or why it
    was refused (``_OUTCOMES``; ``error`` for anything else)."""

    platform: str
    event: str
    outcome: str = "error"

    def parsed(self, event: Event) -> None:
        self.event = _event_name(event)
        self.outcome = "ignored" if event is None else "ok"

    def failed(self, exc: BaseException) -> None:
        self.outcome = next((o for cls, o in _OUTCOMES if isinstance(exc, cls)), "error")


def _event_name(event: Event) -> str:
    if isinstance(event, CallStart):
        return "call-start"
    if isinstance(event, list):
        return "tool-calls"
    if isinstance(event, CallEnd):
        return "call-end"
    return "other"


# -- the one pipeline: verify -> replay guard -> parse -> plan -> answer ---------------------


def endpoint(platform: Platform, route: Route) -> Handler:
    async def handle(request: Request) -> Response:
        seen = Outcome(platform.name, _EVENT_OF_KIND.get(route.kind, "unknown"))
        try:
            return await _handle(platform, route, request, seen)
        except Exception as exc:
            seen.failed(exc)
            raise
        finally:
            metrics_of(request).webhooks.labels(seen.platform, seen.event, seen.outcome).inc()

    return handle


async def _handle(platform: Platform, route: Route, request: Request, seen: Outcome) -> Response:
    voice = voice_of(request)
    _secret(voice, platform.name, route.secret)
    inbound, token = await _verified(voice, platform, route, request)
    async with replay_guard(voice, platform, token):
        event = platform.parse(voice.settings, inbound)
        seen.parsed(event)
        return await _answer(voice, platform, event, request, seen)


async def _verified(
    voice: Voice, platform: Platform, route: Route, request: Request
) -> tuple[Inbound, str | None]:
    """The request, its body read and verified, and its replay token."""
    url = public_url(request, voice.settings.public_url)
    inbound = Inbound(route, request.headers, b"", url, request.path_params)
    if not route.streamed:
        inbound = dataclasses.replace(inbound, body=await request.body())
        return inbound, _check(lambda: platform.verify(voice.settings, inbound))
    mac = _check(lambda: platform.stream(voice.settings, inbound))
    settings = request.app.state.ctx.settings
    body = await _streamed_body(request.stream(), mac, settings, platform.skips)
    inbound = dataclasses.replace(inbound, body=body or b"", kept=body is not None)
    return inbound, _check(mac.verify)


async def _answer(
    voice: Voice, platform: Platform, event: Event, request: Request, seen: Outcome
) -> Response:
    if isinstance(event, CallStart):
        ns, briefing = await brief(voice, event)
        answer = platform.answer_start(voice.settings, event, briefing, ns)
        if event.call_id is None:
            return response(answer)
        # after the answer: which caller this call is (or why none), for /mcp (calls.py)
        why = briefing.memory if ns is None else ""
        task = BackgroundTask(calls.record, voice.engine, event.platform, event.call_id, ns, why)
        return response(answer, task)
    if isinstance(event, list):
        results = [(call, *await run_tool(voice, call)) for call in event]
        return response(platform.answer_tools(results))
    return response(platform.ack, await finish(voice, event, metrics_of(request), seen))


def response(answer: Answer, task: BackgroundTask | None = None) -> Response:
    if answer.media_type is None and answer.body is not None:
        return JSONResponse(answer.body, answer.status, background=task)
    return Response(answer.body, answer.status, media_type=answer.media_type, background=task)


_PEEK = 4096  # a streamed body's first bytes, enough for ``skips`` to decide


async def _streamed_body(
    pieces: AsyncIterator[bytes],
    mac: Incremental,
    settings: Settings,
    skips: Callable[[bytes], bool],
) -> bytes | None:
    """The body, every piece through ``mac``; None for one ``skips`` says is not kept."""
    kept: bytearray | None = bytearray()
    peeked = False
    async for piece in pieces:
        mac.update(piece)
        if kept is None:
            continue
        kept += piece
        if len(kept) > settings.max_body_bytes or (not peeked and len(kept) >= _PEEK):
            peeked = True
            if skips(bytes(kept)):
                kept = None
            elif len(kept) > settings.max_body_bytes:
                raise BodyTooLarge(
                    f"the request body is over the server's limit of "
                    f"{settings.max_body_bytes} bytes"
                )
    return None if kept is None else bytes(kept)


def public_url(request: Request, configured: str) -> str:
    """The URL the platform signed: the configured public base (behind a proxy) + path and
    query."""
    if not configured:
        return str(request.url)
    query = request.url.query
    return configured.rstrip("/") + request.url.path + (f"?{query}" if query else "")


# -- the routes, from the registry --------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]
ROUTES = [(route, endpoint(platform, route)) for platform, route in registry.routes()]
for _route, _handler in ROUTES:
    router.add_api_route(
        _route.path.removeprefix("/voice"),
        _handler,
        methods=[_route.method],
        summary=_route.summary,
    )


def _pattern(template: str) -> re.Pattern[str]:
    """``/voice/x/tools/{name}`` as a regex with a group per path parameter."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))


STREAMED = frozenset(route.path for route, _ in ROUTES if route.streamed)  # Edge: no body limit
_EXACT = {(r.method, r.path): h for r, h in ROUTES if "{" not in r.path}
_TEMPLATED = [(r.method, _pattern(r.path), r.path, h) for r, h in ROUTES if "{" in r.path]


def match(method: str, path: str) -> tuple[Handler, dict[str, str], str] | None:
    """``(handler, path parameters, route template)`` for a webhook ``Edge`` answers itself:
    FastAPI's routing would cost more than the work (BENCHMARKS.md, Voice)."""
    if not path.startswith("/voice/"):
        return None
    handler = _EXACT.get((method, path))
    if handler is not None:
        return handler, {}, path
    for wanted, pattern, template, handler in _TEMPLATED:
        found = pattern.fullmatch(path) if method == wanted else None
        if found is not None:
            return handler, {k: unquote(v) for k, v in found.groupdict().items()}, template
    return None


async def answer(
    ctx: Any, scope: Any, receive: Any, handler: Handler, params: dict[str, str]
) -> Response:
    """The route's own answer, with the routes' error handling, as plain ASGI."""
    try:
        return await handler(Request({**scope, "path_params": params}, receive))
    except Exception as exc:
        errors.count(ctx, errors.code_for(exc))
        return errors.for_exception(exc)
