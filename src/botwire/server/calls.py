"""Which caller a call in progress is: recorded from the call's verified call-start webhook, read
by ``/mcp`` when a platform names the call (Vapi's ``X-Call-Id``). A model never chooses it.

One key per call in the internal namespace ``~botwire:voice-calls``, ``{"ns", "platform"}``,
kept ``CALL_TTL`` (longer than any call).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._codec import check_name
from ..errors import InvalidInput
from ..memory import AsyncMemory

CALLS_NS = "~botwire:voice-calls"
CALL_TTL = 12 * 3600.0


@dataclass(frozen=True)
class Bound:
    """The caller a tool works on, and the platform and call its writes are recorded with."""

    ns: str
    platform: str
    call_id: str | None = None


async def record(engine: Any, platform: str, call_id: str, ns: str | None, why: str = "") -> None:
    """The call's caller; ``ns`` None with ``why`` for a call whose caller has no memory (a
    withheld number, say)."""
    value = {"ns": ns, "platform": platform, "why": why}
    await AsyncMemory(CALLS_NS, engine=engine).set(call_id, value, ttl=CALL_TTL)


async def lookup(engine: Any, call_id: str) -> Bound | str | None:
    """The call's caller, why it has none (said to the model), or None for a call no verified
    webhook has named (or long over)."""
    try:
        check_name(call_id)
    except InvalidInput:
        return None
    found = await AsyncMemory(CALLS_NS, engine=engine).get(call_id)
    if not isinstance(found, dict):
        return None
    if not isinstance(found.get("ns"), str):
        return str(found.get("why") or "") or None
    return Bound(found["ns"], str(found.get("platform") or "mcp"), call_id)
