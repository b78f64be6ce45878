"""ElevenLabs Agents: conversation initiation, server tools, and the post-call webhook."""

from __future__ import annotations

from typing import Any

from ..core import Briefing
from ..records import CallEnd, CallStart, ToolCall, Turn, normalise_role
from . import Malformed, dig, first_str, flag, load_json, number

PLATFORM = "elevenlabs"


def call_start(body: bytes) -> CallStart:
    data = load_json(body)
    return CallStart(
        PLATFORM,
        first_str(data.get("caller_id")),
        first_str(data.get("called_number")),
        first_str(data.get("call_sid")),
    )


def answer_start(briefing: Briefing) -> dict[str, Any]:
    return {"type": "conversation_initiation_client_data", "dynamic_variables": briefing.variables}


def tool_call(body: bytes, name: str) -> ToolCall:
    """A server tool: the body is exactly the tool's parameters; ``caller_id`` is bound to the
    ``system__caller_id`` variable and ``conversation_id`` to ``system__conversation_id``."""
    args = load_json(body)
    caller = first_str(args.pop("caller_id", None), args.pop("system__caller_id", None))
    ident = first_str(args.pop("conversation_id", None), args.pop("system__conversation_id", None))
    return ToolCall(PLATFORM, name, args, caller, ident)


def answer_tool(text: str, ok: bool) -> dict[str, Any]:
    return {"result": text} if ok else {"error": text}


def post_call(data: dict[str, Any]) -> CallEnd:
    body = data.get("data")
    ident = first_str(dig(body, "conversation_id"))
    if not isinstance(body, dict) or ident is None:
        raise Malformed("a post_call_transcription needs data.conversation_id")
    found = body.get("metadata")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    start, duration = (
        number(meta.get("start_time_unix_secs")),
        number(meta.get("call_duration_secs")),
    )
    return CallEnd(
        platform=PLATFORM,
        call_id=ident,
        caller=first_str(
            dig(meta, "phone_call", "external_number"),
            dig(
                body,
                "conversation_initiation_client_data",
                "dynamic_variables",
                "system__caller_id",
            ),
        ),
        started_at=start,
        ended_at=start + duration if start is not None and duration is not None else None,
        duration_s=duration,
        summary=first_str(dig(body, "analysis", "transcript_summary")),
        outcome=first_str(meta.get("termination_reason"), body.get("status")),
        successful=flag(dig(body, "analysis", "call_successful")),
        turns=tuple(_turns(body.get("transcript"), start)),
    )


def _turns(items: Any, start: float | None) -> list[Turn]:
    out = []
    for item in items if isinstance(items, list) else ():
        role, text = normalise_role(dig(item, "role")), first_str(dig(item, "message"))
        offset = number(dig(item, "time_in_call_secs"))
        if role and text:
            out.append(
                Turn(
                    role, text, start + offset if start is not None and offset is not None else None
                )
            )
    return out
