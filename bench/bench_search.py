#!/usr/bin/env python3
"""Keyword-search benchmark: what ``Memory.search`` costs readers, and what its index costs writers.

Run with ``.venv/bin/python bench/bench_search.py [--quick] [--no-postgres] [--output PATH]``; see
``--help``. Prints a markdown report on stdout (and writes it to ``--output``); progress goes to
stderr. A full run takes about 12 minutes on a shared 2-core machine, ``--quick`` about three.

Data: N callers (namespaces named by phone number, default 10k, ``--quick`` 1k). Each caller has
20 facts (keys like ``delivery_address`` or ``last_order``, short text values drawn from a small
vocabulary, plus two rare words: a surname and a pet's name) and a ``calls`` log of 10 entries
(``{"role": ..., "text": <sentence>}``). Loaded through ``AsyncMemory`` (``set_many`` of the
facts and ``extend`` of the log, many callers at a time).

1. Write cost of the index. ``Memory.set`` (overwrite of an existing fact with a ~100-byte text)
   and ``Log.append`` (a ~100-byte entry) in (a) a caller's namespace (small: ranked directly,
   never indexed) and (b) a namespace of a few thousand keys that searches keep indexed (SQLite
   only): the first overwrite of a key since it was indexed (a trigger stashes the text the
   index holds for it), a later overwrite of the same key (nothing to stash), and an append.
   Subjects:

   * botwire-sqlite: the database above, with its search index;
   * botwire-sqlite (no index): a copy of the same file (SQLite backup API) on which every
     trigger (those that keep the index's bookkeeping: ``botwire_kv_stale``,
     ``botwire_kv_forget``, ``botwire_entries_forget``) was dropped with the stdlib ``sqlite3``
     module. The copy is already at the newest schema version, so the engine does not
     recreate them;
   * diskcache: ``Cache.set(ns + "/" + key, json.dumps(value))`` and
     ``Cache.push(json.dumps(entry), prefix=ns + "/calls")``, loaded with the same data;
   * botwire-postgres and botwire-postgres (no index), when PostgreSQL is reachable: a private
     schema loaded like the SQLite file, and a second private schema holding a copy of its rows
     in which the generated ``tsv`` columns (and so their GIN indexes) were dropped.

   Every subject gets the same writes (same namespace, key and value) in the same order. Before
   each repetition of (b) the namespace is indexed again (the engine's own statements,
   ``sql.sqlite_index_namespace``, on a separate connection) and the keys of the "later
   overwrite" row are overwritten once, untimed, on both files.

2. The deferred part (SQLite). Writers add nothing for the index: a search of a namespace
   larger than ``sql.SEARCH_DIRECT_MAX`` indexes what that namespace lacks first (slices of
   64 rows per write transaction, at most 8 inline; when it lacks more it ranks the namespace
   directly and the background indexes it). A trial: a burst of writes (100, then 1000; half
   ``set``, half ``append``), then a timed search, the same search again, and for a large
   namespace the same search once more after the index holds the whole namespace again. The
   bursts go into a namespace of 1,000 keys and entries that searches keep indexed (a fresh
   one per trial, loaded and indexed untimed, then searched once), or to random callers with
   the search in a caller's namespace. Indexed file and the copy without triggers (the
   control), same writes and searches.

3. Search latency. ``Memory(ns).search(query, limit=10)`` for three kinds of query:
   one common word, one rare word (the caller's surname), four words. Peers, in the same run:

   * scan + rank: what a user does without search: ``items()`` of the namespace and
     ``log("calls").read()`` through botwire, then ranking by the number of query words each
     key/value or entry contains, in Python (no stemming);
   * sqlite3, same SQL: the statements botwire runs (``sql.sqlite_search_direct`` for a small
     namespace, else ``sql.sqlite_search``), executed with the stdlib ``sqlite3`` module on its
     own connection to the same file; the floor for botwire's own overhead (parsing the query,
     dispatch, JSON decoding, hits);
   * on PostgreSQL: scan + rank over botwire-postgres, psycopg running the same SQL, and
     psycopg running botwire 0.3.0's statement (``UNFENCED_PG_SEARCH``), which lets the planner
     combine the primary key with the GIN index.

   The search index holds no caller: small namespaces are never indexed.

4. Search by namespace size: one namespace each of 100 to 3,000 keys and entries: botwire's
   search against sqlite3 running ``sql.sqlite_search`` alone (the FTS5 statement botwire uses
   for namespaces too large to rank directly; the 100- and 300-document namespaces are indexed
   for it at setup, with the engine's statements): where ranking directly stops paying off on
   SQLite, and what the fenced statement costs on PostgreSQL as a namespace grows.

5. Word variants: ``Memory.search`` as it is (each word also matches its root as a prefix,
   "allergies" -> ``allerg*``) against the same search with exact words only (``_search.root``
   switched off for the call, the statements of botwire before variants), interleaved in one
   run, on SQLite and PostgreSQL: callers' namespaces (the query kinds above and a word stored
   in another form), and the 1,000- and 3,000-document namespaces (SQLite's index).

``--sections`` runs some of these only (say ``--sections variants``); the data is loaded anyway.

``--json`` writes the medians; ``--baseline`` takes such a file from an earlier run (say, of the
previous code, with ``PYTHONPATH`` pointing at it) and adds a before / after section.

Timing: every call is timed alone with ``time.perf_counter_ns``. Within a section the calls of
all rows and subjects are interleaved in slices (``--chunks``), each slice after one untimed call
(skipped for calls slower than 1 ms), so that a noise burst on a shared machine hits every subject
alike. A measurement is ``--ops`` calls, fewer when a subject is slow: at most ``--budget``
seconds per (row, subject, repetition), never fewer than ``--min-calls``. Each measurement is
repeated ``--reps`` times (the subject order rotates) and the medians over the repetitions of
p50, p99 (and, for writes, the slowest call and the mean) are reported. Ratios compare those
medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_core import (  # noqa: E402  (shared with the core benchmark)
    fmt_ratio,
    fmt_us,
    human,
    log,
    machine_info,
    parse_size,
    pct,
    time_calls,
)
from bench_core import source_digest as core_source_digest  # noqa: E402

DEFAULT_PG = os.environ.get(
    "BOTWIRE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SEED = 20241125
LIMIT = 10  # search(query, limit=10)
FIXED_FACTS = ("name", "pet")  # every caller has these (they hold the rare words)
N_FACTS = 20
N_CALLS = 10
QUERY_KINDS = ("1 word, common", "1 word, rare", "4 words")
VARIANT_WORDS = ("allergies", "shipping", "refunds")  # stored as allergic, shipped, refund
VARIANT_KINDS = (*QUERY_KINDS, "1 word, another form")
VARIANT_SIZES = (1000, 3000)
SECTIONS = ("search", "sizes", "writes", "catchup", "search-after", "variants")
COMMON_WORDS = ("order", "delivery", "refund")
WRITE_ROWS = ("set (overwrite, ~100 B text)", "log append (~100 B entry)")
LARGE_ROWS = (
    "set, first overwrite since indexed",
    "set, key overwritten before",
    "log append",
)
WRITES_NS = "bench-writes"  # the large namespace of the write rows (b)

dumps = json.dumps


def _short(text: str, n: int = 200) -> str:
    return " ".join(text.replace("|", "/").split())[:n]


# --------------------------------------------------------------------------------------------
# Data: callers of a voice agent
# --------------------------------------------------------------------------------------------

FIRST = (
    "Ana Ben Chloe Dev Elif Farah Gus Hana Ivan Jade Kofi Lena Maya Nico Omar Priya Quinn Rosa "
    "Sam Tara Umar Vera Will Yara Zoe"
).split()
CITIES = (
    "Leeds Bristol Glasgow Cardiff Belfast Norwich Exeter York Dundee Bath Derby Hull Oxford "
    "Cambridge Brighton Preston Swansea Aberdeen Chester Luton"
).split()
STREETS = "Mill Station Church Park Victoria Queen King High Bridge Castle Market Abbey".split()
PRODUCTS = (
    "blender kettle toaster vacuum heater fan lamp speaker router printer monitor keyboard "
    "headset camera charger microwave juicer mixer iron humidifier"
).split()
STATUSES = (
    "shipped",
    "delivered",
    "out for delivery",
    "delayed at the depot",
    "returned",
    "awaiting payment",
)
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
LANGS = "English Spanish Polish Urdu Welsh French Portuguese".split()
TIERS = "bronze silver gold platinum".split()
CARDS = "Visa Mastercard Amex debit".split()
ALLERGENS = "peanuts shellfish gluten lactose sesame soy".split()
ANIMALS = "dog cat parrot rabbit tortoise hamster".split()
CHANNELS = "text phone email WhatsApp".split()
MOODS = "calm frustrated happy impatient polite confused".split()
MONTHS = "January February March April May June July August September October November".split()
AGENTS = "Alex Jordan Casey Riley Morgan Taylor".split()
ISSUES = (
    "refund pending for a damaged {product}",
    "{product} stopped working after two weeks",
    "charged twice for order {order}",
    "missed delivery, wants a new slot on {day}",
    "wrong colour {product} delivered",
    "asked to cancel the subscription",
    "warranty claim for the {product} in progress",
)
# syllables of the rare words (surnames, pet names): about 5.8k combinations each
SUR = "ka lo mi ra tu ve shi no ba de zo fi gu pe ya mo ri sa".split()
PET = "bix wum tog lep quib dar fen jox muz pib rov sul tek vim yag zun hob cav".split()

FACTS: dict[str, str] = {
    "name": "{first} {surname}",
    "pet": "has a {animal} called {petname}",
    "preferred_name": "{first}",
    "language": "prefers {lang}",
    "callback_window": "weekdays after {hour} pm, never on {day}",
    "delivery_address": "{num} {street} Street, {city}",
    "city": "{city}",
    "last_order": "order {order} for a {product}, {status}",
    "previous_order": "order {order2} for a {product2}, delivered on {day}",
    "payment_method": "{card} card ending {digits}",
    "account_tier": "{tier} member since {year}",
    "open_issue": "{issue}",
    "dietary_notes": "allergic to {allergen}",
    "delivery_notes": "leave parcels with the neighbour at number {num2}",
    "contact_channel": "prefers {channel} over email",
    "birthday": "{month} {dom}",
    "loyalty_points": "{points} points, {tier} tier",
    "last_agent": "spoke with {agent} about the {product}",
    "mood": "{mood} on the last call",
    "accessibility": "hard of hearing, speak slowly",
    "subscription": "monthly plan, renews on the {dom}th",
    "warranty": "{product} warranty until {wyear}",
    "vip": "escalate complaints to a supervisor",
    "notes": "asked about the {product2} price in {city}",
}
CALLER_LINES = (
    "Hi, this is {first} {surname}, calling about order {order}.",
    "Where is my {product}? It was meant to arrive on {day}.",
    "The {product} arrived damaged and I would like a refund.",
    "Can you move the delivery to {day} morning?",
    "I was charged twice for the same order.",
    "Please send it to my address in {city} instead.",
    "My {animal} {petname} chewed through the cable.",
    "I would rather you call me back after {hour} pm.",
)
AGENT_LINES = (
    "I can see order {order} left our depot in {city} yesterday.",
    "I have issued a refund of {amount} pounds to your {card} card.",
    "The delivery is now booked for {day} between eight and noon.",
    "I have added a note to your account about the {product}.",
    "A replacement {product} will ship within two working days.",
    "I have applied a {pct} percent discount to your next order.",
)


def ns_name(i: int) -> str:
    return f"+1555{i:07d}"  # callers are known by their phone number


def _rare(rng: random.Random, syllables: list[str]) -> str:
    return "".join(rng.choice(syllables) for _ in range(3)).capitalize()


@dataclass
class Caller:
    ns: str
    facts: dict[str, str]
    calls: list[dict[str, str]]
    ctx: dict[str, Any]


def _context(rng: random.Random) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "first": rng.choice(FIRST),
        "surname": _rare(rng, SUR),
        "petname": _rare(rng, PET),
        "animal": rng.choice(ANIMALS),
        "lang": rng.choice(LANGS),
        "hour": rng.randint(1, 7),
        "day": rng.choice(DAYS),
        "num": rng.randint(1, 250),
        "num2": rng.randint(1, 250),
        "street": rng.choice(STREETS),
        "city": rng.choice(CITIES),
        "order": f"A{rng.randrange(10**6):06d}",
        "order2": f"A{rng.randrange(10**6):06d}",
        "product": rng.choice(PRODUCTS),
        "product2": rng.choice(PRODUCTS),
        "status": rng.choice(STATUSES),
        "card": rng.choice(CARDS),
        "digits": f"{rng.randrange(10**4):04d}",
        "tier": rng.choice(TIERS),
        "year": rng.randint(2012, 2024),
        "wyear": rng.randint(2025, 2028),
        "allergen": rng.choice(ALLERGENS),
        "channel": rng.choice(CHANNELS),
        "month": rng.choice(MONTHS),
        "dom": rng.randint(1, 28),
        "points": rng.randrange(50, 5000),
        "agent": rng.choice(AGENTS),
        "mood": rng.choice(MOODS),
        "amount": rng.randrange(5, 300),
        "pct": rng.choice((5, 10, 15, 20)),
    }
    ctx["issue"] = rng.choice(ISSUES).format(**ctx)
    return ctx


def caller(i: int) -> Caller:
    """Caller ``i``: the same data on every run and for every subject."""
    rng = random.Random(SEED * 1_000_003 + i)
    ctx = _context(rng)
    others = [k for k in FACTS if k not in FIXED_FACTS]
    keys = list(FIXED_FACTS) + rng.sample(others, N_FACTS - len(FIXED_FACTS))
    facts = {k: FACTS[k].format(**ctx) for k in keys}
    calls = []
    for n in range(N_CALLS):
        role, lines = ("caller", CALLER_LINES) if n % 2 == 0 else ("agent", AGENT_LINES)
        calls.append({"role": role, "text": rng.choice(lines).format(**ctx)})
    return Caller(ns_name(i), facts, calls, ctx)


def write_value(rng: random.Random) -> str:
    """A ~100-byte fact, as written by the timed ``set``."""
    ctx = _context(rng)
    text = (
        f"{ctx['issue']}; prefers {ctx['channel']} on {ctx['day']} after {ctx['hour']} pm; "
        f"{ctx['tier']} member since {ctx['year']}; agent {ctx['agent']}"
    )
    return _fit(text, 100)


def write_entry(rng: random.Random) -> dict[str, str]:
    """A ~100-byte log entry (JSON), as written by the timed ``append``."""
    ctx = _context(rng)
    text = rng.choice(CALLER_LINES).format(**ctx) + " " + rng.choice(AGENT_LINES).format(**ctx)
    return {"role": "caller", "text": _fit(text, 70)}


def _fit(text: str, n: int) -> str:
    text = (text + " " + text) if len(text) < n else text
    return text[:n].rstrip()


def query_for(kind: str, c: Caller, rng: random.Random) -> str:
    if kind == "1 word, common":
        return rng.choice(COMMON_WORDS)
    if kind == "1 word, rare":
        return str(c.ctx["surname"]).lower()
    if kind == "1 word, another form":
        return rng.choice(VARIANT_WORDS)
    return f"{c.ctx['product']} {c.ctx['city']} refund {rng.choice(DAYS)}"


# --------------------------------------------------------------------------------------------
# Search without search: read everything, rank by word overlap (peer "scan + rank")
# --------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")


def overlap_rank(query: str, items: list[tuple[str, Any]], entries: list[Any], limit: int) -> list:
    words = set(_WORD.findall(query.lower()))
    scored: list[tuple[int, int, Any]] = []
    for n, (key, value) in enumerate(items):
        score = len(words.intersection(_WORD.findall(f"{key} {dumps(value)}".lower())))
        if score:
            scored.append((score, n, key))
    for e in entries:
        score = len(words.intersection(_WORD.findall(dumps(e.value).lower())))
        if score:
            scored.append((score, len(items) + e.seq, e))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [t[2] for t in scored[:limit]]


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


@dataclass
class Stat:
    p50: float  # microseconds
    p99: float
    max: float
    mean: float
    n: int


@dataclass
class Cell:
    reps: list[Stat] = field(default_factory=list)
    error: str | None = None

    def median(self) -> Stat | None:
        if not self.reps:
            return None
        return Stat(
            p50=statistics.median(s.p50 for s in self.reps),
            p99=statistics.median(s.p99 for s in self.reps),
            max=statistics.median(s.max for s in self.reps),
            mean=statistics.median(s.mean for s in self.reps),
            n=sum(s.n for s in self.reps),
        )


def summarize(lat: list[int]) -> Stat:
    lat = sorted(lat)
    return Stat(
        p50=pct(lat, 0.50),
        p99=pct(lat, 0.99),
        max=lat[-1] / 1000.0,
        mean=sum(lat) / len(lat) / 1000,
        n=len(lat),
    )


# --------------------------------------------------------------------------------------------
# Subjects
# --------------------------------------------------------------------------------------------


class Botwire:
    """botwire at one URL: Memory and Log handles per caller, made before any timing."""

    def __init__(self, url: str) -> None:
        from botwire import Memory

        self.url = url
        self._memory = Memory
        self.anchor = Memory("bench-anchor", url=url)  # keeps the shared engine open
        self.mems: dict[str, Any] = {}
        self.logs: dict[str, Any] = {}

    def prepare(self, ns: str) -> None:
        if ns not in self.mems:
            m = self.mems[ns] = self._memory(ns, url=self.url)
            self.logs[ns] = m.log("calls")

    # timed calls
    def search(self, ns: str, query: str) -> Any:
        return self.mems[ns].search(query, limit=LIMIT)

    def scan_rank(self, ns: str, query: str) -> Any:
        m = self.mems[ns]
        return overlap_rank(query, list(m.items()), m.log("calls").read(), LIMIT)

    def set(self, ns: str, key: str, value: Any) -> Any:
        return self.mems[ns].set(key, value)

    def append(self, ns: str, entry: Any) -> Any:
        return self.logs[ns].append(entry)

    def close(self) -> None:
        for m in self.mems.values():
            m.close()
        self.mems.clear()
        self.logs.clear()
        self.anchor.close()


class RawSQLite:
    """The stdlib sqlite3 module on the botwire file, with the engine's read pragmas."""

    def __init__(self, path: str) -> None:
        from botwire import _search
        from botwire.engines import sql

        self._sql = sql
        self._terms = _search.terms
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        for pragma in (
            "PRAGMA mmap_size=268435456",
            "PRAGMA cache_size=-16000",
            "PRAGMA temp_store=MEMORY",
        ):
            self.conn.execute(pragma)
        # botwire ranks a small namespace directly (absent before that existed)
        self._direct = getattr(sql, "sqlite_search_direct", None)
        if self._direct is not None:
            self.conn.execute(sql.SQLITE_SCRATCH)

    def same_sql(self, ns: str, query: str) -> list[Any]:
        """The statements botwire runs: a small namespace ranked directly, else the index."""
        terms, now = self._terms(query), time.time()
        if self._direct is not None:
            self.conn.execute("BEGIN")
            try:
                rows = self._sql.drive(self._direct(ns, terms, LIMIT, now), self._run)
            finally:
                self.conn.execute("ROLLBACK")
            if rows is not None:
                return rows
        return self._run(self._sql.sqlite_search(ns, terms, LIMIT, now))

    def index_sql(self, ns: str, query: str) -> list[Any]:
        """The statement botwire runs through the FTS5 indexes (a large namespace)."""
        return self._run(self._sql.sqlite_search(ns, self._terms(query), LIMIT, time.time()))

    def _run(self, stmt: Any) -> Any:
        if stmt.many:
            return self.conn.executemany(stmt.sql, stmt.params).rowcount
        cur = self.conn.execute(stmt.sql, stmt.params)
        return cur.rowcount if cur.description is None else cur.fetchall()

    def pending(self, ns: str) -> bool:
        """Whether the search index lacks any of ``ns``'s keys or entries."""
        return bool(self._sql.drive(self._sql.sqlite_pending(ns), self._run))

    def index_namespace(self, ns: str, slice_rows: int = 64) -> int:
        """Index what ``ns`` lacks with the engine's statements, one write transaction per
        slice (as the engine does); returns the rows indexed."""
        total = 0
        while True:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                done = self._sql.drive(self._sql.sqlite_index_namespace(ns, slice_rows), self._run)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            total += done
            if done < slice_rows:
                return total

    def close(self) -> None:
        self.conn.close()


# botwire 0.3.0's statement, kept as the peer "psycopg: unfenced statement": the planner is free
# to combine the primary key with the GIN index (a word's posting list across all namespaces).
UNFENCED_PG_SEARCH = (
    "WITH q AS (SELECT to_tsquery('english', %s) AS q) "
    "SELECT key, log, seq, value, ts, score FROM ("
    "SELECT k.key AS key, NULL::text AS log, NULL::bigint AS seq, k.value AS value, "
    "k.updated_at AS ts, ts_rank(k.tsv, q.q) AS score FROM botwire_kv k, q "
    "WHERE k.ns = %s AND k.tsv @@ q.q AND (k.expires_at IS NULL OR k.expires_at > %s) "
    "UNION ALL "
    "SELECT NULL, l.name, e.seq, e.value, e.ts, ts_rank(e.tsv, q.q) "
    "FROM botwire_logs l JOIN botwire_entries e ON e.log_id = l.id, q "
    "WHERE l.ns = %s AND e.tsv @@ q.q"
    ") h ORDER BY score DESC, ts DESC LIMIT %s"
)


class RawPostgres:
    """psycopg on the botwire schema: the statement botwire runs, not prepared (as botwire)."""

    def __init__(self, url: str) -> None:
        import psycopg

        from botwire import _search
        from botwire.engines import sql

        self._terms = _search.terms
        self._statement = sql.postgres_search
        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=5)

    def same_sql(self, ns: str, query: str) -> list[Any]:
        stmt = self._statement(ns, self._terms(query), LIMIT, time.time())
        text = stmt.sql.replace("%", "%%").replace("?", "%s")
        return self.conn.execute(text, stmt.params, prepare=False).fetchall()

    def unfenced_sql(self, ns: str, query: str) -> list[Any]:
        params = (" | ".join(self._terms(query)), ns, time.time(), ns, LIMIT)
        return self.conn.execute(UNFENCED_PG_SEARCH, params, prepare=False).fetchall()

    def close(self) -> None:
        self.conn.close()


class Diskcache:
    """diskcache.Cache (default settings) holding the JSON text of the same data."""

    def __init__(self, directory: str) -> None:
        import diskcache

        self.c = diskcache.Cache(directory)

    def load(self, n: int) -> None:
        c = self.c
        for start in range(0, n, 100):
            with c.transact():
                for i in range(start, min(start + 100, n)):
                    cl = caller(i)
                    for k, v in cl.facts.items():
                        c.set(f"{cl.ns}/{k}", dumps(v))
                    for e in cl.calls:
                        c.push(dumps(e), prefix=f"{cl.ns}/calls")

    def set(self, ns: str, key: str, value: Any) -> Any:
        return self.c.set(f"{ns}/{key}", dumps(value))

    def append(self, ns: str, entry: Any) -> Any:
        return self.c.push(dumps(entry), prefix=f"{ns}/calls")

    def close(self) -> None:
        self.c.close()


# --------------------------------------------------------------------------------------------
# Loading and the unindexed copies
# --------------------------------------------------------------------------------------------


async def _load(url: str, n: int, concurrency: int) -> None:
    from botwire import AsyncMemory

    anchor = AsyncMemory("bench-anchor", url=url)  # one engine for the whole load
    await anchor.exists("x")  # opens it (and its pool) before the workers start

    async def worker(ids: range) -> None:
        for i in ids:
            c = caller(i)
            m = AsyncMemory(c.ns, url=url)
            await m.set_many(c.facts)
            await m.log("calls").extend(c.calls)
            await m.aclose()

    try:
        await asyncio.gather(*(worker(range(k, n, concurrency)) for k in range(concurrency)))
    finally:
        await anchor.aclose()  # the last holder: closes the engine and its async pool


def load(url: str, n: int, concurrency: int) -> float:
    t0 = time.perf_counter()
    asyncio.run(_load(url, n, concurrency))
    return time.perf_counter() - t0


def triggers(path: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as c:
        rows = c.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
        return [r[0] for r in rows]


def sqlite_unindexed_copy(src: str, dst: str) -> list[str]:
    """Copy ``src`` to ``dst`` (backup API) and drop every trigger of the copy (botwire's
    triggers all serve the search index: which text it holds, what to forget). Returns their
    names."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    with contextlib.closing(a), contextlib.closing(b):
        a.backup(b)
        version = b.execute("PRAGMA user_version").fetchone()[0]
        if version < 3:
            raise RuntimeError(f"{src} is at schema version {version}; search needs 3")
        names = [r[0] for r in b.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
        if not names:
            raise RuntimeError(f"{src} has no triggers: is this a botwire file with search?")
        for name in names:
            b.execute(f'DROP TRIGGER "{name}"')
        b.commit()
    if triggers(dst):
        raise RuntimeError("triggers still present on the unindexed copy")
    return sorted(names)


def settle_sqlite_index(path: str, n_callers: int) -> int:
    """Index the namespaces that searches go through the FTS5 index for (the large ones, and
    the small size namespaces for the index-statement peer), with the engine's statements on
    a separate connection, and check that nothing of theirs is left out, and that no caller is
    indexed (small namespaces are ranked directly). Returns the rows indexed."""
    raw = RawSQLite(path)
    try:
        nss = [size_ns(n) for n in SIZES] + [WRITES_NS]
        done = sum(raw.index_namespace(ns) for ns in nss)
        left = [ns for ns in nss if raw.pending(ns)]
        if left:
            raise RuntimeError(f"the search index still lacks rows of {left}")
        callers = [ns_name(i) for i in range(0, n_callers, max(1, n_callers // 50))]
        indexed = raw.conn.execute(
            "SELECT count(*) FROM botwire_kv WHERE doc IS NOT NULL AND ns IN "
            f"({','.join('?' * len(callers))})",
            callers,
        ).fetchone()[0]
        if indexed:
            raise RuntimeError(f"{indexed} keys of callers' namespaces are indexed")
    finally:
        raw.close()
    return done


# Namespaces of these many keys and log entries (two thirds keys), for "search by size".
SIZES = (100, 300, 1000, 3000)
SIZE_KINDS = {"1 word, common": "order", "4 words": "kettle Leeds refund Friday"}


def size_ns(n: int) -> str:
    return f"bench-size-{n}"


def size_row(n: int, kind: str) -> str:
    return f"{n:,} docs, {kind}"


def load_sizes(url: str) -> None:
    """The namespaces of ``SIZES``: ~100-byte facts and entries, as the timed writes."""
    from botwire import Memory

    for n in SIZES:
        rng = random.Random(SEED + n)
        facts = {f"fact{i}": write_value(rng) for i in range(n * 2 // 3)}
        with Memory(size_ns(n), url=url) as m:
            m.set_many(facts)
            m.log("calls").extend([write_entry(rng) for _ in range(n - len(facts))])


def write_keys(a: argparse.Namespace) -> int:
    """Keys of ``WRITES_NS``: fresh ones for every timed and warm-up "first overwrite", as
    many for "overwritten before"."""
    return 2 * (max(a.ops, a.min_calls) + a.warm)


def load_namespace(url: str, ns: str, keys: int, entries: int, seed: int) -> None:
    """``keys`` facts ``fact0``... and ``entries`` log entries, as the timed writes."""
    from botwire import Memory

    rng = random.Random(seed)
    with Memory(ns, url=url) as m:
        m.set_many({f"fact{i}": write_value(rng) for i in range(keys)})
        m.log("calls").extend([write_entry(rng) for _ in range(entries)])


def sqlite_space(path: str) -> tuple[int, int] | None:
    """(bytes of the search index, bytes of the file), if SQLite has the dbstat table."""
    try:
        with contextlib.closing(sqlite3.connect(path)) as c:
            rows = c.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    except sqlite3.Error:
        return None
    index = sum(size for name, size in rows if "_fts" in name or name == "botwire_kv_doc")
    return index, sum(size for _, size in rows)


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


PG_TABLES = ("botwire_namespaces", "botwire_kv", "botwire_logs", "botwire_entries")


def pg_unindexed_copy(base: str, src: str, dst: str) -> None:
    """Make ``dst`` a copy of ``src``'s rows without the generated ``tsv`` columns."""
    import psycopg

    from botwire import Memory

    with Memory("bench-anchor", url=schema_url(base, dst)) as m:
        m.exists("x")  # the engine migrates on first use; closing it closes the engine
    with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
        with conn.transaction():
            conn.execute(f'ALTER TABLE "{dst}".botwire_kv DROP COLUMN tsv')
            conn.execute(f'ALTER TABLE "{dst}".botwire_entries DROP COLUMN tsv')
            for table in PG_TABLES:
                cols = [
                    r[0]
                    for r in conn.execute(
                        "SELECT column_name FROM information_schema.columns WHERE "
                        "table_schema = %s AND table_name = %s AND is_generated = 'NEVER' "
                        "ORDER BY ordinal_position",
                        (dst, table),
                    ).fetchall()
                ]
                names = ", ".join(f'"{c}"' for c in cols)
                conn.execute(
                    f'INSERT INTO "{dst}".{table} ({names}) SELECT {names} FROM "{src}".{table}'
                )
            conn.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                f'(SELECT coalesce(max(id), 1) FROM "{dst}".botwire_logs))',
                (f'"{dst}".botwire_logs',),
            )
        for schema in (src, dst):
            for table in PG_TABLES:
                conn.execute(f'VACUUM ANALYZE "{schema}".{table}')


def pg_space(base: str, schema: str) -> int:
    import psycopg

    with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
        return int(
            conn.execute(
                "SELECT sum(pg_total_relation_size(format('%%I.%%I', %s::text, t)::regclass)) "
                "FROM unnest(%s::text[]) AS t",
                (schema, list(PG_TABLES)),
            ).fetchone()[0]
        )


def postgres_reachable(url: str) -> str | None:
    """None when usable, else the reason to skip."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg not installed ({exc}); pip install 'botwire[postgres]'"
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001
        return f"{url} unreachable: {type(exc).__name__}: {_short(str(exc))}"
    return None


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One row: the same arguments for every subject, drawn call by call from one RNG."""

    label: str
    make_args: Callable[[random.Random, int], list[tuple]]
    fns: dict[str, Callable[..., Any]]  # subject -> timed callable
    # warm-up calls drawn apart from the timed ones (a call that changes what the next finds)
    warm_args: Callable[[random.Random, int], list[tuple]] | None = None
    rewarm: bool = True  # an untimed call before each slice (False: each call must be the first)


class Runner:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.results: dict[str, dict[str, dict[str, Cell]]] = {}  # section, row, subject
        self.prepare: list[Callable[[list[tuple]], None]] = []  # handles made before timing

    def _warm(self, fn: Callable[..., Any], args: list[tuple]) -> float:
        """Warm-up calls (at most ``--warm`` calls or ~0.3 s); returns their median, seconds."""
        lat: list[int] = []
        end = time.perf_counter() + 0.3
        for a in args:
            t0 = time.perf_counter_ns()
            fn(*a)
            lat.append(time.perf_counter_ns() - t0)
            if len(lat) >= 3 and time.perf_counter() > end:
                break
        return statistics.median(lat) / 1e9

    def run(
        self,
        section: str,
        rows: list[Row],
        subjects: list[str],
        budget: float | None = None,
        min_calls: int | None = None,
        before_rep: Callable[[], None] | None = None,
    ) -> None:
        a = self.a
        budget = a.budget if budget is None else budget
        min_calls = a.min_calls if min_calls is None else min_calls
        table = self.results.setdefault(section, {})
        for rep in range(a.reps):
            if before_rep is not None:
                before_rep()
            shift = rep % len(subjects)
            order = subjects[shift:] + subjects[:shift]
            plans: list[tuple[Row, str, Cell, Callable[..., Any], list[list[tuple]], bool]] = []
            lats: list[list[int]] = []
            for row in rows:
                cells = table.setdefault(row.label, {})
                seed = zlib.crc32(f"{SEED}/{section}/{row.label}/{rep}".encode())
                for s in order:
                    fn = row.fns.get(s)
                    if fn is None:
                        continue
                    cell = cells.setdefault(s, Cell())
                    if cell.error:
                        continue
                    warm = (row.warm_args or row.make_args)(random.Random(seed ^ 0x5A5A), a.warm)
                    self._prepare(warm)
                    try:
                        est = self._warm(fn, warm)
                    except Exception as exc:  # noqa: BLE001 - report it, go on with the rest
                        cell.error = _short(f"{type(exc).__name__}: {exc}")
                        log(f"    {s} / {row.label}: ERROR {cell.error}")
                        continue
                    n = max(min_calls, min(a.ops, int(budget / max(est, 1e-7))))
                    args = row.make_args(random.Random(seed), n)  # a prefix of the same calls
                    self._prepare(args)
                    step = math.ceil(len(args) / a.chunks)
                    slices = [args[i : i + step] for i in range(0, len(args), step)]
                    plans.append((row, s, cell, fn, slices, row.rewarm and est < 1e-3))
                    lats.append([])
            gc.collect()
            for c in range(a.chunks):
                for (row, s, cell, fn, slices, rewarm), lat in zip(plans, lats, strict=True):
                    if cell.error or c >= len(slices):
                        continue
                    try:
                        if rewarm:
                            fn(*slices[c][0])  # untimed: the other subjects just ran
                        lat += time_calls(fn, slices[c])
                    except Exception as exc:  # noqa: BLE001
                        cell.error = _short(f"{type(exc).__name__}: {exc}")
                        log(f"    {s} / {row.label}: ERROR {cell.error}")
            for (row, s, cell, _fn, _slices, _rw), lat in zip(plans, lats, strict=True):
                if cell.error or not lat:
                    continue
                st = summarize(lat)
                cell.reps.append(st)
                log(
                    f"    rep {rep + 1}/{a.reps} {row.label:<30} {s:<28} "
                    f"p50 {fmt_us(st.p50):>9}  p99 {fmt_us(st.p99):>9}  ({st.n} calls)"
                )

    def catchup(
        self,
        section: str,
        subjects: list[str],
        targets: dict[str, CatchupTarget],
        write_fns: dict[str, dict[str, Callable[..., Any]]],
        search_fns: dict[str, Callable[..., Any]],
        plan: tuple[tuple[int, str], ...],
        trials: int,
    ) -> None:
        """The search right after a burst of writes, then the same search again.

        A trial: the target's setup (untimed), ``k`` writes (untimed; the same for every
        subject), one timed search, the same search timed again and, for a target that
        settles, once more after the index holds its namespace again. Subjects alternate within
        each trial. ``plan``: (k, target) pairs; the first gets ``trials`` trials, the others a
        third."""
        table = self.results.setdefault(section, {})
        for rep in range(self.a.reps):
            shift = rep % len(subjects)
            order = subjects[shift:] + subjects[:shift]
            for k, name in plan:
                target = targets[name]
                labels = catchup_rows(k, name, target.settle is not None)
                n_trials = trials if (k, name) == plan[0] else max(2, trials // 3)
                lats: dict[tuple[str, str], list[int]] = {}
                seed = zlib.crc32(f"{SEED}/{section}/{k}/{name}/{rep}".encode())
                rng = random.Random(seed)
                for trial in range(n_trials):
                    ns = target.setup(f"{k}-{rep}-{trial}") if target.setup else None
                    burst, q = target.writes(rng, k, ns), target.query(rng, ns)
                    self._prepare([args for _, args in burst] + [q])
                    for s in order:
                        fns = write_fns[s]
                        for kind, args in burst:
                            fns[kind](*args)
                        search = search_fns[s]
                        for n, label in enumerate(labels):
                            if n == 2 and target.settle:
                                target.settle(s, q[0])
                            t0 = time.perf_counter_ns()
                            search(*q)
                            lats.setdefault((label, s), []).append(time.perf_counter_ns() - t0)
                            if n == 0 and target.after_first:
                                target.after_first(s, q[0], k)
                for (label, s), lat in lats.items():
                    st = summarize(lat)
                    table.setdefault(label, {}).setdefault(s, Cell()).reps.append(st)
                    log(
                        f"    rep {rep + 1}/{self.a.reps} {label:<56} {s:<26} "
                        f"p50 {fmt_us(st.p50):>9}  p99 {fmt_us(st.p99):>9}  ({st.n} calls)"
                    )

    def _prepare(self, args: list[tuple]) -> None:
        for p in self.prepare:
            p(args)

    def stat(self, section: str, row: str, subject: str) -> Stat | None:
        cell = self.results.get(section, {}).get(row, {}).get(subject)
        return cell.median() if cell else None


# --------------------------------------------------------------------------------------------
# Sanity checks: the subjects do what the report says they do
# --------------------------------------------------------------------------------------------


def catchup_rows(k: int, target: str, settles: bool) -> tuple[str, ...]:
    rows = (f"{target}: first search after {k} writes", f"{target}: the same search again ({k})")
    return (*rows, f"{target}: the same, index settled ({k})") if settles else rows


def _hit_ids(rows: list[Any]) -> set[tuple[Any, Any, Any]]:
    return {(r[0], r[1], r[2]) for r in rows}


def check_search(
    bw: Botwire, raw: RawSQLite | RawPostgres, sample: list[int], stats: dict[str, list[int]]
) -> None:
    rng = random.Random(SEED)
    for i in sample:
        c = caller(i)
        bw.prepare(c.ns)
        for kind in QUERY_KINDS:
            q = query_for(kind, c, rng)
            hits = bw.search(c.ns, q)
            ours = {(h.key, h.log, h.seq) for h in hits}
            theirs = _hit_ids(raw.same_sql(c.ns, q))
            if ours != theirs:
                raise AssertionError(f"search {q!r} in {c.ns}: botwire {ours} != raw {theirs}")
            if not hits:
                raise AssertionError(f"search {q!r} in {c.ns} found nothing")
            if kind == "1 word, rare" and "name" not in {h.key for h in hits}:
                raise AssertionError(f"rare word {q!r} did not find the fact 'name'")
            stats.setdefault(kind, []).append(len(hits))
            if not bw.scan_rank(c.ns, q):
                raise AssertionError(f"scan + rank for {q!r} in {c.ns} found nothing")


def check_sizes(bw: Botwire, raw: RawSQLite | RawPostgres) -> None:
    for n in SIZES:
        ns = size_ns(n)
        bw.prepare(ns)
        for q in SIZE_KINDS.values():
            ours = {(h.key, h.log, h.seq) for h in bw.search(ns, q)}
            if not ours or ours != _hit_ids(raw.same_sql(ns, q)):
                raise AssertionError(f"search {q!r} in {ns}: botwire {ours} != raw")


def check_unindexed_sqlite(st: Setup) -> list[str]:
    """What the two files do for the index on a write. In a small namespace: nothing on
    either (the key stays without a doc, the entry above the log's ``indexed_seq``, no queue
    row). In the indexed large namespace: the indexed file stashes the overwritten key's text
    (``stale``), the control copy does not. Then the check namespace goes (queueing nothing:
    none of it was indexed). Returns lines for the report."""
    import botwire

    assert st.bw and st.bw_no and st.raw and st.raw_no
    out = []
    for bw, raw, stash in ((st.bw, st.raw, True), (st.bw_no, st.raw_no, False)):
        c, ns, path = raw.conn, "bench-check", bw.url[len("sqlite:///") :]
        names = triggers(path)
        if bool(names) != stash:
            raise AssertionError(f"{path}: triggers {names}")
        queued = "SELECT count(*) FROM botwire_fts_queue"
        before = c.execute(queued).fetchone()[0]
        bw.prepare(ns)
        bw.set(ns, "note", f"check zq{uuid.uuid4().hex[:8]}")
        bw.set(ns, "note", f"check zq{uuid.uuid4().hex[:8]}")  # an overwrite
        bw.append(ns, {"role": "caller", "text": "check"})
        doc = c.execute("SELECT doc, stale FROM botwire_kv WHERE ns = ? AND key = 'note'", (ns,))
        if doc.fetchone() != (None, None):
            raise AssertionError(f"{path}: a small namespace's key was indexed")
        seqs = c.execute(
            "SELECT indexed_seq, last_seq FROM botwire_logs WHERE ns = ? AND name = 'calls'", (ns,)
        ).fetchone()
        if seqs != (0, 1):
            raise AssertionError(f"{path}: the small namespace's log has (indexed, last) {seqs}")
        bw.mems.pop(ns).close()
        bw.logs.pop(ns)
        botwire.forget(ns, url=bw.url)
        grew = c.execute(queued).fetchone()[0] - before
        if grew:
            raise AssertionError(f"{path}: writes in a small namespace queued {grew} rows")
        bw.prepare(WRITES_NS)
        key = f"fact{write_keys_total(c) - 1}"
        row = "SELECT doc IS NOT NULL, stale IS NOT NULL FROM botwire_kv WHERE ns = ? AND key = ?"
        if c.execute(row, (WRITES_NS, key)).fetchone() != (1, 0):
            raise AssertionError(f"{path}: {WRITES_NS}/{key} is not indexed and current")
        bw.set(WRITES_NS, key, write_value(random.Random(3)))
        got = c.execute(row, (WRITES_NS, key)).fetchone()
        if got != (1, int(stash)):
            raise AssertionError(f"{path}: overwrite of an indexed key left (doc, stale) {got}")
    st.raw.index_namespace(WRITES_NS)
    out.append(
        "Checked before timing: a `set`, an overwrite and an `append` in a small namespace "
        "leave its key without a doc, its log's `indexed_seq` at 0 and the queue as it was, on "
        "both files; forgetting that namespace queues nothing; an overwrite of an indexed key "
        f"of `{WRITES_NS}` stashes its text (`stale`) on the indexed file only."
    )
    return out


def write_keys_total(c: sqlite3.Connection) -> int:
    return int(
        c.execute("SELECT count(*) FROM botwire_kv WHERE ns = ?", (WRITES_NS,)).fetchone()[0]
    )


def check_unindexed_pg(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
        n = conn.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = %s "
            "AND column_name = 'tsv'",
            (schema,),
        ).fetchone()[0]
    if n:
        raise AssertionError(f"schema {schema} still has {n} tsv columns")


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt_time(x: float) -> str:
    return fmt_us(x) if x >= 1000 else f"{fmt_us(x)} µs"


def fmt_bytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _ratio(a: Stat | None, b: Stat | None, attr: str = "p50") -> str:
    if a is None or b is None:
        return "n/a"
    return fmt_ratio(getattr(a, attr) / getattr(b, attr))


def latency_table(
    runner: Runner, section: str, rows: list[str], subjects: list[str], w: Callable[[str], None]
) -> None:
    w("| op | " + " | ".join(f"{s} p50 | {s} p99" for s in subjects) + " |")
    w("|---|" + "---:|" * (2 * len(subjects)))
    for row in rows:
        line = f"| {row} |"
        for s in subjects:
            st = runner.stat(section, row, s)
            cell = runner.results.get(section, {}).get(row, {}).get(s)
            if st:
                line += f" {fmt_us(st.p50)} | {fmt_us(st.p99)} |"
            elif cell and cell.error:
                line += f" error: {_short(cell.error, 60)} | |"
            else:
                line += " n/a | n/a |"
        w(line)
    w("")


def ratio_table(
    runner: Runner,
    section: str,
    rows: list[str],
    pairs: list[tuple[str, str, str, str]],  # header, numerator, denominator, stat
    w: Callable[[str], None],
) -> None:
    w("| op | " + " | ".join(p[0] for p in pairs) + " |")
    w("|---|" + "---:|" * len(pairs))
    for row in rows:
        cells = [
            _ratio(runner.stat(section, row, num), runner.stat(section, row, den), attr)
            for _, num, den, attr in pairs
        ]
        w(f"| {row} | " + " | ".join(cells) + " |")
    w("")


def calls_note(runner: Runner, section: str) -> str:
    counts = [
        cell.median().n // max(1, len(cell.reps))  # type: ignore[union-attr]
        for row in runner.results.get(section, {}).values()
        for cell in row.values()
        if cell.reps
    ]
    if not counts:
        return ""
    return f"{min(counts):,} to {max(counts):,} timed calls per measurement and repetition"


def render(runner: Runner, meta: dict[str, Any]) -> str:
    out: list[str] = []
    w = out.append
    d = meta["data"]
    w("# botwire search benchmark results\n")
    w(f"Command: `{meta['command']}`  ")
    w(f"Date: {meta['date']}; total run time {meta['elapsed']:.0f} s  ")
    w(f"Machine: {meta['machine']}  ")
    w(f"Versions: {meta['versions']}\n")
    for name, why in meta["skipped"].items():
        w(f"- **{name} skipped:** {why}")
    if meta["interrupted"]:
        w("- **Interrupted:** the tables hold what was measured before the interruption.")
    if meta["skipped"] or meta["interrupted"]:
        w("")
    w("## Data\n")
    w(
        f"- {human(d['callers'])} callers (namespaces), each with {N_FACTS} facts and a `calls` "
        f"log of {N_CALLS} entries: {human(d['callers'] * N_FACTS)} keys and "
        f"{human(d['callers'] * N_CALLS)} log entries in all."
    )
    for line in d["loads"]:
        w(f"- {line}")
    for line in d["space"]:
        w(f"- {line}")
    for line in d["words"]:
        w(f"- {line}")
    for line in d.get("checks", []):
        w(f"- {line}")
    w(
        f"- Timed writes: values of {d['value_bytes']:.0f} bytes of JSON on average, entries of "
        f"{d['entry_bytes']:.0f} bytes."
    )
    w(
        f"- Per measurement: {meta['plan']}; median of {meta['reps']} repetitions. "
        "Latencies in µs unless marked ms.\n"
    )

    render_writes(runner, meta, w)
    render_catchup(runner, meta, w)
    render_search(
        runner,
        "search",
        "## Search latency: `Memory.search(query, limit=10)`, freshly loaded index",
        "",
        w,
    )
    render_search(
        runner,
        "sizes",
        "## Search latency by namespace size",
        f"One namespace each of {', '.join(f'{n:,}' for n in SIZES)} keys and log entries "
        "(two thirds keys; values and entries as the timed writes), query "
        + ", ".join(f"`{q}`" for q in SIZE_KINDS.values())
        + f". botwire-sqlite ranks a namespace of at most {direct_max()} directly and searches "
        "larger ones through the FTS5 index (the smaller ones were indexed at setup for the "
        "index-statement peer).",
        w,
        SIZE_TABLES,
        [size_row(n, kind) for n in SIZES for kind in SIZE_KINDS],
    )
    render_search(
        runner,
        "search-after",
        "## Search latency after the writes above",
        "The same measurement, after the write and catch-up sections: "
        + "; ".join(d.get("after", []))
        + ". Callers' namespaces are still ranked directly (never indexed).",
        w,
    )
    render_variants(runner, d, w)
    if meta.get("baseline"):
        render_baseline(runner, meta["baseline"], w)
    return "\n".join(out)


def render_writes(runner: Runner, meta: dict[str, Any], w: Callable[[str], None]) -> None:
    res = runner.results
    if not res.get("writes") and not res.get("writes-large"):
        return
    w("## Write cost of the search index\n")
    note = calls_note(runner, "writes") or calls_note(runner, "writes-large")
    if note:
        w(
            f"{note}. max: the slowest call; mean: average latency (1 / throughput of one "
            "caller). Both show the rare long waits that p99 does not.\n"
        )
    if res.get("writes"):
        w("### (a) Callers' namespaces (small: ranked directly, never indexed)\n")
        w(f"Rows: `{WRITE_ROWS[0]}` as set, `{WRITE_ROWS[1]}` as append, to random callers.\n")
        write_table(runner, "writes", [("set", WRITE_ROWS[0]), ("append", WRITE_ROWS[1])], w)
    if res.get("writes-large"):
        w("### (b) A large namespace the index holds (SQLite)\n")
        w(meta["data"].get("large_writes", "") + "\n")
        large_write_table(runner, w)


def large_write_table(runner: Runner, w: Callable[[str], None]) -> None:
    idx, ctl = "botwire-sqlite", "botwire-sqlite (no index)"
    stats = ("p50", "p99", "max", "mean")
    w(
        "| op | "
        + " | ".join(f"{s} {x}" for s in (idx, "no index") for x in stats)
        + " | "
        + " | ".join(f"ratio {x}" for x in stats)
        + " |"
    )
    w("|---|" + "---:|" * (3 * len(stats)))
    for row in LARGE_ROWS:
        a, b = runner.stat("writes-large", row, idx), runner.stat("writes-large", row, ctl)
        cells = [fmt_us(getattr(st, x)) if st else "n/a" for st in (a, b) for x in stats]
        cells += [_ratio(a, b, x) for x in stats]
        w(f"| {row} | " + " | ".join(cells) + " |")
    w("\nratio: botwire-sqlite / no index (below 1 = the indexed file is faster).\n")


def write_table(
    runner: Runner,
    section: str,
    ops: list[tuple[str, str]],
    w: Callable[[str], None],
    stats: tuple[str, ...] = ("p50", "p99", "max", "mean"),
) -> None:
    res = runner.results.get(section, {})
    subjects = [s for s in WRITE_SUBJECTS if any(s in r for r in res.values())]
    head = " | ".join(f"{o} {x}" for o, _ in ops for x in stats)
    w(f"| subject | {head} |")
    w("|---|" + "---:|" * (len(ops) * len(stats)))
    for subj in subjects:
        cells = []
        for _, row in ops:
            stat = runner.stat(section, row, subj)
            cells += [fmt_us(getattr(stat, x)) if stat else "n/a" for x in stats]
        w(f"| {subj} | " + " | ".join(cells) + " |")
    w("")
    w("Ratios of latencies (below 1 = the first one is faster):\n")
    w(f"| ratio | {head} |")
    w("|---|" + "---:|" * (len(ops) * len(stats)))
    for engine in ("botwire-sqlite", "botwire-postgres"):
        if engine not in subjects:
            continue
        for other, label in ((f"{engine} (no index)", "no index"), ("diskcache", "diskcache")):
            if other not in subjects:
                continue
            cells = [
                _ratio(runner.stat(section, row, engine), runner.stat(section, row, other), x)
                for _, row in ops
                for x in stats
            ]
            w(f"| {engine} / {label} | " + " | ".join(cells) + " |")
    w("")


def variant_rows() -> list[str]:
    return [*VARIANT_KINDS, *(size_row(n, "1 word, common") for n in VARIANT_SIZES)]


def render_variants(runner: Runner, d: dict[str, Any], w: Callable[[str], None]) -> None:
    render_search(
        runner,
        "variants",
        "## Word variants: search with variants against exact words only",
        "`Memory.search` as it is (each word also matches its root as a prefix, `allergies` -> "
        "`allerg*`) and the same search with exact words only (`botwire._search.root` off for "
        "the call: the statements of botwire before variants), interleaved in one run. Rows: "
        "the query kinds above in callers' namespaces, `1 word, another form` (one of "
        + ", ".join(f"`{v}`" for v in VARIANT_WORDS)
        + ", stored as `allergic`, `shipped`, `refund`), and `order` in the "
        + " and ".join(f"{n:,}" for n in VARIANT_SIZES)
        + "-document namespaces (SQLite: through the FTS5 index). "
        + " ".join(d.get("variant_hits", [])),
        w,
        VARIANT_TABLES,
        variant_rows(),
        "Ratios above 1 = searching for variants costs more than exact words only.",
    )


def render_search(
    runner: Runner,
    section: str,
    title: str,
    intro: str,
    w: Callable[[str], None],
    tables: list[tuple[str, list[str], list[tuple[str, str, str, str]]]] | None = None,
    rows: list[str] | None = None,
    ratio_note: str | None = None,
) -> None:
    tables = SEARCH_TABLES if tables is None else tables
    rows = list(QUERY_KINDS) if rows is None else rows
    res = runner.results.get(section, {})
    if not res:
        return
    w(f"{title}\n")
    if intro:
        w(f"{intro}\n")
    note = calls_note(runner, section)
    if note:
        w(f"{note}.\n")
    for engine, subs, pairs in tables:
        present = [s for s in subs if any(s in r for r in res.values())]
        if not present:
            continue
        w(f"### {engine}\n")
        latency_table(runner, section, rows, present, w)
        w(
            (
                "Ratios above 1 = botwire's search is faster. scan / search: than reading the "
                "namespace; index statement / search and unfenced / search: than the other way "
                "of running the query (sqlite3: the FTS5 statement botwire uses for large "
                "namespaces; psycopg: the statement of botwire 0.3.0). search / same SQL: "
                "botwire's time over the same statements run with the driver alone, its own "
                "overhead. The SQLite index holds no caller, so callers' searches have no "
                "index-statement peer."
                if ratio_note is None
                else ratio_note
            )
            + "\n"
        )
        ratio_table(runner, section, rows, pairs, w)


def direct_max() -> str:
    from botwire.engines import sql

    most = getattr(sql, "SEARCH_DIRECT_MAX", None)
    return "none (botwire 0.3.0)" if most is None else f"{most:,}"


def render_baseline(runner: Runner, base: dict[str, Any], w: Callable[[str], None]) -> None:
    """Medians of this run against those of an earlier run (``--baseline``)."""
    meta = base.get("meta", {})
    w("## Compared with the baseline run\n")
    w(
        f"Baseline: `{meta.get('command', '?')}` on {meta.get('date', '?')}, "
        f"{meta.get('versions', '?')}. After / before below 1 = this run is faster. The two "
        "runs were made one after the other on the same machine; between runs absolute "
        "numbers move (see the notes), the ratios within a run much less.\n"
    )
    for section, title, stats in BASELINE_SECTIONS:
        mine, theirs = runner.results.get(section, {}), base.get("results", {}).get(section, {})
        pairs = [
            (row, subj)
            for row, cells in mine.items()
            for subj in cells
            if subj in theirs.get(row, {}) and runner.stat(section, row, subj)
        ]
        if not pairs:
            continue
        w(f"### {title}\n")
        head = " | ".join(f"{x} before | {x} after | after / before" for x in stats)
        w(f"| op | subject | {head} |")
        w("|---|---|" + "---:|" * (3 * len(stats)))
        for row, subj in pairs:
            after = runner.stat(section, row, subj)
            cells = []
            for x in stats:
                b, a = theirs[row][subj][x], getattr(after, x)
                cells += [fmt_us(b), fmt_us(a), fmt_ratio(a / b if b else None)]
            w(f"| {row} | {subj} | " + " | ".join(cells) + " |")
        w("")


BASELINE_SECTIONS = (
    ("search", "Search, freshly loaded index", ("p50", "p99")),
    ("sizes", "Search by namespace size", ("p50",)),
    ("writes", "Writes", ("p50", "max", "mean")),
    ("writes-large", "Writes in a large indexed namespace", ("p50", "max", "mean")),
    ("catchup", "The search after a burst of writes", ("p50",)),
    ("search-after", "Search after the writes", ("p50", "p99")),
)


def to_json(runner: Runner, meta: dict[str, Any]) -> dict[str, Any]:
    results = {
        section: {
            row: {s: vars(c.median()) for s, c in cells.items() if c.reps}
            for row, cells in rows.items()
        }
        for section, rows in runner.results.items()
    }
    keep = ("command", "date", "elapsed", "machine", "versions")
    return {"meta": {k: meta[k] for k in keep}, "results": results}


def render_catchup(runner: Runner, meta: dict[str, Any], w: Callable[[str], None]) -> None:
    if not runner.results.get("catchup"):
        return
    idx, ctl = "botwire-sqlite", "botwire-sqlite (no index)"
    d = meta["data"]
    w("### SQLite: the search after a burst of writes\n")
    docs = d.get("catchup_docs")
    w(
        "Writers add nothing for the index. A search of a namespace larger than "
        f"{direct_max()} documents first indexes what that namespace lacks (keys never indexed "
        "or changed since, entries above the log's `indexed_seq`), 64 rows per write "
        "transaction, at most 8 slices inline; a namespace lacking more is ranked directly and "
        "the background indexes it. A trial: a burst of writes (half `set` of existing keys, "
        "half `append`, ~100 bytes each), then a search for a common word (`order`), then the "
        "same search again and, in the large namespace, once more after the index holds the "
        "whole namespace again (polled, untimed). Large namespace: a fresh one per trial of "
        f"{CATCHUP_LARGE:,} keys and entries, indexed and searched once (untimed) before the "
        "burst, all writes go into it"
        + (f" ({docs[0]:,} to {docs[1]:,} documents at the first search)" if docs else "")
        + ". Caller: writes to random callers, search in a caller's namespace (ranked "
        f"directly, nothing to index). {meta['trials']} trials per repetition for the first "
        "row group, a third of that for the others. Control: the copy without triggers, same "
        "writes and searches; its overwrites stash nothing, so its first search indexes only "
        "the appended entries (their `indexed_seq` is in the rows, not in a trigger).\n"
    )
    rows = [
        label
        for k, target in CATCHUP
        for label in catchup_rows(k, target, target == CATCHUP_TARGETS[0])
    ]
    latency_table(runner, "catchup", rows, [idx, ctl], w)
    held = d.get("catchup_held", {})
    for k, target in CATCHUP:
        if target != CATCHUP_TARGETS[0]:
            continue
        first, _again, settled = catchup_rows(k, target, True)
        parts = []
        for s in (idx, ctl):
            f, z = runner.stat("catchup", first, s), runner.stat("catchup", settled, s)
            if f and z:
                extra = f.p50 - z.p50
                h = held.get(f"{s}/{k}")
                inline = (
                    f"; the index held the namespace right after it in {h[1]} of {h[0]} trials"
                    if h
                    else ""
                )
                parts.append(f"{s} {fmt_time(extra)}, {fmt_time(extra / k)} per write{inline}")
        if parts:
            w(
                f"- {target}, {k} writes: first search minus the settled one (p50): "
                + "; ".join(parts)
                + "."
            )
    w("")


WRITE_SUBJECTS = (
    "botwire-sqlite",
    "botwire-sqlite (no index)",
    "diskcache",
    "botwire-postgres",
    "botwire-postgres (no index)",
)
S_SEARCH, S_SCAN, S_SAME, S_INDEX = (
    "botwire-sqlite search",
    "scan + rank (sqlite)",
    "sqlite3: same SQL",
    "sqlite3: index statement",
)
P_SEARCH, P_SCAN, P_SAME, P_UNFENCED = (
    "botwire-postgres search",
    "scan + rank (postgres)",
    "psycopg: same SQL",
    "psycopg: unfenced statement",
)
SEARCH_TABLES: list[tuple[str, list[str], list[tuple[str, str, str, str]]]] = [
    (
        "SQLite",
        [S_SEARCH, S_SCAN, S_SAME],
        [
            ("scan / search p50", S_SCAN, S_SEARCH, "p50"),
            ("search / same SQL p50", S_SEARCH, S_SAME, "p50"),
        ],
    ),
    (
        "PostgreSQL",
        [P_SEARCH, P_SCAN, P_SAME, P_UNFENCED],
        [
            ("scan / search p50", P_SCAN, P_SEARCH, "p50"),
            ("search / same SQL p50", P_SEARCH, P_SAME, "p50"),
            ("unfenced / search p50", P_UNFENCED, P_SEARCH, "p50"),
        ],
    ),
]
S_EXACT, P_EXACT = "botwire-sqlite, exact words", "botwire-postgres, exact words"
VARIANT_TABLES: list[tuple[str, list[str], list[tuple[str, str, str, str]]]] = [
    (
        engine,
        [with_variants, exact],
        [
            ("variants / exact p50", with_variants, exact, "p50"),
            ("variants / exact p99", with_variants, exact, "p99"),
        ],
    )
    for engine, with_variants, exact in (
        ("SQLite", S_SEARCH, S_EXACT),
        ("PostgreSQL", P_SEARCH, P_EXACT),
    )
]
SIZE_TABLES: list[tuple[str, list[str], list[tuple[str, str, str, str]]]] = [
    (
        "SQLite",
        [S_SEARCH, S_INDEX],
        [("index statement / search p50", S_INDEX, S_SEARCH, "p50")],
    ),
    (
        "PostgreSQL",
        [P_SEARCH, P_UNFENCED],
        [("unfenced / search p50", P_UNFENCED, P_SEARCH, "p50")],
    ),
]


def source_digest() -> str:
    """Digest of the imported botwire package (which may be an older checkout's)."""
    import botwire

    return core_source_digest(os.path.dirname(os.path.abspath(botwire.__file__)))


def versions(pg_url: str | None) -> str:
    parts = [f"Python {platform.python_version()}", f"SQLite {sqlite3.sqlite_version}"]
    for mod in ("botwire", "diskcache", "psycopg"):
        with contextlib.suppress(Exception):
            m = __import__(mod)
            ver = f"{mod} {getattr(m, '__version__', '?')}"
            if mod == "botwire":
                ver += f" (src digest {source_digest()})"
            parts.append(ver)
    if pg_url:
        with contextlib.suppress(Exception):
            import psycopg

            with psycopg.connect(pg_url, connect_timeout=3) as conn:
                server = conn.execute("SHOW server_version").fetchone()[0]
            parts.append(f"PostgreSQL server {server}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def word_stats(raw: RawSQLite, n_callers: int) -> list[str]:
    """How common the query words are in the whole database (keys and entries whose text
    contains the word; the search index holds no caller, so it cannot count them)."""
    c = raw.conn
    keys = c.execute("SELECT count(*) FROM botwire_kv").fetchone()[0]
    entries = c.execute("SELECT count(*) FROM botwire_entries").fetchone()[0]
    in_keys = "SELECT count(*) FROM botwire_kv WHERE instr(lower(key || ' ' || value), ?) > 0"
    in_entries = "SELECT count(*) FROM botwire_entries WHERE instr(lower(value), ?) > 0"
    parts = []
    for word in COMMON_WORDS:
        k = c.execute(in_keys, (word,)).fetchone()[0]
        e = c.execute(in_entries, (word,)).fetchone()[0]
        parts.append(f"`{word}` {100 * k / keys:.0f}% of keys, {100 * e / entries:.0f}% of entries")
    rare = []
    for i in range(0, n_callers, max(1, n_callers // 50)):
        word = str(caller(i).ctx["surname"]).lower()
        rare.append(c.execute(in_keys, (word,)).fetchone()[0])
    return [
        "Common words (one per query, at random): " + "; ".join(parts) + " (whole database, "
        "text containing the word).",
        f"Rare word: the caller's surname, in {statistics.mean(rare):.1f} keys of the whole "
        "database on average (its own `name` fact, and other callers' with the same surname).",
        "4 words: `<the caller's product> <the caller's city> refund <a weekday>`, "
        "e.g. `kettle Leeds refund Friday`; any word matches (OR).",
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="1k callers, fewer calls (about a minute)")
    p.add_argument("--callers", help="number of callers (namespaces); default 10k, quick 1k")
    p.add_argument(
        "--postgres-url",
        default=DEFAULT_PG,
        help="PostgreSQL server (default $BOTWIRE_BENCH_POSTGRES_URL or "
        "postgresql://postgres@127.0.0.1:5432/test); the run uses two private schemas",
    )
    p.add_argument("--no-postgres", action="store_true", help="leave out botwire-postgres")
    p.add_argument("--ops", type=int, help="timed calls per measurement (default 2000; quick 400)")
    p.add_argument(
        "--budget",
        type=float,
        help="at most this many seconds of timed calls per measurement (default 3; quick 0.5)",
    )
    p.add_argument("--min-calls", type=int, help="at least this many (default 30; quick 15)")
    p.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    p.add_argument("--warm", type=int, default=50, help="warm-up calls, at most (default 50)")
    p.add_argument(
        "--chunks", type=int, default=10, help="slices in which calls are interleaved (10)"
    )
    p.add_argument(
        "--trials",
        type=int,
        help="bursts of writes per repetition in the catch-up section (default 30; quick 8)",
    )
    p.add_argument(
        "--concurrency", type=int, default=32, help="callers loaded at a time (default 32)"
    )
    p.add_argument("--output", help="also write the markdown report to this file")
    p.add_argument("--json", help="also write the medians as JSON to this file")
    p.add_argument(
        "--baseline", help="JSON of an earlier run (--json): add a before / after section"
    )
    p.add_argument("--tmpdir", help="parent directory for the SQLite and diskcache files")
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    a = p.parse_args(argv)
    a.sections = [x.strip() for x in a.sections.split(",") if x.strip()]
    unknown = sorted(set(a.sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    a.callers = parse_size(a.callers) if a.callers else (1000 if a.quick else 10_000)
    a.ops = a.ops or (400 if a.quick else 2000)
    a.budget = a.budget or (0.5 if a.quick else 3.0)
    a.min_calls = a.min_calls or (15 if a.quick else 30)
    a.trials = a.trials or (8 if a.quick else 30)
    a.chunks = max(1, a.chunks)
    if a.callers < 10:
        p.error("--callers must be at least 10")
    return a


@dataclass
class Setup:
    """What the sections measure: the stores, and facts about the data for the report."""

    tmp: str
    n: int
    data: dict[str, Any] = field(
        default_factory=lambda: {"loads": [], "space": [], "words": [], "checks": []}
    )
    closers: list[Callable[[], None]] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)
    bw: Botwire | None = None
    bw_no: Botwire | None = None
    raw: RawSQLite | None = None
    raw_no: RawSQLite | None = None
    dc: Diskcache | None = None
    pg: Botwire | None = None
    pg_no: Botwire | None = None
    rawpg: RawPostgres | None = None

    def botwires(self) -> list[Botwire]:
        return [b for b in (self.bw, self.bw_no, self.pg, self.pg_no) if b is not None]

    def keep(self, obj: Any) -> Any:
        self.closers.append(obj.close)
        return obj


def setup_sqlite(a: argparse.Namespace, st: Setup) -> None:
    n = st.n
    db, copy = os.path.join(st.tmp, "search.db"), os.path.join(st.tmp, "search-noindex.db")
    url = f"sqlite:///{db}"
    log(f"loading {human(n)} callers into botwire-sqlite")
    dt = load(url, n, a.concurrency)
    load_sizes(url)
    keys = write_keys(a)
    load_namespace(url, WRITES_NS, keys, 200, SEED + 7)
    t0 = time.perf_counter()
    indexed = settle_sqlite_index(db, n)
    st.data["loads"].append(
        f"botwire-sqlite loaded in {dt:.1f} s ({n / dt:,.0f} callers/s; AsyncMemory, "
        f"{a.concurrency} callers at a time); then the namespaces of search by size and the "
        f"write namespace (`{WRITES_NS}`, {keys:,} keys and 200 entries) were indexed with the "
        f"engine's statements ({indexed:,} rows in {time.perf_counter() - t0:.1f} s). Callers' "
        "namespaces are not indexed (ranked directly)"
    )
    log(f"  {dt:.1f}s; copying it without its triggers")
    dropped = sqlite_unindexed_copy(db, copy)
    st.data["loads"].append(
        "botwire-sqlite (no index): the same file without its triggers ("
        + ", ".join(f"`{t}`" for t in dropped)
        + ")"
    )
    space = sqlite_space(db)
    if space:
        st.data["space"].append(
            f"botwire-sqlite file {fmt_bytes(space[1])}, of which the search index "
            f"(FTS5 tables, the queue of documents to forget, the `doc` index; it holds the "
            f"namespaces above {direct_max()} documents and the small size namespaces) "
            f"{fmt_bytes(space[0])}"
        )
    log("loading diskcache")
    t0 = time.perf_counter()
    st.dc = st.keep(Diskcache(os.path.join(st.tmp, "diskcache")))
    st.dc.load(n)
    st.data["loads"].append(
        f"diskcache loaded in {time.perf_counter() - t0:.1f} s (`transact()` per 100 callers)"
    )
    st.bw = st.keep(Botwire(url))
    st.bw_no = st.keep(Botwire(f"sqlite:///{copy}"))
    st.raw = st.keep(RawSQLite(db))
    st.raw_no = st.keep(RawSQLite(copy))


def setup_postgres(a: argparse.Namespace, st: Setup) -> None:
    import psycopg

    n = st.n
    tag = uuid.uuid4().hex[:8]
    s_idx, s_no = f"botwire_search_{tag}", f"botwire_search_{tag}_noindex"
    with psycopg.connect(a.postgres_url, autocommit=True, connect_timeout=5) as conn:
        for s in (s_idx, s_no):
            conn.execute(f'CREATE SCHEMA "{s}"')
            st.schemas.append(s)
    url, url_no = schema_url(a.postgres_url, s_idx), schema_url(a.postgres_url, s_no)
    conc = min(a.concurrency, 10)
    log(f"loading {human(n)} callers into botwire-postgres (schema {s_idx})")
    dt = load(url, n, conc)
    load_sizes(url)
    st.data["loads"].append(
        f"botwire-postgres loaded in {dt:.1f} s ({n / dt:,.0f} callers/s; AsyncMemory, "
        f"{conc} callers at a time, the engine's default pool of 10), then `VACUUM ANALYZE`"
    )
    log(f"  {dt:.1f}s; copying its rows into {s_no} without the tsv columns")
    pg_unindexed_copy(a.postgres_url, s_idx, s_no)
    check_unindexed_pg(a.postgres_url, s_no)
    with_idx, without = pg_space(a.postgres_url, s_idx), pg_space(a.postgres_url, s_no)
    st.data["space"].append(
        f"botwire-postgres tables with their indexes {fmt_bytes(with_idx)}, "
        f"{fmt_bytes(without)} without the `tsv` columns and GIN indexes (after VACUUM of both)"
    )
    st.pg = st.keep(Botwire(url))
    st.pg_no = st.keep(Botwire(url_no))
    st.rawpg = st.keep(RawPostgres(url))


def sanity(st: Setup) -> None:
    assert st.bw and st.bw_no and st.raw
    log("sanity checks")
    sample = random.Random(SEED).sample(range(st.n), 8)
    hits: dict[str, list[int]] = {}
    check_search(st.bw, st.raw, sample, hits)
    if st.pg and st.rawpg:
        check_search(st.pg, st.rawpg, sample, {})
    check_sizes(st.bw, st.raw)
    if st.pg and st.rawpg:
        check_sizes(st.pg, st.rawpg)
    st.data["checks"] += check_unindexed_sqlite(st)
    st.data["words"] = word_stats(st.raw, st.n)
    st.data["words"].append(
        "Hits returned by botwire-sqlite (checked equal to the same SQL run by the driver, "
        "on 8 callers): "
        + ", ".join(f"{k} {statistics.mean(v):.1f}" for k, v in hits.items())
        + f" on average (limit {LIMIT})."
    )
    wr = random.Random(1)
    st.data["value_bytes"] = statistics.mean(len(dumps(write_value(wr))) for _ in range(200))
    st.data["entry_bytes"] = statistics.mean(len(dumps(write_entry(wr))) for _ in range(200))


def search_args(n: int, kind: str) -> Callable[[random.Random, int], list[tuple]]:
    """(caller's namespace, query) pairs: callers at random, a query of ``kind`` each."""

    def make(r: random.Random, count: int) -> list[tuple]:
        out = []
        for _ in range(count):
            c = caller(r.randrange(n))
            out.append((c.ns, query_for(kind, c, r)))
        return out

    return make


def search_section(runner: Runner, st: Setup, section: str = "search") -> None:
    assert st.bw and st.raw
    rows = []
    for kind in QUERY_KINDS:
        fns: dict[str, Callable[..., Any]] = {
            S_SEARCH: st.bw.search,
            S_SCAN: st.bw.scan_rank,
            S_SAME: st.raw.same_sql,
        }
        if st.pg and st.rawpg:
            fns.update(
                {
                    P_SEARCH: st.pg.search,
                    P_SCAN: st.pg.scan_rank,
                    P_SAME: st.rawpg.same_sql,
                    P_UNFENCED: st.rawpg.unfenced_sql,
                }
            )
        rows.append(Row(kind, search_args(st.n, kind), fns))
    subjects = [s for _, subs, _ in SEARCH_TABLES for s in subs if s in rows[0].fns]
    log(f"== {section} ({', '.join(subjects)})")
    runner.run(section, rows, subjects)


def size_section(runner: Runner, st: Setup) -> None:
    """Search in one namespace of each size: where ranking directly stops paying off."""
    assert st.bw and st.raw
    rows = []
    for n in SIZES:
        for kind, query in SIZE_KINDS.items():
            fns: dict[str, Callable[..., Any]] = {S_SEARCH: st.bw.search, S_INDEX: st.raw.index_sql}
            if st.pg and st.rawpg:
                fns.update({P_SEARCH: st.pg.search, P_UNFENCED: st.rawpg.unfenced_sql})
            args = (size_ns(n), query)
            rows.append(Row(size_row(n, kind), lambda r, count, a=args: [a] * count, fns))
    subjects = [s for _, subs, _ in SIZE_TABLES for s in subs if s in rows[0].fns]
    log(f"== search by namespace size ({', '.join(subjects)})")
    a = runner.a
    runner.run("sizes", rows, subjects, min(a.budget, 0.5), min(a.min_calls, 10))


def exact_words(search: Callable[[str, str], Any]) -> Callable[[str, str], Any]:
    """``search`` as botwire ran it before word variants: each word matches its own stem only
    (``botwire._search.root`` answers None during the call)."""
    from botwire import _search

    def run(ns: str, query: str) -> Any:
        root = _search.root
        _search.root = _no_root
        try:
            return search(ns, query)
        finally:
            _search.root = root

    return run


def _no_root(term: str) -> None:
    return None


def variants_section(runner: Runner, st: Setup) -> None:
    """Search with word variants against exact words only, interleaved in one run."""
    from botwire import _search

    assert st.bw
    if not hasattr(_search, "root"):
        log("== word variants: skipped (this botwire has no variants)")
        return
    engines = [(st.bw, S_SEARCH, S_EXACT)]
    if st.pg:
        engines.append((st.pg, P_SEARCH, P_EXACT))
    fns: dict[str, Callable[..., Any]] = {}
    for bw, with_variants, exact in engines:
        fns.update({with_variants: bw.search, exact: exact_words(bw.search)})
    rows = [Row(kind, search_args(st.n, kind), fns) for kind in VARIANT_KINDS]
    for n in VARIANT_SIZES:
        args = (size_ns(n), SIZE_KINDS["1 word, common"])
        rows.append(Row(size_row(n, "1 word, common"), repeated(args), fns))
    st.data["variant_hits"] = variant_hits(st.bw, st.n)
    subjects = [s for _, subs, _ in VARIANT_TABLES for s in subs if s in fns]
    log(f"== word variants ({', '.join(subjects)})")
    runner.run("variants", rows, subjects)


def repeated(args: tuple) -> Callable[[random.Random, int], list[tuple]]:
    """The same call every time."""

    def make(r: random.Random, count: int) -> list[tuple]:
        return [args] * count

    return make


def variant_hits(bw: Botwire, n: int) -> list[str]:
    """How many more hits variants find, on 50 callers."""
    callers = [caller(i).ns for i in random.Random(SEED).sample(range(n), 50)]
    for ns in callers:
        bw.prepare(ns)
    exact = exact_words(bw.search)
    out = []
    for word in VARIANT_WORDS:
        before = statistics.mean(len(exact(ns, word)) for ns in callers)
        after = statistics.mean(len(bw.search(ns, word)) for ns in callers)
        out.append(f"`{word}` {before:.1f} -> {after:.1f}")
    return [
        "Hits per caller (botwire-sqlite, 50 callers), exact words -> variants: "
        + ", ".join(out)
        + "."
    ]


def set_args(n: int) -> Callable[[random.Random, int], list[tuple]]:
    def make(r: random.Random, count: int) -> list[tuple]:
        out = []
        for _ in range(count):
            c = caller(r.randrange(n))
            out.append((c.ns, r.choice(list(c.facts)), write_value(r)))
        return out

    return make


def append_args(n: int) -> Callable[[random.Random, int], list[tuple]]:
    def make(r: random.Random, count: int) -> list[tuple]:
        return [(ns_name(r.randrange(n)), write_entry(r)) for _ in range(count)]

    return make


def write_fns(st: Setup) -> dict[str, dict[str, Callable[..., Any]]]:
    """subject -> {"set": fn, "append": fn}"""
    assert st.bw and st.bw_no and st.dc
    out = {
        "botwire-sqlite": {"set": st.bw.set, "append": st.bw.append},
        "botwire-sqlite (no index)": {"set": st.bw_no.set, "append": st.bw_no.append},
        "diskcache": {"set": st.dc.set, "append": st.dc.append},
    }
    if st.pg and st.pg_no:
        out["botwire-postgres"] = {"set": st.pg.set, "append": st.pg.append}
        out["botwire-postgres (no index)"] = {"set": st.pg_no.set, "append": st.pg_no.append}
    return out


def write_section(runner: Runner, st: Setup) -> None:
    fns = write_fns(st)
    rows = [
        Row(WRITE_ROWS[0], set_args(st.n), {s: f["set"] for s, f in fns.items()}),
        Row(WRITE_ROWS[1], append_args(st.n), {s: f["append"] for s, f in fns.items()}),
    ]
    subjects = [s for s in WRITE_SUBJECTS if s in fns]
    log(f"== writes, callers' namespaces ({', '.join(subjects)})")
    runner.run("writes", rows, subjects)
    large_write_section(runner, st)


def key_args(first: int, count_max: int) -> Callable[[random.Random, int], list[tuple]]:
    """``set`` of keys ``fact<first>``... of ``WRITES_NS``, each at most once (a prefix of one
    shuffled order), with ~100-byte values."""

    def make(r: random.Random, count: int) -> list[tuple]:
        order = list(range(first, first + count_max))
        r.shuffle(order)
        if count > len(order):
            raise ValueError(f"{count} calls, {len(order)} keys")
        return [(WRITES_NS, f"fact{i}", write_value(r)) for i in order[:count]]

    return make


def large_write_section(runner: Runner, st: Setup) -> None:
    """Writes in a large namespace the index holds: the first overwrite of a key since it was
    indexed (the indexed file stashes the text the index holds), a later one, an append."""
    assert st.bw and st.bw_no and st.raw
    a, bw, bw_no, raw = runner.a, st.bw, st.bw_no, st.raw
    most = max(a.ops, a.min_calls)
    fresh, fresh_warm = key_args(0, most), key_args(most, a.warm)
    again = key_args(most + a.warm, most)
    subjects = ["botwire-sqlite", "botwire-sqlite (no index)"]
    pair = {"botwire-sqlite": bw, "botwire-sqlite (no index)": bw_no}
    appends: Callable[[random.Random, int], list[tuple]] = lambda r, count: [  # noqa: E731
        (WRITES_NS, write_entry(r)) for _ in range(count)
    ]
    rows = [
        Row(LARGE_ROWS[0], fresh, {s: b.set for s, b in pair.items()}, fresh_warm, False),
        Row(LARGE_ROWS[1], again, {s: b.set for s, b in pair.items()}),
        Row(LARGE_ROWS[2], appends, {s: b.append for s, b in pair.items()}),
    ]
    stale = "SELECT count(*) FROM botwire_kv WHERE ns = ? AND stale IS NOT NULL"

    def before_rep() -> None:
        t0 = time.perf_counter()
        done = raw.index_namespace(WRITES_NS)  # every key indexed and current again
        for b in pair.values():
            b.prepare(WRITES_NS)
            for args in again(random.Random(0), most):  # "overwritten before"
                b.set(*args)
        n_stale = raw.conn.execute(stale, (WRITES_NS,)).fetchone()[0]
        if n_stale != most:
            raise AssertionError(f"{n_stale} keys of {WRITES_NS} stale before timing, not {most}")
        log(
            f"    {WRITES_NS}: {done} rows indexed again, {most} keys overwritten once "
            f"({time.perf_counter() - t0:.1f} s)"
        )

    log(f"== writes, a large indexed namespace ({', '.join(subjects)})")
    runner.run("writes-large", rows, subjects, before_rep=before_rep)
    st.data["large_writes"] = (
        f"`{WRITES_NS}`: {write_keys_total(raw.conn):,} keys and a log; before each repetition "
        "it is indexed again with the engine's statements (so every key is indexed and "
        f"current) and {most:,} other keys are overwritten once, untimed, on both files. "
        f"`{LARGE_ROWS[0]}`: each timed (and warm-up) call sets a key not written since it "
        "was indexed; on the indexed file a trigger stashes the text the index holds (`stale`). "
        f"`{LARGE_ROWS[1]}`: keys written once since (their text is stashed already). The "
        "namespace is not among those the engine's background keeps indexed (none of its "
        "searches went through this engine), so key states do not change during a repetition."
    )


@dataclass
class CatchupTarget:
    """Where a catch-up trial writes and searches."""

    writes: Callable[[random.Random, int, str | None], list[tuple[str, tuple]]]
    query: Callable[[random.Random, str | None], tuple]
    setup: Callable[[str], str] | None = None  # a fresh namespace per trial (untimed)
    settle: Callable[[str, str], None] | None = None  # (subject, ns): wait for the index
    after_first: Callable[[str, str, int], None] | None = None  # (subject, ns, k), untimed


def catchup_section(runner: Runner, st: Setup) -> None:
    assert st.bw and st.bw_no and st.raw and st.raw_no
    n, fns = st.n, write_fns(st)
    sets, appends = set_args(n), append_args(n)
    pair = {"botwire-sqlite": st.bw, "botwire-sqlite (no index)": st.bw_no}
    raws = {"botwire-sqlite": st.raw, "botwire-sqlite (no index)": st.raw_no}
    held: dict[tuple[str, int], list[int]] = {}  # (subject, k) -> [trials, indexed after first]
    sizes: list[int] = []

    def to_callers(r: random.Random, k: int, ns: str | None) -> list[tuple[str, tuple]]:
        return [("set", a) for a in sets(r, k // 2)] + [
            ("append", a) for a in appends(r, k - k // 2)
        ]

    def in_caller(r: random.Random, ns: str | None) -> tuple:
        c = caller(r.randrange(n))
        return (c.ns, query_for("1 word, common", c, r))

    def fresh_large(tag: str) -> str:
        """A namespace of ``CATCHUP_LARGE`` docs on both files, indexed, searched once."""
        ns = f"bench-catchup-{tag}"
        seed = zlib.crc32(ns.encode())
        for s, b in pair.items():
            load_namespace(b.url, ns, CATCHUP_LARGE * 2 // 3, CATCHUP_LARGE // 3, seed)
            raws[s].index_namespace(ns)
            b.prepare(ns)
            b.search(ns, SIZE_KINDS["1 word, common"])  # the engine now keeps it indexed
        return ns

    def into_large(r: random.Random, k: int, ns: str | None) -> list[tuple[str, tuple]]:
        keys = [f"fact{i}" for i in range(CATCHUP_LARGE * 2 // 3)]
        out = [("set", (ns, r.choice(keys), write_value(r))) for _ in range(k // 2)]
        return out + [("append", (ns, write_entry(r))) for _ in range(k - k // 2)]

    def in_large(r: random.Random, ns: str | None) -> tuple:
        return (ns, SIZE_KINDS["1 word, common"])

    def settle(s: str, ns: str) -> None:
        end = time.perf_counter() + 30
        while raws[s].pending(ns):
            if time.perf_counter() > end:
                raise RuntimeError(f"{s}: the index still lacks rows of {ns} after 30 s")
            time.sleep(0.005)

    def after_first(s: str, ns: str, k: int) -> None:
        h = held.setdefault((s, k), [0, 0])
        h[0] += 1
        h[1] += not raws[s].pending(ns)
        if s == "botwire-sqlite":
            sizes.append(
                st.raw.conn.execute(  # type: ignore[union-attr]
                    "SELECT (SELECT count(*) FROM botwire_kv WHERE ns = ?) + (SELECT "
                    "count(*) FROM botwire_entries e JOIN botwire_logs l ON l.id = e.log_id "
                    "WHERE l.ns = ?)",
                    (ns, ns),
                ).fetchone()[0]
            )

    targets = {
        CATCHUP_TARGETS[0]: CatchupTarget(into_large, in_large, fresh_large, settle, after_first),
        CATCHUP_TARGETS[1]: CatchupTarget(to_callers, in_caller),
    }
    subjects = list(pair)
    search = {s: b.search for s, b in pair.items()}
    log("== catch-up: a search right after a burst of writes")
    runner.catchup("catchup", subjects, targets, fns, search, CATCHUP, runner.a.trials)
    st.data["catchup_held"] = {f"{s}/{k}": v for (s, k), v in held.items()}
    if sizes:
        st.data["catchup_docs"] = (min(sizes), max(sizes))


CATCHUP_LARGE = 1000  # docs in the large namespace searched after writes
CATCHUP_TARGETS = (f"{CATCHUP_LARGE:,}-doc namespace", "caller")
CATCHUP = (
    (100, CATCHUP_TARGETS[0]),
    (1000, CATCHUP_TARGETS[0]),
    (100, CATCHUP_TARGETS[1]),
    (1000, CATCHUP_TARGETS[1]),
)


def writes_done(st: Setup) -> list[str]:
    """How much the stores changed since loading (the same writes went to every subject)."""
    assert st.raw
    c = st.raw.conn
    overwrites = c.execute("SELECT sum(version) - count(*) FROM botwire_kv").fetchone()[0]
    entries = c.execute("SELECT count(*) FROM botwire_entries").fetchone()[0]
    return [
        f"about {overwrites:,} overwrites of facts and "
        f"{entries - st.n * N_CALLS:,} appended entries ({entries:,} entries now)"
    ]


def run_sections(runner: Runner, st: Setup, sections: list[str]) -> None:
    if "search" in sections:
        search_section(runner, st)
    if "sizes" in sections:
        size_section(runner, st)
    if "writes" in sections:
        write_section(runner, st)
    if "catchup" in sections:
        catchup_section(runner, st)
    if "search-after" in sections:
        st.data["after"] = writes_done(st)
        search_section(runner, st, "search-after")
    if "variants" in sections:
        variants_section(runner, st)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    t_start = time.perf_counter()
    st = Setup(tempfile.mkdtemp(prefix="botwire-bench-search-", dir=a.tmpdir), a.callers)
    skipped: dict[str, str] = {}
    pg_problem = "--no-postgres" if a.no_postgres else postgres_reachable(a.postgres_url)
    if pg_problem:
        skipped["botwire-postgres"] = pg_problem
        log(f"skipping botwire-postgres: {pg_problem}")
    runner = Runner(a)
    runner.prepare.append(lambda args: [b.prepare(t[0]) for t in args for b in st.botwires()])
    interrupted = False
    try:
        setup_sqlite(a, st)
        if not pg_problem:
            try:
                setup_postgres(a, st)
            except Exception as exc:  # noqa: BLE001 - go on without it, say why
                skipped["botwire-postgres"] = _short(f"setup failed: {type(exc).__name__}: {exc}")
                log(f"skipping botwire-postgres: {skipped['botwire-postgres']}")
                st.pg = st.pg_no = st.rawpg = None
        sanity(st)
        run_sections(runner, st, a.sections)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: reporting what was measured so far")
    finally:
        vers = versions(None if pg_problem else a.postgres_url)
        for close in reversed(st.closers):
            try:
                close()
            except Exception as exc:  # noqa: BLE001
                log(f"cleanup failed: {type(exc).__name__}: {exc}")
        if st.schemas:
            import psycopg

            with psycopg.connect(a.postgres_url, autocommit=True, connect_timeout=5) as conn:
                for s in st.schemas:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{s}" CASCADE')
        shutil.rmtree(st.tmp, ignore_errors=True)

    elapsed = time.perf_counter() - t_start
    args_text = " ".join(argv if argv is not None else sys.argv[1:])
    meta = {
        "command": f".venv/bin/python bench/bench_search.py {args_text}".strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "elapsed": elapsed,
        "machine": machine_info(),
        "versions": vers,
        "skipped": skipped,
        "interrupted": interrupted,
        "data": {"callers": a.callers, "value_bytes": 0.0, "entry_bytes": 0.0, **st.data},
        "reps": a.reps,
        "trials": a.trials,
        "plan": (
            f"up to {a.ops:,} timed calls (at most {a.budget:g} s of them, at least "
            f"{a.min_calls}) after up to {a.warm} warm-up calls, all rows and subjects of a "
            f"section interleaved in {a.chunks} slices"
        ),
    }
    if a.baseline:
        with open(a.baseline) as f:
            meta["baseline"] = json.load(f)
    md = render(runner, meta)
    print(md)
    if a.output:
        os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
        with open(a.output, "w") as f:
            f.write(md + "\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(to_json(runner, meta), f, indent=1)
    log(f"done in {elapsed:.0f}s" + (f"; markdown -> {a.output}" if a.output else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
