"""ElevenLabs Agents: conversation initiation, server tools, and the post-call webhook."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..core import Briefing
from ..records import CallEnd, CallStart, ToolCall, Turn, normalise_role
from ..signatures import ElevenLabsStream, verify_shared_secret
from . import (
    Answer,
    Event,
    Inbound,
    Incremental,
    Malformed,
    Option,
    Platform,
    Route,
    dig,
    first_str,
    flag,
    load_json,
    number,
)

if TYPE_CHECKING:
    from ..settings import VoiceSettings

PLATFORM = "elevenlabs"
# A post_call_audio body is base64 audio of the whole call, beyond max_body_bytes at times: its
# type shows in the first few KiB (or by the limit), and from then on it is hashed, not kept.
_AUDIO = re.compile(rb'"type"\s*:\s*"post_call_audio"')
# A failed post-call webhook is retried (when its retries are on) 30 s, 2, 8 and 30 min apart,
# each delay up to 10 % longer: the last try comes at most 44.6 min after the first. Whether a
# retry is signed anew is not documented, so a signature is accepted for 45 min either way, and
# remembered twice as long (the same signed request stays refused).
TOLERANCE_S = 45 * 60
CRITERION = ("result", "rationale", "score", "max_score")  # kept of each criterion's result


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
        extracted=extracted(body.get("analysis")),
        evaluation=evaluation(body.get("analysis")),
    )


def extracted(analysis: Any) -> dict[str, Any] | None:
    """The data collection results as ``{field: value}`` (None where nothing was collected)."""
    found = results(analysis, "data_collection_results", "data_collection_id")
    return {name: item.get("value") for name, item in found.items()} or None


def evaluation(analysis: Any) -> dict[str, Any] | None:
    """``call_successful`` and ``criteria``: each criterion's result and rationale."""
    found = results(analysis, "evaluation_criteria_results", "criteria_id")
    criteria = {name: _criterion(item) for name, item in found.items()}
    out = {"call_successful": dig(analysis, "call_successful"), "criteria": criteria or None}
    return {k: v for k, v in out.items() if v is not None} or None


def results(analysis: Any, name: str, ident: str) -> dict[str, dict[str, Any]]:
    """``analysis[name]`` as ``{id: item}``, or else its ``<name>_list`` keyed by ``ident``."""
    found = dig(analysis, name)
    if isinstance(found, dict) and found:
        return {k: v for k, v in found.items() if isinstance(v, dict)}
    listed = dig(analysis, f"{name}_list")
    items = listed if isinstance(listed, list) else []
    return {i[ident]: i for i in items if isinstance(i, dict) and isinstance(i.get(ident), str)}


def _criterion(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in CRITERION if item.get(k) is not None}


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


class ElevenLabs(Platform):
    """Initiation and tools carry a configured secret header (nothing signed, no replay token);
    the post-call webhook is HMAC-signed, streamed, and every type of it is answered 200."""

    name = PLATFORM
    about = "ElevenLabs: the post-call HMAC secret and the secret header for initiation and tools."
    options = (
        Option(
            "--webhook-secret",
            "elevenlabs_webhook_secret",
            "The ElevenLabs post-call webhook secret",
            True,
        ),
        Option(
            "--tool-secret",
            "elevenlabs_tool_secret",
            "A secret for the initiation webhook and server tools",
            True,
        ),
        Option(
            "--secret-header",
            "elevenlabs_secret_header",
            "The header that carries the tool secret (x-botwire-secret).",
            default="x-botwire-secret",
        ),
    )
    replay_ttl = 2.0 * TOLERANCE_S
    routes = (
        Route(
            "/voice/elevenlabs/initiation",
            "start",
            "elevenlabs_tool_secret",
            "ElevenLabs conversation initiation webhook",
        ),
        Route(
            "/voice/elevenlabs/tools/{name}",
            "tool",
            "elevenlabs_tool_secret",
            "ElevenLabs server tools",
        ),
        Route(
            "/voice/elevenlabs/post-call",
            "end",
            "elevenlabs_webhook_secret",
            "ElevenLabs post-call webhook",
            streamed=True,
        ),
    )

    def verify(self, settings: VoiceSettings, inbound: Inbound) -> str | None:
        header = inbound.headers.get(settings.elevenlabs_secret_header)
        verify_shared_secret(header, settings.elevenlabs_tool_secret)
        return None

    def stream(self, settings: VoiceSettings, inbound: Inbound) -> Incremental:
        header = inbound.headers.get("elevenlabs-signature")
        secret = settings.elevenlabs_webhook_secret
        return ElevenLabsStream(header, secret, tolerance_s=TOLERANCE_S)

    def skips(self, head: bytes) -> bool:
        return _AUDIO.search(head) is not None

    def parse(self, settings: VoiceSettings, inbound: Inbound) -> Event:
        kind = inbound.route.kind
        if kind == "start":
            return call_start(inbound.body)
        if kind == "tool":
            return [tool_call(inbound.body, inbound.params["name"])]
        data = load_json(inbound.body) if inbound.kept else {}
        if data.get("type") != "post_call_transcription":
            return None  # post_call_audio, call_initiation_failure
        return post_call(data)

    def answer_start(
        self, settings: VoiceSettings, start: CallStart, briefing: Briefing, namespace: str | None
    ) -> Answer:
        return Answer(answer_start(briefing))

    def answer_tool(self, text: str, ok: bool) -> Answer:
        return Answer(answer_tool(text, ok))
