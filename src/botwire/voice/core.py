"""What happens at call start, during a call (tools) and at call end, written once.

Each operation is a *plan*: a generator that yields steps (functions of a ``Memory`` or an
``AsyncMemory``) and receives their results. ``arun`` is the one driver (``run`` steps it for a
``Memory``), so the webhooks (async, in the server) and ``CallMemory`` (sync or async, in
process) share every line of logic.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable, Collection, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from .._codec import check_name, encode
from ..errors import BotWireError, InvalidInput, VersionConflict
from . import context, facts
from .facts import Origin
from .records import (
    CALLS,
    CONVERSATION,
    INTERNAL_PREFIX,
    LAST_CALL,
    NOTES,
    SUMMARY_PART,
    CallEnd,
    Turn,
    merge_calls,
)

T = TypeVar("T")
TOOL = Origin("tool")
DEFAULT_POLICIES = facts.Policies()  # every extracted field overwrites the fact of its name
Step = Callable[[Any], Any]
Plan = Generator[Step, Any, T]

CLAIM_TTL = 7 * 24 * 3600.0  # platforms retry within minutes or hours; a week is ample
LEASE = 60.0  # a claim left "pending" this long belongs to a writer that died: take it over
MAX_FACTS = 200  # facts read at call start; the budget would cut the rest anyway
READ_CALLS = 20
READ_NOTES = 20
MAX_RESULT = 2000


class ToolError(BotWireError):
    """A tool call that cannot be answered (unknown tool, missing argument); said to the agent."""


def run(plan: Plan[T], memory: Any) -> T:
    """Drive ``plan`` on a sync ``Memory``: ``arun`` itself, which never suspends when no step
    returns an awaitable, stepped once."""
    driving = arun(plan, memory)
    try:
        driving.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    driving.close()
    raise TypeError("run() drives a sync Memory; use arun() for an AsyncMemory")


async def arun(plan: Plan[T], memory: Any) -> T:
    """Drive ``plan`` on an ``AsyncMemory`` (or a ``Memory``): the one driver of every plan.
    A step's ``BotWireError`` is thrown into the plan, which may handle it."""
    result: Any = None
    error: BotWireError | None = None
    while True:
        try:
            step = plan.throw(error) if error is not None else plan.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            result, error = await _perform(step, memory), None
        except BotWireError as exc:
            result, error = None, exc


async def _perform(step: Step, memory: Any) -> Any:
    result = step(memory)
    if inspect.isawaitable(result):
        result = await result
    elif hasattr(result, "__aiter__"):
        result = [item async for item in result]
    return _collect(result)


def _collect(result: Any) -> Any:
    return list(result) if isinstance(result, Iterator) else result


# -- call start ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Briefing:
    """The answer to call start: the ``memory`` text and every variable (all strings)."""

    memory: str
    variables: dict[str, str]
    known: bool


def snapshot() -> Plan[context.Snapshot]:
    """What call start reads: facts, recent calls, notes -- three reads answered together."""
    facts, calls, notes = yield lambda m: m._together(
        m._items_page(MAX_FACTS),
        m.log(CALLS)._read_last(READ_CALLS),
        m.log(NOTES)._read_last(READ_NOTES),
    )
    return context.Snapshot(
        facts=dict(facts),
        calls=merge_calls([e.value for e in calls]),
        notes=[_note_text(e.value) for e in reversed(notes)],
    )


def _note_text(value: Any) -> str:
    return value.get("text", "") if isinstance(value, dict) else context.text(value)


def briefing(budget: int = context.DEFAULT_BUDGET, always: tuple[str, ...] = ()) -> Plan[Briefing]:
    snap = yield from snapshot()
    memory = context.build(snap, budget)
    return Briefing(memory, context.variables(snap, memory, always), snap.known)


# -- tools --------------------------------------------------------------------------------

TOOLS = ("recall_memory", "remember", "remember_fact", "forget")  # the webhooks' tools
# over MCP also the call-start brief (a webhook platform gets it as variables) and a listing
MCP_TOOLS = ("get_caller_context", *TOOLS, "list_memories")


def tool(
    name: str,
    args: dict[str, Any],
    origin: Origin = TOOL,
    budget: int = context.DEFAULT_BUDGET,
) -> Plan[str]:
    """Run one in-call tool; its answer is a sentence the agent can use as it is. Its writes
    are recorded as coming from ``origin`` (the source, platform and call)."""
    if name == "get_caller_context":
        return (yield from briefing(budget)).memory
    if name == "list_memories":
        return (yield from listing())
    if name == "recall_memory":
        return (yield from recall(_arg(args, "query"), _limit(args.get("limit"))))
    if name == "remember":
        return (yield from remember(_arg(args, "key"), _value(args), origin))
    if name == "remember_fact":
        return (yield from remember_fact(_arg(args, "text", "fact"), origin.call_id))
    if name == "forget":
        return (yield from forget(_arg(args, "key"), origin))
    raise ToolError(f"unknown tool {name!r}; botwire answers {', '.join(MCP_TOOLS)}")


def _arg(args: dict[str, Any], *names: str) -> str:
    for name in names:
        value = args.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if value is not None and not isinstance(value, str):
            raise ToolError(f"argument {name!r} must be a string")
    raise ToolError(f"missing argument {names[0]!r}")


def _limit(raw: Any) -> int:
    if raw is None or raw == "":
        return 5
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ToolError(f"argument 'limit' must be a whole number, not {raw!r}") from None


def _value(args: dict[str, Any]) -> Any:
    if "value" not in args or args["value"] in (None, ""):
        raise ToolError("missing argument 'value'")
    return args["value"]


def _fact_key(key: str) -> str:
    try:
        check_name(key)
    except InvalidInput as exc:
        raise ToolError(str(exc)) from None
    if key.startswith(INTERNAL_PREFIX) or key == LAST_CALL:
        raise ToolError(f"{key!r} is kept by botwire itself and cannot be changed by a tool")
    return key


def recall(query: str, limit: int = 5) -> Plan[str]:
    limit = max(1, min(limit, 20))
    hits = yield lambda m: m.search(query, limit=limit + 5)
    lines = [line for line in map(_hit_line, hits) if line][:limit]
    if not lines:
        return f"Nothing stored about this caller matches {query!r}."
    return context._cut("\n".join(lines), MAX_RESULT)


def _hit_line(hit: Any) -> str | None:
    value = hit.value
    if hit.key is not None:
        if hit.key.startswith(INTERNAL_PREFIX) or hit.key == LAST_CALL:
            return None  # bookkeeping, and a copy of the newest call record
        return f"{hit.key}: {context.text(value)}"
    if hit.log == CALLS and isinstance(value, dict):
        return "call " + context.call_line(value)
    if hit.log == CONVERSATION and isinstance(value, dict):
        said = context.when(value.get("ts", hit.ts))  # the line's own time, not its storage's
        return f"{value.get('role', 'someone')} said ({said}): " + context.text(
            value.get("text", "")
        )
    if hit.log == NOTES:
        return "note: " + _note_text(value)
    return f"{hit.log}: {context.text(value)}"


def listing() -> Plan[str]:
    """Every fact and open item of the caller, one line each, within ``MAX_RESULT``."""
    items = yield lambda m: m.items(limit=MAX_FACTS)
    lines = [f"{k}: {context.text(v)}" for k, v in items if k != LAST_CALL]
    if not lines:
        return "Nothing is stored about this caller yet."
    return context._cut("\n".join(lines), MAX_RESULT)


def remember(key: str, value: Any, origin: Origin = TOOL) -> Plan[str]:
    key = _fact_key(key)
    yield from facts.write({key: value}, origin)
    return f"Remembered {key}."


def remember_fact(fact: str, call_id: str | None = None) -> Plan[str]:
    entry = _note(fact, call_id)
    yield lambda m: m.log(NOTES).append(entry)
    return "Noted."


def _note(fact: Any, call_id: str | None) -> dict[str, Any]:
    return {"text": fact, "call_id": call_id, "ts": time.time()}


def forget(key: str, origin: Origin = TOOL) -> Plan[str]:
    key = _fact_key(key)
    existed = yield from facts.delete(key, origin)
    return f"Forgot {key}." if existed else f"Nothing was stored under {key}."


# -- call end -----------------------------------------------------------------------------


def end_call(event: CallEnd, policies: facts.Policies = DEFAULT_POLICIES) -> Plan[set[str]]:
    """Write the call's transcript, record and ``last_call``, and its extracted fields as facts
    (by ``policies``), once per (platform, call, part).

    Returns what this delivery wrote: ``{"transcript", <part>, "facts"}``, fewer when another
    delivery of the same call wrote them (or is writing them right now); empty for a pure
    duplicate.
    """
    base = f"{INTERNAL_PREFIX}call/{event.platform}/{event.call_id}"
    wrote = set()
    if event.turns and (yield from _once(f"{base}/transcript", _write_transcript(event))):
        wrote.add("transcript")
    if (yield from _once(f"{base}/{event.part}", _write_record(event))):
        wrote.add(event.part)
    if event.extracted and (
        yield from _once(f"{base}/{event.part}/facts", _extract(event, policies))
    ):
        wrote.add("facts")
    return wrote


def _extract(event: CallEnd, policies: facts.Policies) -> Callable[[bool], Plan[None]]:
    origin = Origin("analysis", event.platform, event.call_id)

    def write(check: bool) -> Plan[None]:  # the policies are idempotent: ``check`` is moot
        yield from facts.apply(event.extracted or {}, policies, origin)

    return write


def _once(claim: str, write: Callable[[bool], Plan[None]]) -> Plan[bool]:
    """Run ``write`` unless ``claim`` says it ran; ``write(True)`` after a crashed writer."""
    taken = yield from _claim(claim)
    if taken is None:
        return False
    yield from write(taken)
    yield lambda m: m.set(claim, {"state": "done", "at": time.time()}, ttl=CLAIM_TTL)
    return True


def _claim(claim: str) -> Plan[bool | None]:
    """True: taken over from a dead writer; False: taken fresh; None: someone else has it."""
    pending = {"state": "pending", "at": time.time()}
    try:
        yield lambda m: m.set(claim, pending, ttl=CLAIM_TTL, if_version=0)
        return False
    except VersionConflict:
        pass
    info = yield lambda m: m.info(claim)
    held = yield lambda m: m.get(claim)
    if info is None or not isinstance(held, dict) or held.get("state") != "pending":
        return None
    if time.time() - float(held.get("at") or 0) < LEASE:
        return None
    try:
        yield lambda m: m.set(claim, pending, ttl=CLAIM_TTL, if_version=info.version)
        return True
    except VersionConflict:
        return None


def _write_transcript(event: CallEnd) -> Callable[[bool], Plan[None]]:
    entries = _transcript(event)

    def write(check: bool) -> Plan[None]:
        if check:  # a writer died after claiming: did its extend land?
            tail = yield lambda m: m.log(CONVERSATION).read(last=len(entries))
            if any(_same_call(e.value, event) for e in tail):
                return
        yield lambda m: m.log(CONVERSATION).extend(entries)

    return write


def _transcript(event: CallEnd) -> list[dict[str, Any]]:
    return [_turn_entry(t, event) for t in event.turns]


def _turn_entry(turn: Turn, event: CallEnd) -> dict[str, Any]:
    return {
        "role": turn.role,
        "text": turn.text,
        "call_id": event.call_id,
        "platform": event.platform,
        "ts": turn.ts if turn.ts is not None else event.ended_at,
    }


def _same_call(value: Any, event: CallEnd, part: str | None = None) -> bool:
    return (
        isinstance(value, dict)
        and value.get("call_id") == event.call_id
        and value.get("platform") == event.platform
        and (part is None or value.get("part") == part)
    )


def _write_record(event: CallEnd) -> Callable[[bool], Plan[None]]:
    record = event.record()

    def write(check: bool) -> Plan[None]:
        landed = False
        if check:
            tail = yield lambda m: m.log(CALLS).read(last=READ_CALLS)
            landed = any(_same_call(e.value, event, event.part) for e in tail)
        if not landed:
            yield lambda m: m.log(CALLS).append(record)
        yield from _update_last_call(record)

    return write


def _update_last_call(record: dict[str, Any]) -> Plan[None]:
    """``last_call`` follows the newest call; a late part of an older call never replaces it."""
    current = yield lambda m: m.get(LAST_CALL)
    new = _last_call(record)
    if isinstance(current, dict):
        if (current.get("platform"), current.get("call_id")) == (new["platform"], new["call_id"]):
            if current.get("summarised") and not new["summarised"]:
                new["summary"], new["summarised"] = None, True  # the summariser's text stays
            new = {k: v if v is not None else current.get(k) for k, v in new.items()}
        elif (current.get("ended_at") or 0) > (new["ended_at"] or float("inf")):
            return
    yield lambda m: m.set(LAST_CALL, new)


def _last_call(record: dict[str, Any]) -> dict[str, Any]:
    fields = ("call_id", "platform", "started_at", "ended_at", "duration_s", "summary", "outcome")
    return {**{k: record.get(k) for k in fields}, "summarised": record.get("part") == SUMMARY_PART}


# -- what a plan stores, for the server's quotas --------------------------------------------


@dataclass(frozen=True)
class Provenance:
    """A fact's history entry among the values a plan stores: its bytes count, but it is part
    of the fact's write, not a write of its own."""

    entry: dict[str, Any]


def cost(values: list[Any]) -> tuple[int, int]:
    """``(writes, bytes)`` of storing ``values``: one write each, and their encoded UTF-8 size,
    as ``/v1`` counts a value or a log entry."""
    writes = sum(1 for v in values if not isinstance(v, Provenance))
    texts = (encode(v.entry if isinstance(v, Provenance) else v, sys.maxsize) for v in values)
    return writes, sum(len(t.encode()) for t in texts)


def tool_writes(name: str, args: dict[str, Any], origin: Origin = TOOL) -> list[Any]:
    """The values ``tool(name, args)`` stores (a fact's with its history entry); reads store
    none, a deletion its history entry."""
    if name == "remember":
        return [args.get("value"), Provenance(origin.entry(args.get("value")))]
    if name == "remember_fact":
        return [_note(args.get("text") or args.get("fact"), origin.call_id)]
    if name == "forget":
        return [Provenance(origin.entry(None, deleted=True))]
    return []


def end_call_writes(event: CallEnd, parts: Collection[str]) -> list[Any]:
    """The values ``end_call(event)`` stores for ``parts`` (``"transcript"``, ``event.part``,
    ``"facts"``: all of them on a first delivery, what it returned afterwards); the extracted
    fields at most, as a policy may store fewer. Its ``~call/`` claims are
    bookkeeping that expires, like the server's replay keys, and are not counted."""
    out: list[Any] = _transcript(event) if "transcript" in parts and event.turns else []
    if event.part in parts:
        record = event.record()
        out += [record, _last_call(record)]
    if "facts" in parts and event.extracted:
        origin = Origin("analysis", event.platform, event.call_id)
        for value in event.extracted.values():
            out += [value, Provenance(origin.entry(value))]
    return out
