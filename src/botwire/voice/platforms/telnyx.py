"""Telnyx AI Assistants: the dynamic variables webhook and call events on one URL, and webhook
tools, every request signed with Ed25519.

Telnyx signs ``"{telnyx-timestamp}|{raw body}"`` with its account key and sends the signature,
base64, in ``telnyx-signature-ed25519``; it is checked against the account's public key
(Mission Control -> Keys & Credentials -> Public Key), with the SDK's tolerance of 300 s. The
check needs PyNaCl, the library Telnyx's own SDK verifies with (``botwire[telnyx]``), imported
only when Telnyx is configured.

A call is reported twice: ``call.conversation.ended`` (the transcript) and ``call.analyzed``
(the insights: a summary, structured results, evaluations), each stored once.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import MissingDependency
from ..core import Briefing
from ..records import CallEnd, CallStart, ToolCall, Turn, normalise_role
from ..signatures import SignatureError
from . import (
    Answer,
    Event,
    Inbound,
    Malformed,
    Option,
    Platform,
    Route,
    dig,
    first_str,
    iso,
    load_json,
    number,
)

if TYPE_CHECKING:
    from ..settings import VoiceSettings

PLATFORM = "telnyx"
SIGNATURE = "telnyx-signature-ed25519"
TIMESTAMP = "telnyx-timestamp"
TOLERANCE_S = 300  # telnyx.lib.webhook_verification.TIMESTAMP_TOLERANCE_SECONDS
_DIGITS = re.compile(r"[0-9]{1,18}")
_ENDS = {"call.conversation.ended": "ended", "call.analyzed": "analyzed"}


# -- the signature -------------------------------------------------------------------------


def public_key(value: str) -> bytes:
    """The configured public key (base64, as Mission Control shows it) as its 32 bytes."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("telnyx_public_key is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"telnyx_public_key is {len(raw)} bytes; an Ed25519 public key is 32")
    return raw


def _nacl() -> tuple[Any, type[Exception]]:
    """PyNaCl's ``VerifyKey`` and ``BadSignatureError``, or :class:`MissingDependency`."""
    try:
        from nacl.exceptions import BadSignatureError
        from nacl.signing import VerifyKey
    except ImportError as exc:
        raise MissingDependency("Telnyx webhook signatures", "telnyx", exc) from None
    return VerifyKey, BadSignatureError


def verify_telnyx(
    body: bytes,
    headers: Mapping[str, str],
    key: str,
    *,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> str:
    """Check a Telnyx request (forged, then stale); the replay token is its signature. Nothing
    in it is secret, so there is no secret comparison to make constant-time."""
    signature, stamp = _signed(headers)
    verify_key, bad_signature = _nacl()
    try:
        verify_key(public_key(key)).verify(stamp.encode() + b"|" + body, signature)
    except bad_signature:
        raise SignatureError("forged") from None
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance_s:
        raise SignatureError("stale")
    return f"{PLATFORM}:{signature.hex()}"


def _signed(headers: Mapping[str, str]) -> tuple[bytes, str]:
    """The signature's 64 bytes and the timestamp, or ``missing`` / ``malformed``."""
    given, stamp = headers.get(SIGNATURE), headers.get(TIMESTAMP)
    if not given or not stamp:
        raise SignatureError("missing")
    try:
        signature = base64.b64decode(given.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed") from None
    if len(signature) != 64 or not _DIGITS.fullmatch(stamp):
        raise SignatureError("malformed")
    return signature, stamp  # signed as sent


# -- events --------------------------------------------------------------------------------


def event(body: bytes) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(event_type, data, data.payload)`` of ``{"data": {"event_type", "payload", ...}}``."""
    data = load_json(body).get("data")
    name = first_str(dig(data, "event_type"))
    if not isinstance(data, dict) or name is None:
        raise Malformed('a Telnyx webhook is {"data": {"event_type": ..., "payload": {...}}}')
    payload = data.get("payload")
    return name, data, payload if isinstance(payload, dict) else {}


def call_id(payload: dict[str, Any]) -> str | None:
    return first_str(payload.get("conversation_id"), payload.get("call_control_id"))


def call_start(payload: dict[str, Any]) -> CallStart:
    """``assistant.initialization``: the end user (the caller) and the agent's number."""
    return CallStart(
        PLATFORM,
        first_str(payload.get("telnyx_end_user_target")),
        first_str(payload.get("telnyx_agent_target")),
        call_id(payload),
    )


def answer_start(briefing: Briefing) -> dict[str, Any]:
    """Variables under ``dynamic_variables`` (a flat object is ignored by Telnyx)."""
    return {"dynamic_variables": briefing.variables}


def call_end(
    name: str, data: dict[str, Any], payload: dict[str, Any], summary_insight: str
) -> CallEnd:
    """``call.conversation.ended`` (the transcript) or ``call.analyzed`` (the insights), the
    call named by its conversation; ``call.analyzed`` comes when the analysis is done, so its
    time is not the call's start."""
    ident = call_id(payload)
    if ident is None:
        raise Malformed(f"a {name} event needs payload.conversation_id or call_control_id")
    ended, duration = iso(data.get("occurred_at")), number(payload.get("duration_sec"))
    started = ended - duration if ended is not None and duration is not None else None
    summary, extracted, evaluation = analysis(insights(payload), summary_insight)
    return CallEnd(
        platform=PLATFORM,
        call_id=ident,
        caller=first_str(payload.get("from")),
        part=_ENDS[name],
        started_at=started if name == "call.conversation.ended" else None,
        ended_at=ended,
        duration_s=duration,
        summary=summary,
        outcome=first_str(payload.get("reason")),
        turns=tuple(_turns(payload.get("messages"))),
        extracted=extracted or None,
        evaluation=evaluation or None,
    )


def _turns(messages: Any) -> list[Turn]:
    """User and assistant text turns; tool calls, tool results and system entries are not."""
    out = []
    for item in _list(messages):
        role, text = normalise_role(dig(item, "role")), first_str(dig(item, "content"))
        if role and text:
            out.append(Turn(role, text, iso(dig(item, "timestamp"))))
    return out


# -- insights ------------------------------------------------------------------------------


def insights(payload: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(insight_id, result)`` of ``call.analyzed``'s ``conversation_insights[]``, each entry's
    own ``conversation_insights[]``; a structured insight's JSON text read as its object."""
    out: list[tuple[str, Any]] = []
    for group in _list(payload.get("conversation_insights")):
        for item in _list(dig(group, "conversation_insights")):
            result = _result(dig(item, "result"))
            if result is not None:
                out.append((first_str(dig(item, "insight_id")) or f"insight_{len(out)}", result))
    return out


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _result(value: Any) -> Any:
    """A result as its object (a dict, or JSON text of one), else its text; None when empty."""
    if isinstance(value, dict):
        return value or None
    text = first_str(value)
    if text is None or not text.startswith("{"):
        return text
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, dict) else text


def analysis(
    results: list[tuple[str, Any]], summary_insight: str
) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """``(summary, extracted, evaluation)``: the summary is the text of ``summary_insight``
    (none set: the first text result), structured results are extracted fields, and the other
    text results are evaluations, by insight id."""
    texts = {ident: r for ident, r in results if isinstance(r, str)}
    summary = texts.pop(summary_insight or next(iter(texts), ""), None)
    extracted: dict[str, Any] = {}
    for _, result in results:
        if isinstance(result, dict):
            extracted.update(result)
    return summary, extracted, texts


# -- tools ---------------------------------------------------------------------------------


def tool_call(body: bytes, name: str) -> ToolCall:
    """A webhook tool: the body is the tool's parameters and its preset body fields, ``caller_id``
    bound to ``{{telnyx_end_user_target}}`` and, when set, ``call_id``."""
    args = load_json(body)
    caller, ident = first_str(args.pop("caller_id", None)), first_str(args.pop("call_id", None))
    return ToolCall(PLATFORM, name, args, caller, ident)


def answer_tool(text: str, ok: bool) -> dict[str, Any]:
    return {"result": text} if ok else {"error": text}


class Telnyx(Platform):
    name = PLATFORM
    about = "Telnyx AI Assistants: the account's public key that checks its Ed25519 signatures."
    options = (
        Option(
            "--public-key",
            "telnyx_public_key",
            "The Telnyx public key, base64 (Keys & Credentials -> Public Key)",
        ),
        Option(
            "--summary-insight",
            "telnyx_summary_insight",
            "The insight whose result is the call's summary (none: the first text insight).",
        ),
    )
    replay_ttl = 600.0
    routes = (
        Route(
            "/voice/telnyx",
            "events",
            "telnyx_public_key",
            "Telnyx: the dynamic variables webhook and call events",
        ),
        Route(
            "/voice/telnyx/tools/{name}",
            "tool",
            "telnyx_public_key",
            "Telnyx webhook tools",
        ),
    )

    def check(self, settings: VoiceSettings) -> None:
        if settings.telnyx_public_key:
            public_key(settings.telnyx_public_key)
            _nacl()

    def verify(self, settings: VoiceSettings, inbound: Inbound) -> str | None:
        return verify_telnyx(inbound.body, inbound.headers, settings.telnyx_public_key)

    def parse(self, settings: VoiceSettings, inbound: Inbound) -> Event:
        if inbound.route.kind == "tool":
            return [tool_call(inbound.body, inbound.params["name"])]
        name, data, payload = event(inbound.body)
        if name == "assistant.initialization":
            return call_start(payload)
        if name in _ENDS:
            return call_end(name, data, payload, settings.telnyx_summary_insight)
        return None  # call.conversation_insights.generated (no caller), call.*, ...

    def answer_start(
        self, settings: VoiceSettings, start: CallStart, briefing: Briefing, namespace: str | None
    ) -> Answer:
        return Answer(answer_start(briefing))

    def answer_tool(self, text: str, ok: bool) -> Answer:
        return Answer(answer_tool(text, ok))
