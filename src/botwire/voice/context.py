"""The prompt-ready ``memory`` text and the per-fact variables, built without an LLM.

Deterministic: the same stored data gives the same text, byte for byte. Budgeted: the text never
passes ``budget`` characters; sections are filled in order of importance (facts, open items,
recent calls, notes) and a section stops at the first line that no longer fits.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from .records import LAST_CALL, OPEN_PREFIX, is_fact

DEFAULT_BUDGET = 2000
MAX_LINE = 300
MIN_LINE = 24
FIRST_CALL = "This is the first call from this caller; nothing is remembered about them yet."
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class Snapshot:
    """What is stored about one caller, as read at call start."""

    facts: dict[str, Any]  # every key of the namespace (internal ones are skipped here)
    calls: list[dict[str, Any]]  # merged call records, newest first
    notes: list[str]  # newest first

    @property
    def known(self) -> bool:
        return bool(self.calls or self.notes or any(is_fact(k) for k in self.facts))


def text(value: Any) -> str:
    """A stored value as one line of text: strings as they are, the rest as compact JSON."""
    if isinstance(value, str):
        return " ".join(value.split())
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def when(ts: Any) -> str:
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return "date unknown"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def call_line(call: dict[str, Any]) -> str:
    parts = [when(call.get("ended_at") or call.get("started_at"))]
    duration = call.get("duration_s")
    if isinstance(duration, (int, float)) and duration > 0:
        parts.append(f"{round(duration)} s" if duration < 60 else f"{round(duration / 60)} min")
    summary = call.get("summary")
    line = ", ".join(parts) + ": " + (text(summary) if summary else "no summary")
    if call.get("outcome"):
        line += f" (outcome: {text(call['outcome'])})"
    return line


def build(snapshot: Snapshot, budget: int = DEFAULT_BUDGET, max_calls: int = 5) -> str:
    """The ``memory`` text for one caller, at most ``budget`` characters."""
    if not snapshot.known:
        return _fit([("", [FIRST_CALL])], budget)
    facts = [f"- {k}: {text(v)}" for k, v in sorted(snapshot.facts.items()) if is_fact(k)]
    opened = [
        f"- {k[len(OPEN_PREFIX) :]}: {text(v)}"
        for k, v in sorted(snapshot.facts.items())
        if k.startswith(OPEN_PREFIX)
    ]
    calls = snapshot.calls[:max_calls]
    if calls and calls[0].get("successful") is False:
        opened.append(f"- the last call did not succeed: {call_line(calls[0])}")
    return _fit(
        [
            ("Known facts:", facts),
            ("Still open:", opened),
            ("Recent calls, newest first:", [f"- {call_line(c)}" for c in calls]),
            ("Notes, newest first:", [f"- {text(n)}" for n in snapshot.notes]),
        ],
        budget,
    )


def _fit(sections: list[tuple[str, list[str]]], budget: int) -> str:
    out: list[str] = []
    for header, lines in sections:
        for i, line in enumerate(lines):
            head = [header] if header and i == 0 else []
            room = budget - len("\n".join([*out, *head, ""]))
            line = _cut(line, MAX_LINE)
            if len(line) > room:
                if room >= MIN_LINE:  # a shortened line is still worth reading
                    out += [*head, _cut(line, room)]
                break  # the section stops at the first line that does not fit
            out += [*head, line]
    return "\n".join(out)


def _cut(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: max(0, limit - 1)] + "…"


def variables(snapshot: Snapshot, memory: str, always: tuple[str, ...] = ()) -> dict[str, str]:
    """``memory``, every fact whose key is a variable name, ``last_call_*``; all strings.

    Names in ``always`` are present even when nothing is stored (as ""): ElevenLabs refuses a
    conversation whose agent defines a variable the answer leaves out.
    """
    out = {name: "" for name in always}
    for key, value in sorted(snapshot.facts.items()):
        if is_fact(key) and _VARIABLE.fullmatch(key):
            out[key] = _cut(text(value), MAX_LINE)
    last = snapshot.calls[0] if snapshot.calls else snapshot.facts.get(LAST_CALL)
    if isinstance(last, dict):
        out["last_call_summary"] = _cut(text(last.get("summary") or ""), MAX_LINE)
        out["last_call_date"] = when(last.get("ended_at") or last.get("started_at"))
    out["memory"] = memory
    return out
