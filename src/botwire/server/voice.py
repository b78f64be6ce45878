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
from typing import Any, AsyncIterator
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
from ..voice.phone import InvalidNumber, namespace_for, to_e164
from ..voice.platforms import Malformed, elevenlabs, load_json, retell, twilio, vapi
from ..voice.records import CallEnd, CallStart, ToolCall
from ..voice.settings import VoiceSettings, env_name
from ..voice.signatures import (
    SignatureError,
    verify_elevenlabs,
    verify_retell,
    verify_shared_secret,
    verify_twilio,
    verify_vapi,
)
from . import errors
from .auth import Principal
from .quotas import Quotas

log = logging.getLogger("botwire.voice")
router = APIRouter(prefix="/voice", tags=["voice"])
REPLAY_NS = "~botwire:voice-replay"
REPLAY_TTL = {"vapi": 600.0, "retell": 600.0, "elevenlabs": 3600.0, "twilio": 3600.0}
# Webhooks write under the server's default quotas, like a key with no overrides.
VOICE = Principal(ApiKey("voice", "", "voice webhooks", ("",), "write", None, None, 0.0))


class Unauthorized(AuthenticationFailed):
    """A webhook's signature or secret was missing, forged, stale or replayed."""


@dataclasses.dataclass
class Voice:
    """Per-app voice state: the settings and the engine every webhook writes through."""

    settings: VoiceSettings
    config: VoiceConfig
    engine: Engine
    quotas: Quotas

    @classmethod
    def build(cls, settings: VoiceSettings, engine: Engine, quotas: Quotas) -> Voice:
        return cls(settings, settings.core(), engine, quotas)

    def memory(self, ns: str) -> AsyncMemory:
        return AsyncMemory(ns, engine=self.engine)

    def namespace(self, raw: str | None) -> str | None:
        """The caller's namespace, or None for a withheld or malformed number."""
        try:
            return namespace_for(to_e164(raw, self.config.default_country), self.config.namespace)
        except InvalidNumber:
            return None


def voice_of(request: Request) -> Voice:
    return request.app.state.ctx.voice  # type: ignore[no-any-return]


# -- authentication -----------------------------------------------------------------------


def _secret(voice: Voice, platform: str, setting: str) -> str:
    """The platform's secret; 404 when it is not set (no secret, no endpoint)."""
    value: str = getattr(voice.settings, setting)
    if not value:
        raise NotFound(
            f"{platform} webhooks are not configured on this server: set {env_name(setting)} "
            f"or run 'botwire voice configure {platform}'"
        )
    return value


def _check(verify: Callable[[], str | None]) -> str | None:
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
    ns = voice.namespace(start.caller)
    if ns is None:
        memory = "The caller's number is withheld, so nothing is remembered about them."
        return None, core.Briefing(
            memory, {**{v: "" for v in voice.config.variables}, "memory": memory}, False
        )
    plan = core.briefing(voice.config.budget, voice.config.variables)
    return ns, await core.arun(plan, voice.memory(ns))


async def run_tool(voice: Voice, call: ToolCall) -> tuple[str, bool]:
    """The tool's answer and whether it succeeded; mistakes are answered, not raised."""
    ns = voice.namespace(call.caller)
    if ns is None:
        return "The caller's number is unknown, so there is no memory for this call.", False
    try:
        plan = core.tool(call.name, call.args, call.call_id)
        if call.name == "recall_memory":
            return await core.arun(plan, voice.memory(ns)), True
        return await _charged(voice, ns, lambda: core.arun(plan, voice.memory(ns))), True
    except (core.ToolError, InvalidInput) as exc:
        return str(exc), False
    except QuotaExceeded:
        return "This caller's memory is full for today; nothing was stored.", False


async def _charged(voice: Voice, ns: str, write: Callable[[], Awaitable[Any]]) -> Any:
    quotas = voice.quotas
    charged = await quotas.admit(VOICE, ns, 1, 0)
    try:
        result = await write()
    except Exception:
        await quotas.done(charged, ok=False)
        raise
    await quotas.done(charged, ok=True)
    return result


async def finish(voice: Voice, event: CallEnd | None) -> BackgroundTask | None:
    """Store a finished call (idempotently). Returns the summariser's task, to run after the
    answer is sent."""
    if event is None:
        return None
    ns = voice.namespace(event.caller)
    if ns is None:
        log.info(
            "%s call %s: the caller's number is withheld; nothing stored",
            event.platform,
            event.call_id,
        )
        return None
    if event.ended_at is None:
        event = dataclasses.replace(event, ended_at=time.time())
    wrote = await _charged(voice, ns, lambda: core.arun(core.end_call(event), voice.memory(ns)))
    # once per call: with the delivery that stored the transcript (Retell sends it twice)
    if "transcript" in wrote and voice.config.summarizer is not None:
        return BackgroundTask(_summarise_later, voice, ns, event)
    return None


async def _summarise_later(voice: Voice, ns: str, event: CallEnd) -> None:
    await summarise_into(voice.config, event, voice.memory(ns))


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
            return JSONResponse({}, background=await finish(voice, vapi.call_end(msg)))
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
                status_code=204, background=await finish(voice, retell.call_end(data, name))
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
    voice, body = voice_of(request), await request.body()
    secret = _secret(voice, "elevenlabs", "elevenlabs_webhook_secret")
    header = request.headers.get("elevenlabs-signature")
    token = _check(lambda: verify_elevenlabs(body, header, secret))
    async with replay_guard(voice, "elevenlabs", token):
        data = load_json(body)
        if data.get("type") != "post_call_transcription":
            return Response(status_code=204)  # post_call_audio, call_initiation_failure
        return JSONResponse({}, background=await finish(voice, elevenlabs.post_call(data)))


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
        return Response(status_code=204, background=await finish(voice, twilio.call_end(params)))


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
