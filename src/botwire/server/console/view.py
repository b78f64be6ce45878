"""What the console's pages show, read from a caller's namespace: no HTTP, no HTML.

Each read is bounded whatever the caller has accumulated: the facts (``facts.all_facts``, at
most ``MAX_FACTS``), the ``{{memory}}`` text (``core.briefing``, which reads what call start
reads), one page of the call timeline (``TIMELINE_PAGE`` records from the end of the ``calls``
log, or before a cursor) and the transcripts of those calls only, found by stepping back through
the ``conversation`` log from where the newer page's transcripts ended.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ..._codec import check_name
from ...engines import base as ops
from ...engines.base import Engine
from ...memory import AsyncMemory
from ...voice import core, facts
from ...voice.config import VoiceConfig
from ...voice.facts import PREFIX as FACT_RECORDS
from ...voice.phone import InvalidNumber, namespace_for, to_e164
from ...voice.records import CALLS, CONVERSATION, NOTES, OPEN_PREFIX, merge_calls

MAX_FACTS = 1000
TIMELINE_PAGE = 20  # call records a page
NOTES_SHOWN = 20
CHUNK = 200  # conversation entries read at a time while looking for a page's transcripts
MAX_SCANNED = 4000  # conversation entries read for one page at most
SLACK = 3600.0  # a turn this much older than a page's oldest call belongs to an older call
_PHONE = re.compile(r"\+?[\d\s().\-/]{3,}")


# -- the callers' list ------------------------------------------------------------------------


def search_prefix(query: str, config: VoiceConfig) -> str:
    """The namespace prefix to list for what was typed: a phone number (whole or its first
    digits) becomes its caller's namespace under the voice template; anything else is a
    namespace prefix as it is."""
    query = query.strip()
    if not _PHONE.fullmatch(query) or not any(c.isdigit() for c in query):
        return query
    try:
        return namespace_for(to_e164(query, config.default_country), config.namespace)
    except InvalidNumber:
        pass
    if not isinstance(config.namespace, str):
        return query
    digits = re.sub(r"\D", "", query)
    digits = digits[2:] if query.lstrip().startswith("00") else digits
    marks = [(config.namespace.find(m), m) for m in ("{e164}", "{digits}")]
    at, mark = min((i, m) for i, m in marks if i >= 0)
    head = config.namespace[:at].replace("{{", "{").replace("}}", "}")
    return head + ("+" if mark == "{e164}" else "") + digits


ROW_KEYS = 1000  # keys a line of the callers' list reads; beyond, it says "1000+"


@dataclass(frozen=True)
class CallerRow:
    namespace: str
    facts: int
    more_facts: bool  # over ROW_KEYS keys: ``facts`` counts those read
    calls: int
    last_activity: float | None


async def caller_row(engine: Engine, ns: str) -> CallerRow:
    """A line of the callers' list: its keys' metadata (no values) and its calls' count."""
    rows, calls = await asyncio.gather(
        engine.aexecute(ops.Scan(ns, "", None, ROW_KEYS + 1)),
        engine.aexecute(ops.LogCount(ns, CALLS)),
    )
    more = len(rows) > ROW_KEYS
    plain = sum(1 for row in rows[:ROW_KEYS] if facts.is_plain(row.key))
    if more:
        recent = await engine.aexecute(ops.Recent(ns, 1))
        last = recent[0].updated_at if recent else None
    else:
        last = max((row.updated_at for row in rows), default=None)
    return CallerRow(ns, plain, more, calls, last)


async def caller_rows(engine: Engine, names: list[str]) -> list[CallerRow]:
    # one line after another: a whole page at once only queues for the database's connections
    return [await caller_row(engine, ns) for ns in names]


# -- one caller -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactView:
    """A fact as its row shows it: value, version (for compare-and-set), provenance, history."""

    fact: facts.Fact
    version: int
    history: list[facts.Fact]

    @property
    def format(self) -> str:
        return "text" if isinstance(self.fact.value, str) else "json"

    @property
    def editable(self) -> str:
        """The value as the edit box holds it: a string as it is, anything else as JSON."""
        return as_field(self.fact.value)


def as_field(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


class _Known:
    """A memory that answers ``get`` from values already read (the facts' records), to run a
    read plan on them; anything else goes to ``memory``."""

    def __init__(self, memory: AsyncMemory, values: dict[str, Any]) -> None:
        self.memory, self.values = memory, values

    def __getattr__(self, name: str) -> Any:
        return getattr(self.memory, name)

    async def get(self, key: str, default: Any = None) -> Any:
        if key in self.values or key.startswith(FACT_RECORDS):
            return self.values.get(key, default)
        return await self.memory.get(key, default)


async def fact_views(memory: AsyncMemory) -> list[FactView]:
    """Every fact (up to ``MAX_FACTS``) with its version and its recorded writes."""
    current = await core.arun(facts.all_facts(MAX_FACTS), memory)
    if not current:
        return []
    records = dict([kv async for kv in memory.items(FACT_RECORDS, limit=MAX_FACTS * 2)])
    rows = await memory.engine.aexecute(ops.Info(memory.namespace, tuple(current)))
    versions = {row.key: row.version for row in rows if row is not None}
    known = _Known(memory, records)
    out = []
    for key, fact in current.items():
        past = await core.arun(facts.history(key), known)
        out.append(FactView(fact, versions.get(key, 0), past))
    return out


@dataclass(frozen=True)
class Turn:
    role: str
    text: str
    ts: float | None


@dataclass
class CallView:
    record: dict[str, Any]
    turns: list[Turn] = field(default_factory=list)

    def get(self, name: str) -> Any:
        return self.record.get(name)


@dataclass(frozen=True)
class Cursor:
    """Where the next (older) page of the timeline starts: before these sequence numbers of
    the ``calls`` and ``conversation`` logs."""

    calls: int
    conversation: int | None  # None: from the end

    def __str__(self) -> str:
        return f"{self.calls}.{'' if self.conversation is None else self.conversation}"

    @classmethod
    def parse(cls, raw: str | None) -> Cursor | None:
        if not raw:
            return None
        match = re.fullmatch(r"(\d{1,18})\.(\d{0,18})", raw)
        if match is None:
            return None
        return cls(int(match.group(1)), int(match.group(2)) if match.group(2) else None)


@dataclass(frozen=True)
class Timeline:
    calls: list[CallView]
    older: Cursor | None  # None: this is the oldest page


async def _before(memory: AsyncMemory, log: str, before: int | None, n: int) -> list[Any]:
    """Up to ``n`` entries of ``log`` with seq below ``before`` (the newest ones without)."""
    if before is None:
        return await memory.log(log).read(last=n)
    if before <= 1:
        return []
    entries = await memory.log(log).read(after=max(0, before - 1 - n), limit=n)
    return [e for e in entries if e.seq < before]


async def timeline(memory: AsyncMemory, cursor: Cursor | None = None) -> Timeline:
    """One page of calls, newest first, each with its transcript."""
    entries = await _before(memory, CALLS, cursor.calls if cursor else None, TIMELINE_PAGE)
    calls = [CallView(r) for r in merge_calls([e.value for e in entries])]
    conversation_at = cursor.conversation if cursor else None
    conversation_at = await _transcripts(memory, calls, conversation_at)
    oldest = entries[0].seq if entries else 1
    older = None
    if len(entries) == TIMELINE_PAGE and oldest > 1:
        older = Cursor(oldest, conversation_at)
    return Timeline(calls, older)


async def _transcripts(
    memory: AsyncMemory, calls: list[CallView], before: int | None
) -> int | None:
    """Attach each call's turns, stepping back through the conversation from ``before`` (its
    end when None); returns where the next page's search starts. The search stops at the first
    turn of another call once some were found, or at one from long before the page's calls."""
    wanted = {(c.get("platform"), c.get("call_id")): c for c in calls}
    times = [t for c in calls for t in (c.get("started_at"), c.get("ended_at")) if _number(t)]
    floor = min(times) - SLACK if times else None
    found: int | None = None  # the oldest turn found so far
    stop: int | None = None
    position, scanned = before, 0
    while wanted and stop is None and scanned < MAX_SCANNED:
        chunk = await _before(memory, CONVERSATION, position, CHUNK)
        if not chunk:
            break
        scanned += len(chunk)
        for entry in reversed(chunk):
            value = entry.value if isinstance(entry.value, dict) else {}
            call = wanted.get((value.get("platform"), value.get("call_id")))
            if call is not None:
                call.turns.append(_turn(value, entry.ts))
                found = entry.seq
            elif found is not None or (floor is not None and _older(value.get("ts"), floor)):
                stop = entry.seq + 1
                break
        position = chunk[0].seq
    for call in calls:
        call.turns.reverse()
    return stop if stop is not None else found if found is not None else before


def _older(ts: Any, floor: float) -> bool:
    return _number(ts) and ts < floor


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _turn(value: dict[str, Any], ts: float) -> Turn:
    when = value.get("ts")
    return Turn(
        str(value.get("role") or "someone"),
        str(value.get("text") or ""),
        when if _number(when) else ts,
    )


@dataclass(frozen=True)
class Note:
    text: str
    call_id: str | None
    ts: float


async def notes(memory: AsyncMemory) -> list[Note]:
    entries = await memory.log(NOTES).read(last=NOTES_SHOWN)
    out = []
    for e in reversed(entries):
        value = e.value if isinstance(e.value, dict) else {"text": e.value}
        text = value.get("text")
        out.append(
            Note(text if isinstance(text, str) else json.dumps(text), value.get("call_id"), e.ts)
        )
    return out


async def open_items(memory: AsyncMemory) -> list[tuple[str, Any]]:
    return [(k[len(OPEN_PREFIX) :], v) async for k, v in memory.items(OPEN_PREFIX, limit=200)]


# -- export -----------------------------------------------------------------------------------


async def export(memory: AsyncMemory) -> dict[str, Any]:
    """Everything the console shows of a caller, whole: every key (facts, open items,
    ``last_call``), each fact's provenance record, and the voice logs."""
    keys = {k: v async for k, v in memory.items()}
    records = {k: v async for k, v in memory.items(FACT_RECORDS)}
    logs = {}
    for name in (CALLS, CONVERSATION, NOTES):
        logs[name] = [{"seq": e.seq, "ts": e.ts, "value": e.value} async for e in memory.log(name)]
    return {
        "namespace": memory.namespace,
        "exported_at": time.time(),
        "keys": keys,
        "fact_records": records,
        "logs": logs,
    }


def check_namespace(name: str) -> str:
    return check_name(name, "namespace")
