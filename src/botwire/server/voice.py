"""``/voice/...``: webhooks for Vapi, Retell, ElevenLabs and Twilio.

Every endpoint reads the raw body, verifies it by the platform's own scheme (401 before anything
is parsed, read or written), refuses a signed request seen before (the replay window), parses the
payload into a platform-neutral event (``voice.platforms``) and runs the shared plan
(``voice.core``) on the caller's namespace. A summariser, when configured, runs after the answer.
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
from starlette.responses import JSONResponse, Response

from ..engines.base import ApiKey, Engine
from ..errors import AuthenticationFailed, InvalidInput, NotFound, QuotaExceeded, VersionConflict
from ..memory import AsyncMemory
from ..voice import core
from ..voice.call import summarise_into
from ..voice.config import VoiceConfig
from ..voice.phone import InvalidNumber, MissingCountryCode, Withheld, namespace_for, to_e164
from ..voice.platforms import Malformed, elevenlabs, load_json, retell, twilio, vapi
from ..voice.records import CallEnd, CallStart, ToolCall
from ..voice.settings import LiveSettings, VoiceSettings, env_name
from ..voice.signatures import (
    ElevenLabsStream,
    SignatureError,
    verify_retell,
    verify_shared_secret,
    verify_twilio,
    verify_vapi,
)
from . import errors
from .auth import Principal
from .config import Settings
from .errors import BodyTooLarge
from .metrics import Metrics
from .quotas import OverDailyWriteQuota, Quotas, StorageQuotaExceeded

T = TypeVar("T")
log = logging.getLogger("botwire.voice")
router = APIRouter(prefix="/voice", tags=["voice"])
REPLAY_NS = "~botwire:voice-replay"
REPLAY_TTL = {"vapi": 600.0, "retell": 600.0, "elevenlabs": 3600.0, "twilio": 3600.0}
# Webhooks write under the server's default quotas, like a key with no overrides.
VOICE = Principal(ApiKey("voice", "", "voice webhooks", ("",), "write", None, None, 0.0))


class Unauthorized(AuthenticationFailed):
    """A webhook's signature or secret was missing, forged, stale or replayed."""


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
        raise NotFound(
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
async def replay_guard(voice: Voice, platform: str, token: str | None) -> AsyncIterator[None]:
    """Refuse a signed request seen before; forget it again if handling it failed, so that the
    platform's retry of a request that did not land is accepted."""
    if token is None:
        yield
        return
    key = hashlib.sha256(f"{platform}:{token}".encode()).hexdigest()
    memory = voice.memory(REPLAY_NS)
    try:
        await memory.set(key, int(time.time()), ttl=REPLAY_TTL[platform], if_version=0)
    except VersionConflict:
        raise Unauthorized("this signed request was already received (replay)") from None
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
    plan = core.tool(call.name, call.args, call.call_id)
    writes = core.tool_writes(call.name, call.args, call.call_id)
    try:
        if not writes:
            return await core.arun(plan, voice.memory(ns)), True
        cost = core.cost(writes)
        return await _charged(voice, ns, cost, lambda: core.arun(plan, voice.memory(ns))), True
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
        core.cost(core.end_call_writes(event, {"transcript", event.part})),
        lambda: core.arun(core.end_call(event), voice.memory(ns)),
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


async def store_end_or_drop(voice: Voice, ns: str, event: CallEnd, metrics: Metrics) -> set[str]:
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
        log.warning(
            "%s call %s (%s): not stored, the caller's %s quota %s; the webhook is acknowledged",
            event.platform,
            event.call_id,
            event.part,
            kind,
            why,
        )
        return set()


async def finish(voice: Voice, event: CallEnd | None, metrics: Metrics) -> BackgroundTask | None:
    """Store a finished call (idempotently; dropped with a warning when a quota refuses it).
    Returns the summariser's task, to run after the answer is sent."""
    if event is None:
        return None
    ns, _ = _caller(voice, event.platform, event.caller)
    if ns is None:
        return None
    if event.ended_at is None:
        event = dataclasses.replace(event, ended_at=time.time())
    wrote = await store_end_or_drop(voice, ns, event, metrics)
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


def reply(data: Any) -> Response:
    return JSONResponse(data)


# -- Vapi ---------------------------------------------------------------------------------


@router.post("/vapi", summary="Vapi server URL: assistant-request, tool-calls, end-of-call-report")
async def vapi_webhook(request: Request) -> Response:
    voice, body = voice_of(request), await request.body()
    _secret(voice, "vapi", "vapi_secret")
    auth = voice.settings.vapi()
    token = _check(lambda: verify_vapi(body, request.headers, auth))
    async with replay_guard(voice, "vapi", token if auth.mode == "hmac" else None):
        msg = vapi.message(body)
        kind = msg["type"]
        if kind == "assistant-request":
            if not voice.settings.vapi_assistant_id:
                log.warning(
                    "assistant-request: no Vapi assistant id is configured "
                    "(BOTWIRE_VAPI_ASSISTANT_ID); the caller hears an error"
                )
            _, briefing = await brief(voice, vapi.call_start(msg))
            return reply(vapi.answer_start(briefing, voice.settings.vapi_assistant_id))
        if kind == "tool-calls":
            calls = vapi.tool_calls(msg)
            results = [(call, *await run_tool(voice, call)) for call in calls]
            return reply(vapi.answer_tools(results))
        if kind == "end-of-call-report":
            task = await finish(voice, vapi.call_end(msg), metrics_of(request))
            return JSONResponse({}, background=task)
        return reply({})  # status-update, transcript, ...: nothing to do


# -- Retell -------------------------------------------------------------------------------


def _retell(request: Request, body: bytes) -> str | None:
    voice = voice_of(request)
    key = _secret(voice, "retell", "retell_api_key")
    header = request.headers.get("x-retell-signature")
    return _check(lambda: verify_retell(body, header, key))


@router.post("/retell", summary="Retell: the inbound call webhook and call events")
async def retell_webhook(request: Request) -> Response:
    voice, body = voice_of(request), await request.body()
    token = _retell(request, body)
    async with replay_guard(voice, "retell", token):
        data = load_json(body)
        name = retell.event(data)
        if name is None:
            raise Malformed('a Retell webhook names its "event"')
        if name == "call_inbound":
            ns, briefing = await brief(voice, retell.call_start(data))
            return reply(retell.answer_start(briefing, ns))
        if name in ("call_ended", "call_analyzed"):
            return Response(
                status_code=204,
                background=await finish(voice, retell.call_end(data, name), metrics_of(request)),
            )
        return Response(status_code=204)  # call_started and future events


@router.post("/retell/tools", summary="Retell custom functions (full body)")
@router.post("/retell/tools/{name}", summary="Retell custom functions (full body or args only)")
async def retell_tool(request: Request, name: str | None = None) -> Response:
    voice, body = voice_of(request), await request.body()
    token = _retell(request, body)
    async with replay_guard(voice, "retell", token):
        call = retell.tool_call(body, name)
        return reply(retell.answer_tool(*await run_tool(voice, call)))


# -- ElevenLabs ---------------------------------------------------------------------------


def _eleven_secret(request: Request) -> Voice:
    voice = voice_of(request)
    secret = _secret(voice, "elevenlabs", "elevenlabs_tool_secret")
    header = request.headers.get(voice.settings.elevenlabs_secret_header)
    _check(lambda: verify_shared_secret(header, secret))
    return voice


@router.post("/elevenlabs/initiation", summary="ElevenLabs conversation initiation webhook")
async def elevenlabs_initiation(request: Request) -> Response:
    voice, body = _eleven_secret(request), await request.body()
    _, briefing = await brief(voice, elevenlabs.call_start(body))
    return reply(elevenlabs.answer_start(briefing))


@router.post("/elevenlabs/tools/{name}", summary="ElevenLabs server tools")
async def elevenlabs_tool(request: Request, name: str) -> Response:
    voice, body = _eleven_secret(request), await request.body()
    call = elevenlabs.tool_call(body, name)
    return reply(elevenlabs.answer_tool(*await run_tool(voice, call)))


@router.post("/elevenlabs/post-call", summary="ElevenLabs post-call webhook")
async def elevenlabs_post_call(request: Request) -> Response:
    """Every type is answered 200, as ElevenLabs requires; only a transcription is stored."""
    voice = voice_of(request)
    secret = _secret(voice, "elevenlabs", "elevenlabs_webhook_secret")
    header = request.headers.get("elevenlabs-signature")
    mac = _check(lambda: ElevenLabsStream(header, secret))
    body = await _post_call_body(request.stream(), mac, request.app.state.ctx.settings)
    token = _check(mac.verify)
    async with replay_guard(voice, "elevenlabs", token):
        data = load_json(body) if body is not None else {}
        if data.get("type") != "post_call_transcription":
            return JSONResponse({})  # post_call_audio, call_initiation_failure
        task = await finish(voice, elevenlabs.post_call(data), metrics_of(request))
        return JSONResponse({}, background=task)


# A post_call_audio body is base64 audio of the whole call, beyond max_body_bytes at times: its
# type shows in the first few KiB (or by the limit), and from then on it is hashed, not kept.
_AUDIO = re.compile(rb'"type"\s*:\s*"post_call_audio"')
_PEEK = 4096
STREAMED = frozenset({"/voice/elevenlabs/post-call"})  # Edge leaves the body limit to the route


async def _post_call_body(
    pieces: AsyncIterator[bytes], mac: ElevenLabsStream, settings: Settings
) -> bytes | None:
    """The body, every piece through ``mac``; None for a ``post_call_audio`` (not kept)."""
    kept: bytearray | None = bytearray()
    peeked = False
    async for piece in pieces:
        mac.update(piece)
        if kept is None:
            continue
        kept += piece
        if len(kept) > settings.max_body_bytes or (not peeked and len(kept) >= _PEEK):
            peeked = True
            if _AUDIO.search(kept):
                kept = None
            elif len(kept) > settings.max_body_bytes:
                raise BodyTooLarge(
                    f"the request body is over the server's limit of "
                    f"{settings.max_body_bytes} bytes"
                )
    return None if kept is None else bytes(kept)


# -- Twilio -------------------------------------------------------------------------------


async def _twilio(request: Request) -> tuple[Voice, dict[str, str], str | None]:
    voice, body = voice_of(request), await request.body()
    token_secret = _secret(voice, "twilio", "twilio_auth_token")
    pairs = twilio.form(body)
    url = public_url(request, voice.settings.public_url)
    header = request.headers.get("x-twilio-signature")
    token = _check(lambda: verify_twilio(url, pairs, header, token_secret))
    return voice, dict(pairs), token


def public_url(request: Request, configured: str) -> str:
    """The URL Twilio signed: the configured public base (behind a proxy) + path and query."""
    if not configured:
        return str(request.url)
    query = request.url.query
    return configured.rstrip("/") + request.url.path + (f"?{query}" if query else "")


TWIML = "application/xml"


@router.post("/twilio", summary="Twilio voice webhook (answered with TwiML)")
async def twilio_voice(request: Request) -> Response:
    voice, params, token = await _twilio(request)
    async with replay_guard(voice, "twilio", token):
        _, briefing = await brief(voice, twilio.call_start(params))
        return Response(
            twilio.answer_start(briefing, voice.settings.twilio_stream_url or None),
            media_type=TWIML,
        )


@router.post("/twilio/status", summary="Twilio call status callback")
async def twilio_status(request: Request) -> Response:
    voice, params, token = await _twilio(request)
    async with replay_guard(voice, "twilio", token):
        task = await finish(voice, twilio.call_end(params), metrics_of(request))
        return Response(status_code=204, background=task)


# -- the fast path ------------------------------------------------------------------------

Handler = Callable[..., Awaitable[Response]]
_EXACT: dict[str, Handler] = {
    "/voice/vapi": vapi_webhook,
    "/voice/retell": retell_webhook,
    "/voice/retell/tools": retell_tool,
    "/voice/elevenlabs/initiation": elevenlabs_initiation,
    "/voice/elevenlabs/post-call": elevenlabs_post_call,
    "/voice/twilio": twilio_voice,
    "/voice/twilio/status": twilio_status,
}
_NAMED = re.compile(r"/voice/(retell|elevenlabs)/tools/([^/]+)")
_NAMED_HANDLERS: dict[str, Handler] = {"retell": retell_tool, "elevenlabs": elevenlabs_tool}


def match(method: str, path: str) -> tuple[Handler, dict[str, str], str] | None:
    """``(handler, path parameters, route template)`` for a webhook ``Edge`` answers itself:
    FastAPI's routing would cost more than the work (BENCHMARKS.md, Voice)."""
    if method != "POST" or not path.startswith("/voice/"):
        return None
    handler = _EXACT.get(path)
    if handler is not None:
        return handler, {}, path
    found = _NAMED.fullmatch(path)
    if found is None:
        return None
    platform = found[1]
    return (
        _NAMED_HANDLERS[platform],
        {"name": unquote(found[2])},
        f"/voice/{platform}/tools/{{name}}",
    )


async def answer(
    ctx: Any, scope: Any, receive: Any, handler: Handler, params: dict[str, str]
) -> Response:
    """The route's own answer, with the routes' error handling, as plain ASGI."""
    try:
        return await handler(Request(scope, receive), **params)
    except Exception as exc:
        errors.count(ctx, errors.code_for(exc))
        return errors.for_exception(exc)
