"""What a call leaves in its caller's namespace, and the platform-neutral events that write it.

One namespace per caller (``phone:+14155550123`` by default) holds:

=====================  ======================================================================
``<fact>``             every key not starting with ``~``: ``customer_name``, ``last_order``, ...
                       set by tools, by the platform's extraction at call end, or the API
``open:<name>``        something left open ("refund for ORDER-789 pending"); ``forget`` closes it
``last_call``          the newest call: ``{"call_id", "platform", "ended_at", "summary", ...}``
log ``calls``          one record per call (``CallRecord.as_dict``); a platform that reports a
                       call in two webhooks (Retell) adds a second record with the same ``call_id``,
                       and readers merge them (``merge_calls``)
log ``conversation``   ``{"role": "user"|"assistant", "text", "call_id", "platform", "ts"}``
log ``notes``          ``{"text", "call_id", "ts"}`` from ``remember_fact``
``~fact/<fact>``       the fact's provenance and last writes (``voice.facts``)
``~call/...``          bookkeeping that makes webhooks idempotent; never shown to the agent
=====================  ======================================================================
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

CALLS = "calls"
CONVERSATION = "conversation"
NOTES = "notes"
LAST_CALL = "last_call"
OPEN_PREFIX = "open:"
INTERNAL_PREFIX = "~"
KEPT_VALUE = 4096  # the most characters of JSON a copy of a value keeps (``bounded``)
SUMMARY_PART = "summary"  # the part a summariser hook adds; its summary wins over the platform's

_ROLES = {
    "user": "user",
    "customer": "user",
    "human": "user",
    "caller": "user",
    "assistant": "assistant",
    "agent": "assistant",
    "bot": "assistant",
    "ai": "assistant",
}


def normalise_role(role: object) -> str | None:
    """``user`` or ``assistant`` for a speaker's role on any platform; None for tool / system."""
    return _ROLES.get(role.strip().lower()) if isinstance(role, str) else None


def is_fact(key: str) -> bool:
    """Whether ``key`` is a plain fact (shown to the agent and offered as a variable)."""
    return not key.startswith((INTERNAL_PREFIX, OPEN_PREFIX)) and key != LAST_CALL


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "assistant"
    text: str
    ts: float | None = None


@dataclass(frozen=True)
class CallStart:
    platform: str
    caller: str | None  # as sent; None when the platform gave none
    called: str | None = None
    call_id: str | None = None
    channel: str = "call"  # or "chat": a chat or SMS conversation (Retell's chat_inbound)


@dataclass(frozen=True)
class ToolCall:
    platform: str
    name: str
    args: dict[str, Any]
    caller: str | None
    call_id: str | None = None
    tool_call_id: str | None = None


@dataclass(frozen=True)
class CallEnd:
    """A finished call as one platform webhook reports it.

    ``part`` tells apart the webhooks one call may send (Retell: ``ended`` then ``analyzed``);
    each (platform, call_id, part) is written once, however often it is delivered.
    """

    platform: str
    call_id: str
    caller: str | None
    part: str = "end"
    started_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    summary: str | None = None
    outcome: str | None = None
    successful: bool | None = None
    turns: tuple[Turn, ...] = field(default=())
    # the platform's structured extraction, {field: value}: becomes facts (``facts.apply``)
    extracted: dict[str, Any] | None = None
    # its evaluations (success, sentiment, criteria, voicemail, ...): kept in the call record
    evaluation: dict[str, Any] | None = None

    def summarised(self, summary: object) -> CallEnd | None:
        """The part a summariser adds (``part="summary"``), or None when it gave no text."""
        if not isinstance(summary, str) or not summary.strip():
            return None
        return CallEnd(
            self.platform,
            self.call_id,
            self.caller,
            part=SUMMARY_PART,
            ended_at=self.ended_at,
            summary=summary.strip(),
        )

    def record(self) -> dict[str, Any]:
        """The ``calls`` log entry: everything but the transcript."""
        out = asdict(self)
        del out["turns"], out["caller"]
        for name in ("extracted", "evaluation"):
            if out[name]:
                out[name] = {k: bounded(v) for k, v in out[name].items()}
            else:
                del out[name]
        if out["duration_s"] is None and self.started_at is not None and self.ended_at is not None:
            out["duration_s"] = round(self.ended_at - self.started_at, 3)
        return out


def bounded(value: Any) -> Any:
    """``value``, or ``{"~truncated": <its JSON, cut>}`` when its JSON is over ``KEPT_VALUE``
    characters: a copy kept for the record (a call's extracted fields, a fact's history)."""
    text = json.dumps(value, ensure_ascii=False)
    return value if len(text) <= KEPT_VALUE else {"~truncated": text[:KEPT_VALUE]}


def merge_calls(entries: list[Any]) -> list[dict[str, Any]]:
    """Call records, one per call, newest first: parts with the same call id merged in order,
    except that a summariser's summary (``part="summary"``) is kept whatever arrives after it."""
    merged: dict[tuple[Any, Any], dict[str, Any]] = {}
    hooked: set[tuple[Any, Any]] = set()
    for entry in entries:
        if not isinstance(entry, dict) or "call_id" not in entry:
            continue
        ident = (entry.get("platform"), entry["call_id"])
        into = merged.setdefault(ident, {})
        keep = into.get("summary") if ident in hooked else None
        into.update({k: v for k, v in entry.items() if v is not None or k not in into})
        if entry.get("part") == SUMMARY_PART:
            hooked.add(ident)
        elif keep is not None:
            into["summary"] = keep
    return sorted(merged.values(), key=_call_time, reverse=True)


def _call_time(record: dict[str, Any]) -> float:
    value = record.get("ended_at") or record.get("started_at") or 0
    return float(value) if isinstance(value, (int, float)) else 0.0
