"""Vapi server messages: ``{"message": {"type": ..., "call": {...}, ...}}`` on one URL."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..core import Briefing
from ..records import CallEnd, CallStart, ToolCall, Turn, normalise_role
from ..signatures import VapiAuth, verify_vapi
from . import (
    Answer,
    Event,
    Inbound,
    Malformed,
    Option,
    Platform,
    Route,
    ToolResult,
    arguments,
    dig,
    first_str,
    flag,
    iso,
    load_json,
    ms,
    number,
)

if TYPE_CHECKING:
    from ..settings import VoiceSettings

PLATFORM = "vapi"
log = logging.getLogger("botwire.voice")


def vapi_auth(settings: VoiceSettings) -> VapiAuth:
    """How this server checks Vapi's requests, from the ``vapi_*`` settings."""
    return VapiAuth(
        mode=settings.vapi_auth,
        secret=settings.vapi_secret,
        secret_header=settings.vapi_secret_header.lower(),
        signature_header=settings.vapi_signature_header.lower(),
        timestamp_header=settings.vapi_timestamp_header.lower(),
        prefix=settings.vapi_signature_prefix,
        encoding=settings.vapi_signature_encoding,
        algorithm=settings.vapi_signature_algorithm,
        include_timestamp=settings.vapi_include_timestamp == "true",
    )


def message(body: bytes) -> dict[str, Any]:
    msg = load_json(body).get("message")
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise Malformed('a Vapi server message is {"message": {"type": ...}}')
    return msg


def caller(msg: dict[str, Any]) -> str | None:
    return first_str(dig(msg, "call", "customer", "number"), dig(msg, "customer", "number"))


def call_id(msg: dict[str, Any]) -> str | None:
    return first_str(dig(msg, "call", "id"))


def call_start(msg: dict[str, Any]) -> CallStart:
    return CallStart(
        PLATFORM, caller(msg), first_str(dig(msg, "phoneNumber", "number")), call_id(msg)
    )


def answer_start(briefing: Briefing, assistant_id: str | None) -> dict[str, Any]:
    overrides = {"variableValues": briefing.variables}
    if not assistant_id:
        return {"error": "This number is not set up yet. Please call again later."}
    return {"assistantId": assistant_id, "assistantOverrides": overrides}


def tool_calls(msg: dict[str, Any]) -> list[ToolCall]:
    """``toolCallList`` (current), ``toolCalls`` (older) or ``toolWithToolCallList[].toolCall``.

    A call is ``{"id", "name", "parameters"}`` (the server-url docs) or, OpenAI-style,
    ``{"id", "function": {"name", "arguments"}}`` (the SDKs' ``ToolCall``). In
    ``toolWithToolCallList`` the name may sit beside ``toolCall``, and ``function.parameters``
    there is the tool's JSON schema, never its arguments.
    """
    raw = msg.get("toolCallList") or msg.get("toolCalls")
    if not raw:
        raw = [_with_name(item) for item in msg.get("toolWithToolCallList") or ()]
    if not isinstance(raw, list) or not raw:
        raise Malformed("a tool-calls message needs a non-empty toolCallList")
    return [_tool_call(item, msg) for item in raw]


def _with_name(item: Any) -> Any:
    call = dig(item, "toolCall")
    if not isinstance(call, dict) or _name(call) is not None:
        return call
    return {**call, "name": first_str(dig(item, "name"), dig(item, "function", "name"))}


def _name(item: Any) -> str | None:
    return first_str(dig(item, "function", "name"), dig(item, "name"))


def _tool_call(item: Any, msg: dict[str, Any]) -> ToolCall:
    name, ident = _name(item), first_str(dig(item, "id"))
    if name is None or ident is None:
        raise Malformed("each tool call needs an id and a function name")
    return ToolCall(PLATFORM, name, arguments(_raw_args(item)), caller(msg), call_id(msg), ident)


def _raw_args(item: Any) -> Any:
    for path in (("function", "arguments"), ("arguments",), ("parameters",)):
        found = dig(item, *path)
        if found is not None:
            return found
    return None


def answer_tools(results: list[tuple[ToolCall, str, bool]]) -> dict[str, Any]:
    """``{"results": [{"name", "toolCallId", "result" | "error"}]}``; results are strings."""
    out = []
    for call, text, ok in results:
        out.append(
            {
                "name": call.name,
                "toolCallId": call.tool_call_id,
                ("result" if ok else "error"): text,
            }
        )
    return {"results": out}


def call_end(msg: dict[str, Any]) -> CallEnd:
    ident = call_id(msg)
    if ident is None:
        raise Malformed("an end-of-call-report needs message.call.id")
    started = iso(msg.get("startedAt")) or iso(dig(msg, "call", "startedAt"))
    return CallEnd(
        platform=PLATFORM,
        call_id=ident,
        caller=caller(msg),
        started_at=started,
        ended_at=iso(msg.get("endedAt"))
        or iso(dig(msg, "call", "endedAt"))
        or ms(msg.get("timestamp")),
        summary=first_str(dig(msg, "analysis", "summary"), msg.get("summary")),
        outcome=first_str(msg.get("endedReason")),
        successful=flag(dig(msg, "analysis", "successEvaluation")),
        turns=tuple(_turns(dig(msg, "artifact", "messages"), started)),
        extracted=extracted(msg),
        evaluation=evaluation(msg),
    )


def extracted(msg: dict[str, Any]) -> dict[str, Any] | None:
    """``analysis.structuredData`` (``{field: value}``) and each of
    ``artifact.structuredOutputs`` (``{<id>: {"name", "result"}}``) as ``name: result``; an
    output wins over a structured-data field of the same name. None when there is neither."""
    out = dict(_object(dig(msg, "analysis", "structuredData")))
    for output in _object(dig(msg, "artifact", "structuredOutputs")).values():
        name = first_str(dig(output, "name"))
        if name is not None:
            out[name] = output.get("result")
    return out or None


def evaluation(msg: dict[str, Any]) -> dict[str, Any] | None:
    """``success_evaluation`` (``analysis.successEvaluation`` as Vapi's rubric gave it) and
    ``scorecards`` (``artifact.scorecards`` by name: ``score``, ``score_normalized``)."""
    out: dict[str, Any] = {}
    success = _plain(dig(msg, "analysis", "successEvaluation"))
    if success is not None:
        out["success_evaluation"] = success
    scorecards = _scorecards(dig(msg, "artifact", "scorecards"))
    if scorecards:
        out["scorecards"] = scorecards
    return out or None


def _scorecards(raw: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for ident, card in _object(raw).items():
        scores = (("score", dig(card, "score")), ("score_normalized", dig(card, "scoreNormalized")))
        kept = {name: value for name, value in scores if number(value) is not None}
        if kept:
            out[first_str(dig(card, "name")) or ident] = kept
    return out


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _plain(value: Any) -> str | float | bool | None:
    """A bool, a number or a non-blank string as it is; None for anything else."""
    if isinstance(value, str):
        return first_str(value)
    return value if isinstance(value, bool) or number(value) is not None else None


def _turns(messages: Any, started: float | None) -> list[Turn]:
    out = []
    for item in messages if isinstance(messages, list) else ():
        role = normalise_role(dig(item, "role"))
        text = first_str(dig(item, "message"), dig(item, "content"))
        if role and text:
            out.append(Turn(role, text, _said_at(item, started)))
    return out


def _said_at(item: Any, started: float | None) -> float | None:
    """The call's start plus the message's ``secondsFromStart``, else its ``time`` (epoch ms)."""
    offset = number(dig(item, "secondsFromStart"))
    if started is not None and offset is not None:
        return started + offset
    return ms(dig(item, "time"))


class Vapi(Platform):
    name = PLATFORM
    about = "Vapi: the server URL secret, auth mode and assistant id."
    options = (
        Option("--secret", "vapi_secret", "The Vapi server URL secret or token", True),
        Option(
            "--auth",
            "vapi_auth",
            "How Vapi authenticates: X-Vapi-Secret (default), Bearer token, or HMAC.",
            choices=("secret", "bearer", "hmac"),
            default="secret",
        ),
        Option(
            "--assistant-id", "vapi_assistant_id", "The assistant that answers assistant-request."
        ),
        Option(
            "--secret-header",
            "vapi_secret_header",
            "secret mode: the header that carries the secret (x-vapi-secret).",
            default="x-vapi-secret",
        ),
        Option(
            "--signature-header",
            "vapi_signature_header",
            "HMAC: the signature header (x-signature).",
            default="x-signature",
        ),
        Option(
            "--timestamp-header",
            "vapi_timestamp_header",
            "HMAC: the timestamp header (x-timestamp).",
            default="x-timestamp",
        ),
        Option("--signature-prefix", "vapi_signature_prefix", "HMAC: a prefix before the digest."),
        Option(
            "--signature-encoding",
            "vapi_signature_encoding",
            choices=("hex", "base64"),
            default="hex",
        ),
        Option(
            "--signature-algorithm",
            "vapi_signature_algorithm",
            choices=("sha256", "sha1", "sha512"),
            default="sha256",
        ),
        Option(
            "--include-timestamp",
            "vapi_include_timestamp",
            "HMAC: true signs the timestamp and the body (Vapi's default), false the body alone.",
            choices=("true", "false"),
            default="true",
        ),
    )
    replay_ttl = 600.0
    routes = (
        Route(
            "/voice/vapi",
            "events",
            "vapi_secret",
            "Vapi server URL: assistant-request, tool-calls, end-of-call-report",
        ),
    )

    def check(self, settings: VoiceSettings) -> None:
        if settings.vapi_secret:
            vapi_auth(settings)

    def verify(self, settings: VoiceSettings, inbound: Inbound) -> str | None:
        auth = vapi_auth(settings)
        token = verify_vapi(inbound.body, inbound.headers, auth)
        return token if auth.mode == "hmac" else None

    def parse(self, settings: VoiceSettings, inbound: Inbound) -> Event:
        msg = message(inbound.body)
        kind = msg["type"]
        if kind == "assistant-request":
            return call_start(msg)
        if kind == "tool-calls":
            return tool_calls(msg)
        if kind == "end-of-call-report":
            return call_end(msg)
        return None  # status-update, transcript, ...: nothing to do

    def answer_start(
        self, settings: VoiceSettings, start: CallStart, briefing: Briefing, namespace: str | None
    ) -> Answer:
        if not settings.vapi_assistant_id:
            log.warning(
                "assistant-request: no Vapi assistant id is configured "
                "(BOTWIRE_VAPI_ASSISTANT_ID); the caller hears an error"
            )
        return Answer(answer_start(briefing, settings.vapi_assistant_id))

    def answer_tools(self, results: list[ToolResult]) -> Answer:
        return Answer(answer_tools(results))
