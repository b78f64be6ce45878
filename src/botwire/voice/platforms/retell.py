"""Retell AI: the inbound call and SMS webhook, call events, and custom functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core import Briefing
from ..records import CallEnd, CallStart, ToolCall, Turn, normalise_role
from ..signatures import verify_retell
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
    flag,
    load_json,
    ms,
    number,
)

if TYPE_CHECKING:
    from ..settings import VoiceSettings

PLATFORM = "retell"
MAX_RESULT = 15_000  # Retell cuts a function's answer here
INBOUND = ("call_inbound", "chat_inbound")  # a phone call, an SMS chat: answered alike
EVALUATIONS = ("user_sentiment", "call_successful", "in_voicemail")  # of call_analysis
# Which inbound event this request is: its answer goes under the same key. Set by ``parse``
# and read by ``answer_start`` in the same request.


def event(data: dict[str, Any]) -> str | None:
    """The event name (``event``; one docs page calls it ``event_type``)."""
    return first_str(data.get("event"), data.get("event_type"))


def call_start(data: dict[str, Any], name: str = "call_inbound") -> CallStart:
    """``call_inbound``, or ``chat_inbound`` (an inbound SMS): the caller is its from_number."""
    inbound = data.get(name)
    if not isinstance(inbound, dict):
        raise Malformed(f'a {name} event needs a "{name}" object')
    return CallStart(
        PLATFORM,
        first_str(inbound.get("from_number")),
        first_str(inbound.get("to_number")),
        first_str(inbound.get("call_id"), inbound.get("chat_id")),
        "chat" if name == "chat_inbound" else "call",
    )


def answer_start(
    briefing: Briefing, namespace: str | None, name: str = "call_inbound"
) -> dict[str, Any]:
    """Dynamic variables (strings, as Retell requires), and the namespace as metadata, under
    the event's own key (``call_inbound`` or ``chat_inbound``)."""
    inbound: dict[str, Any] = {"dynamic_variables": briefing.variables}
    if namespace:
        inbound["metadata"] = {"botwire_namespace": namespace}
    return {name: inbound}


def call_end(data: dict[str, Any], name: str) -> CallEnd:
    call = data.get("call")
    ident = first_str(dig(call, "call_id"))
    if not isinstance(call, dict) or ident is None:
        raise Malformed(f'a {name} event needs "call" with a call_id')
    analysis, started = call.get("call_analysis"), ms(call.get("start_timestamp"))
    return CallEnd(
        platform=PLATFORM,
        call_id=ident,
        caller=_caller(call),
        part="analyzed" if name == "call_analyzed" else "ended",
        started_at=started,
        ended_at=ms(call.get("end_timestamp")),
        summary=first_str(dig(analysis, "call_summary")),
        outcome=first_str(call.get("disconnection_reason")),
        successful=flag(dig(analysis, "call_successful")),
        turns=tuple(_turns(call.get("transcript_object"), started)),
        extracted=extracted(analysis),
        evaluation=evaluation(analysis),
    )


def extracted(analysis: Any) -> dict[str, Any] | None:
    """The agent's post-call analysis data, ``custom_analysis_data``: ``{field: value}``."""
    found = dig(analysis, "custom_analysis_data")
    return dict(found) if isinstance(found, dict) and found else None


def evaluation(analysis: Any) -> dict[str, Any] | None:
    """Retell's judgement of the call: its sentiment, success and voicemail flags."""
    found = {name: dig(analysis, name) for name in EVALUATIONS}
    return {k: v for k, v in found.items() if v is not None} or None


def _caller(call: dict[str, Any]) -> str | None:
    inbound = call.get("direction") != "outbound"
    return first_str(call.get("from_number") if inbound else call.get("to_number"))


def _turns(items: Any, started: float | None) -> list[Turn]:
    out = []
    for item in items if isinstance(items, list) else ():
        role, text = normalise_role(dig(item, "role")), first_str(dig(item, "content"))
        if role and text:
            out.append(Turn(role, text, _said_at(item, started)))
    return out


def _said_at(utterance: dict[str, Any], started: float | None) -> float | None:
    """The call's start plus the utterance's first word's ``start`` (seconds into the call)."""
    words = utterance.get("words")
    offset = number(dig(words[0], "start")) if isinstance(words, list) and words else None
    return started + offset if started is not None and offset is not None else None


def tool_call(body: bytes, name: str | None) -> ToolCall:
    """A custom function call: the full body ``{"name", "args", "call"}``, or with "args only"
    turned on, just the arguments (the tool's name then comes from the URL, and the caller
    from a ``caller_id`` argument bound to ``{{user_number}}``)."""
    data = load_json(body)
    if isinstance(data.get("args"), dict) and isinstance(data.get("call"), dict):
        call = data["call"]
        tool = first_str(data.get("name"), name)
        if tool is None:
            raise Malformed("the function call has no name")
        args = dict(data["args"])
        return ToolCall(
            PLATFORM, tool, args, _caller(call) or _arg_caller(args), first_str(call.get("call_id"))
        )
    if name is None:
        raise Malformed(
            "an args-only function call needs the tool name in the URL: .../tools/<name>"
        )
    caller, call_id = _arg_caller(data), first_str(data.pop("call_id", None))
    return ToolCall(PLATFORM, name, data, caller, call_id)


def _arg_caller(args: dict[str, Any]) -> str | None:
    return first_str(args.pop("caller_id", None), args.pop("user_number", None))


def answer_tool(text: str, ok: bool) -> dict[str, Any]:
    return {"result": text[:MAX_RESULT]} if ok else {"error": text[:MAX_RESULT]}


class Retell(Platform):
    name = PLATFORM
    about = "Retell: the API key that signs its webhooks (X-Retell-Signature)."
    options = (
        Option("--secret", "retell_api_key", "The Retell API key (it signs webhooks)", True),
    )
    replay_ttl = 600.0
    routes = (
        Route(
            "/voice/retell",
            "events",
            "retell_api_key",
            "Retell: the inbound call and SMS webhook, and call events",
        ),
        Route(
            "/voice/retell/tools",
            "tool",
            "retell_api_key",
            "Retell custom functions (full body)",
            listed=False,
        ),
        Route(
            "/voice/retell/tools/{name}",
            "tool",
            "retell_api_key",
            "Retell custom functions (full body or args only)",
        ),
    )
    ack = Answer(status=204)

    def verify(self, settings: VoiceSettings, inbound: Inbound) -> str | None:
        header = inbound.headers.get("x-retell-signature")
        return verify_retell(inbound.body, header, settings.retell_api_key)

    def parse(self, settings: VoiceSettings, inbound: Inbound) -> Event:
        if inbound.route.kind == "tool":
            return [tool_call(inbound.body, inbound.params.get("name"))]
        data = load_json(inbound.body)
        name = event(data)
        if name is None:
            raise Malformed('a Retell webhook names its "event"')
        if name in INBOUND:
            return call_start(data, name)
        if name in ("call_ended", "call_analyzed"):
            return call_end(data, name)
        return None  # call_started and future events

    def answer_start(
        self, settings: VoiceSettings, start: CallStart, briefing: Briefing, namespace: str | None
    ) -> Answer:
        return Answer(answer_start(briefing, namespace, f"{start.channel}_inbound"))

    def answer_tool(self, text: str, ok: bool) -> Answer:
        return Answer(answer_tool(text, ok))
