"""Vapi server messages: ``{"message": {"type": ..., "call": {...}, ...}}`` on one URL."""

from __future__ import annotations

from typing import Any

from ..core import Briefing
from ..records import CallEnd, CallStart, ToolCall, Turn, normalise_role
from . import Malformed, arguments, dig, first_str, flag, iso, load_json, ms

PLATFORM = "vapi"


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
    """``toolCallList`` (current), ``toolCalls`` (older) or ``toolWithToolCallList[].toolCall``."""
    raw = msg.get("toolCallList") or msg.get("toolCalls")
    if not raw:
        raw = [dig(item, "toolCall") for item in msg.get("toolWithToolCallList") or ()]
    if not isinstance(raw, list) or not raw:
        raise Malformed("a tool-calls message needs a non-empty toolCallList")
    return [_tool_call(item, msg) for item in raw]


def _tool_call(item: Any, msg: dict[str, Any]) -> ToolCall:
    name = first_str(dig(item, "function", "name"), dig(item, "name"))
    ident = first_str(dig(item, "id"))
    if name is None or ident is None:
        raise Malformed("each tool call needs an id and a function name")
    raw_args = dig(item, "function", "arguments")
    if raw_args is None:
        raw_args = dig(item, "arguments")
    return ToolCall(PLATFORM, name, arguments(raw_args), caller(msg), call_id(msg), ident)


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
    turns = tuple(_turns(dig(msg, "artifact", "messages")))
    return CallEnd(
        platform=PLATFORM,
        call_id=ident,
        caller=caller(msg),
        started_at=iso(msg.get("startedAt")) or iso(dig(msg, "call", "startedAt")),
        ended_at=iso(msg.get("endedAt"))
        or iso(dig(msg, "call", "endedAt"))
        or ms(msg.get("timestamp")),
        summary=first_str(dig(msg, "analysis", "summary"), msg.get("summary")),
        outcome=first_str(msg.get("endedReason")),
        successful=flag(dig(msg, "analysis", "successEvaluation")),
        turns=turns,
    )


def _turns(messages: Any) -> list[Turn]:
    out = []
    for item in messages if isinstance(messages, list) else ():
        role = normalise_role(dig(item, "role"))
        text = first_str(dig(item, "message"), dig(item, "content"))
        if role and text:
            out.append(Turn(role, text, ms(dig(item, "time"))))
    return out
