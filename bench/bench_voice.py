#!/usr/bin/env python3
"""Voice benchmark: the Vapi webhook of a real botwire server, 50 calls in flight, 10k callers.

Run with ``make bench-voice`` (or ``python bench/bench_voice.py [--quick] [...]``); see
``--help``. It prints a markdown report and writes it to ``bench/results/voice.md`` (every
repetition's numbers in ``voice.md.json``). Progress goes to stderr.

What one run does:

* **Callers.** ``--callers`` (default 10k) callers ``+1415NNNNNNN``, the same for every
  subject (fixed seed). Each has ``--facts`` (default 20) facts (``customer_name``,
  ``last_order``, ``account_tier``, ``city``, ``preferred_language`` and 15 more of the kind a
  platform's post-call extraction brings, one of them a nested object; a third also an
  ``open:`` item), 1-5 past calls and 0-3 notes. botwire is filled through the public API on
  one engine: ``voice.core.end_call`` for every past call (its call record, ``last_call``, the
  idempotency claims and a transcript of 8-12 turns, exactly as the webhooks write them; the
  first call's extracted fields bring the facts, each with its provenance record) and
  ``voice.core.remember_fact`` for the notes. The populated SQLite file is cached
  (``--cache-dir``) under a digest of the code that decides what is stored, and copied for
  each run; PostgreSQL is filled every run (8 threads) in a private schema
  ``botwire_bench_<random>`` (``?options=-csearch_path%3D<schema>``), whose tables are then
  ANALYZEd (as autovacuum would; ``--no-analyze`` to skip), and dropped at the end.
* **Servers**, started as users start them: ``python -m botwire serve --host 127.0.0.1 --port P
  --database URL --workers N`` with ``BOTWIRE_HOME=<tempdir>``, ``BOTWIRE_VAPI_SECRET``,
  ``BOTWIRE_VAPI_ASSISTANT_ID`` and ``BOTWIRE_WRITES_PER_DAY=0``; the Vapi secret is checked
  in its default mode (the ``x-vapi-secret`` header).
* **The peer**: ``redis-baseline``, a minimal ASGI app (this file, ``--serve-baseline``) under
  the same ``uvicorn.run`` settings as ``botwire serve`` (uvloop, httptools, no access log,
  same worker count). It answers the same Vapi ``assistant-request`` with the same answer
  shape from a local Redis holding the same callers (a hash of facts, lists of call records,
  notes and turns, as JSON text): it checks the secret, reads the caller's number, runs
  ``HGETALL`` facts + ``LRANGE`` last 20 calls + ``LRANGE`` last 20 notes in one pipelined
  round trip (redis-py asyncio) and builds a budgeted "Known facts / Recent calls / Notes"
  string. Its keys live under ``botwire-bench-voice:<random>:`` and are deleted at the end
  (SCAN + UNLINK); the database is never flushed.
* **Load**: a separate process (this file, ``--load``) on uvloop, with ``--concurrency``
  (default 50) keep-alive HTTP/1.1 connections, each sending its next request as soon as the
  previous answer arrived (closed loop: 50 requests always in flight). Kinds, each measured
  on its own: ``assistant-request`` (random known callers, ``--unknown`` = 10% unknown
  numbers), ``tool-calls`` ``recall_memory`` (a keyword search of the caller's memory) and
  ``remember`` (one fact), ``end-of-call-report`` (a new call id, 10 turns) and the server's
  own ``GET /healthz`` as the floor. Every answer is checked (status and shape: an
  ``assistantId`` and the caller's facts, a tool ``result``, ...); a wrong one counts as bad.
  Latency is from writing the request to the end of the answer, in the load process;
  requests started in the first ``--warmup`` seconds are not counted.
* Open loop (``--open-rates``, default 100,250,500; once each): ``assistant-request`` with
  Poisson arrivals at R requests/s on at most ``--concurrency`` connections, latency from the
  *scheduled* arrival (so a backlog counts in full).

Each repetition (``--reps``, default 3) measures every (subject, kind) once, in an order that
rotates between repetitions; the report gives the median over repetitions of each statistic.
The load process, the server(s), Redis and PostgreSQL share the machine's cores; server and
load-generator CPU per request are reported.

The default run takes about 7 minutes on a 2-core machine (2 of them filling PostgreSQL), plus
about a minute when the SQLite file is not cached yet. ``--quick``: one repetition of 3 s per
measurement, 2k callers in PostgreSQL (SQLite keeps 10k), no open loop: about a minute with
the SQLite file cached. ``--profile SECONDS`` records the SQLite server with py-spy
(``pip install py-spy``, or ``PY_SPY=/path/to/py-spy``) under ``assistant-request`` and adds
its hottest frames to the report. bench/VOICE_RESULTS.md reads the results.

The report ends with a Goals table computed from that run's medians, for each engine
(botwire-sqlite, botwire-postgres) under ``assistant-request`` (the call start): closed-loop
req/s over the redis-baseline peer's (goal >= 1.0x), closed-loop p99 over the peer's p99
(<= 1.0x), and the open-loop p99 at each rate (<= 25 ms, next to the peer's p99 at that rate).
``--goals`` measures only those rows: ``assistant-request`` in the closed loop and the open loop
at ``--open-rates`` (the default rates, also with ``--quick``);
with ``make bench-voice BENCH_ARGS="--goals --quick"`` its measurements take under a minute,
after filling PostgreSQL with 2k callers (which the verdicts say) and, when the SQLite file is
not cached yet, SQLite with 10k.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_core import source_digest  # noqa: E402  (shared with the other benchmarks)
from bench_server import PgSchemas as ServerPgSchemas  # noqa: E402
from bench_server import ChildServer, cpu_seconds_of, fmt, free_port, layer_of  # noqa: E402

ROOT = os.path.dirname(HERE)
DEFAULT_PG = os.environ.get(
    "BOTWIRE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SEED = 20240611
POPULATION_VERSION = 1  # bump when the generated callers change (invalidates the cache)
SECRET = "bench-vapi-secret"
ASSISTANT = "asst_bench"
TARGET_P99_MS = 25.0  # open-loop assistant-request p99, at every rate
TARGET_RPS_RATIO = 1.0  # closed-loop assistant-request req/s over the peer's: at least this
TARGET_P99_RATIO = 1.0  # closed-loop assistant-request p99 over the peer's: at most this
GOAL_KIND = "assistant-request"
FULL_CALLERS = 10_000  # a verdict on fewer callers stored says so
FACTS = [20]  # facts a caller holds (--facts)
KINDS = ("healthz", "assistant-request", "recall_memory", "remember", "end-of-call-report")
BASELINE_KINDS = ("assistant-request",)
OPEN_RATES = "100,250,500"
DAY = 86400.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the callers ---------------------------------------------------------------------------

FIRST = ("Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal",
         "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq")
LAST = ("Ruiz", "Okafor", "Nguyen", "Smith", "Kowalski", "Haddad", "Ito", "Silva", "Patel",
        "Müller", "Brown", "Garcia", "Kim", "Rossi", "Dubois", "Novak", "Larsen", "Chen")
CITIES = ("Austin", "Leeds", "Lyon", "Osaka", "Porto", "Denver", "Toronto", "Dublin", "Pune")
LANGS = ("en", "en", "en", "es", "fr", "de", "pt")
TIERS = ("basic", "basic", "silver", "gold")
TOPICS = (
    ("order", "Where is my order {order}? It was due on Monday.",
     "I can see {order} left our warehouse yesterday; it should arrive within two days.",
     "Asked where {order} was; it shipped and arrives within two days."),
    ("refund", "I'd like a refund for {order}, the blender arrived broken.",
     "I'm sorry about that. I've opened a refund for {order}; it takes 5-7 business days.",
     "Requested a refund for {order} (damaged blender); refund opened."),
    ("reschedule", "I need to reschedule my delivery for {order}.",
     "Of course. I've moved the delivery of {order} to Thursday between 9 and 12.",
     "Rescheduled the delivery of {order} to Thursday morning."),
    ("address", "I moved; please update my address before {order} ships.",
     "Done: {order} will go to the new address in {city}.",
     "Updated the delivery address for {order} to {city}."),
    ("billing", "I was charged twice for {order}.",
     "I see the duplicate charge for {order}; I've reversed it, you'll see it in 3 days.",
     "Reported a double charge on {order}; the duplicate was reversed."),
)
FILLER = (
    ("user", "Hi, it's {name} again."),
    ("assistant", "Hello {name}, good to hear from you. How can I help today?"),
    ("user", "Can you confirm that on my account?"),
    ("assistant", "Yes, it's on your account now. Anything else?"),
    ("user", "No, that's all, thanks."),
    ("assistant", "You're welcome, {name}. Have a great day!"),
)
EXTRA = (("user", "Also, is my address still in {city}?"),
         ("assistant", "Yes, we have your address in {city} on file."))
CLOSING = (("user", "Thanks."), ("assistant", "Bye!"))
NOTES = ("prefers to be called in the morning", "hard of hearing: speak slowly",
         "asked not to be offered the newsletter again", "speaks Spanish at home",
         "has a dog that barks during calls", "wants SMS confirmations, not email",
         "is a long-time customer since 2019", "asked about the loyalty programme")
QUERIES = ("order", "refund", "reschedule delivery", "address", "charged twice", "morning",
           "blender", "newsletter")
# the facts a platform's post-call extraction adds (beside the five above): 20 facts a caller
EXTRACTED = (
    ("phone_type", ("mobile", "landline")), ("contact_window", ("mornings", "evenings")),
    ("product_interest", ("blender", "kettle", "toaster")), ("payment_method", ("card", "paypal")),
    ("delivery_preference", ("doorstep", "locker")), ("loyalty_member", (True, False)),
    ("marketing_opt_in", (True, False)), ("issue_category", ("shipping", "billing", "returns")),
    ("satisfaction", (3, 4, 5)), ("household_size", (1, 2, 3, 4)),
    ("preferred_channel", ("sms", "email", "phone")), ("device", ("ios", "android")),
    ("timezone", ("America/Chicago", "Europe/London", "Asia/Tokyo")),
    ("last_issue_resolved", (True, False)), ("address", ({"street": "12 Elm St", "zip": "78701"},)),
)
REMEMBER = (("preferred_time", "mornings before 10"), ("callback_number", "+14155550188"),
            ("email", "customer@example.com"), ("delivery_notes", "leave at the back door"))


def known_number(i: int) -> str:
    return f"+1415{i:07d}"


def unknown_number(i: int) -> str:
    return f"+1628{i:07d}"


@dataclass
class Caller:
    number: str
    facts: dict[str, Any]
    calls: list[Any]  # botwire.voice.CallEnd, oldest first
    notes: list[str]

    @property
    def ns(self) -> str:
        return f"phone:{self.number}"


def make_caller(i: int, seed: int, now: float) -> Caller:
    """Caller ``i``: the same for every subject and run (its own ``Random``)."""
    from botwire.voice import CallEnd, Turn

    rnd = random.Random(seed * 1_000_003 + i)
    name = f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"
    first, city = name.split()[0], rnd.choice(CITIES)
    order = f"ORDER-{rnd.randrange(10_000, 99_999)}"
    facts: dict[str, Any] = {
        "customer_name": name,
        "last_order": order,
        "account_tier": rnd.choice(TIERS),
        "city": city,
        "preferred_language": rnd.choice(LANGS),
    }
    for field, choices in EXTRACTED[: max(0, FACTS[0] - len(facts))]:
        facts[field] = rnd.choice(choices)
    if rnd.random() < 0.33:
        facts["open:refund"] = f"refund for {order} pending since the last call"
    calls = []
    ended = now - rnd.uniform(60, 120) * DAY
    for j in range(rnd.randint(1, 5)):
        ended += rnd.uniform(2, 20) * DAY
        duration = rnd.uniform(60, 600)
        _, ask, answer, summary = rnd.choice(TOPICS)
        fill = {"order": order, "city": city, "name": first}
        lines = [*FILLER[:2], ("user", ask), ("assistant", answer),
                 *EXTRA[: rnd.randint(0, 2)], *FILLER[2:], *CLOSING[: rnd.randint(0, 2)]]
        step = duration / (len(lines) + 1)
        turns = tuple(Turn(role, text.format(**fill), ended - duration + (k + 1) * step)
                      for k, (role, text) in enumerate(lines))
        calls.append(CallEnd(
            platform="vapi", call_id=f"hist-{i:07d}-{j}", caller=f"+1415{i:07d}",
            started_at=ended - duration, ended_at=ended, summary=summary.format(**fill),
            outcome=rnd.choice(("customer-ended-call", "assistant-ended-call")),
            successful=rnd.random() < 0.85, turns=turns,
        ))
    notes = rnd.sample(NOTES, rnd.randint(0, 3))
    return Caller(known_number(i), facts, calls, notes)


# -- populating ----------------------------------------------------------------------------


def populate_botwire(url: str, n: int, seed: int, threads: int) -> float:
    """Fill ``n`` callers through the public API on one engine; seconds taken."""
    from botwire import Memory
    from botwire.engines import open_engine
    from botwire.voice import core

    engine = open_engine(url)
    now = time.time()
    done = [0]

    def one(i: int) -> None:
        c = make_caller(i, seed, now)
        m = Memory(c.ns, engine=engine)
        opened = {k: v for k, v in c.facts.items() if k.startswith("open:")}
        if opened:
            m.set_many(opened)
        extracted = {k: v for k, v in c.facts.items() if k not in opened}
        for j, event in enumerate(c.calls):  # the first call's extraction brings the facts
            core.run(core.end_call(replace(event, extracted=extracted) if j == 0 else event), m)
        for k, note in enumerate(c.notes):
            core.run(core.remember_fact(note, c.calls[-1 - k % len(c.calls)].call_id), m)
        done[0] += 1
        if done[0] % 2000 == 0:
            log(f"  {done[0]:,} / {n:,} callers")

    started = time.perf_counter()
    try:
        if threads <= 1:
            for i in range(n):
                one(i)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, range(n), chunksize=64))
        Memory(known_number(0), engine=engine).search("order")  # the search index catches up
    finally:
        engine.close()
    return time.perf_counter() - started


def code_digest(*files: str) -> str:
    """Digest of the source files that decide what populating stores (for the SQLite cache);
    a newer schema is migrated by the server when it opens an older cached file."""
    h = hashlib.sha256(f"{POPULATION_VERSION}".encode())
    for name in files:
        h.update(name.encode())
        with open(os.path.join(ROOT, "src", "botwire", name), "rb") as f:
            h.update(f.read())
    with open(__file__, "rb") as f:  # the generator of the callers lives here
        text = f.read()
    h.update(text[text.index(b"# -- the callers"):text.index(b"# -- populating")])
    return h.hexdigest()[:12]


def sqlite_database(
    dest_dir: str, n: int, seed: int, cache_dir: str | None
) -> tuple[str, float, bool]:
    """A populated SQLite file in ``dest_dir``: copied from the cache, else made (and cached).
    Returns (url, seconds spent populating or copying, whether the cache was used)."""
    path = os.path.join(dest_dir, "voice.db")
    digest = code_digest("engines/sql.py", "engines/sqlite.py", "_codec.py", "memory.py",
                         "voice/core.py", "voice/records.py", "voice/facts.py")
    name = f"voice-{n}-s{seed}-f{FACTS[0]}-{digest}.db"
    cached = os.path.join(cache_dir, name) if cache_dir else None
    started = time.perf_counter()
    if cached and os.path.exists(cached):
        shutil.copyfile(cached, path)
        return f"sqlite:///{path}", time.perf_counter() - started, True
    seconds = populate_botwire(f"sqlite:///{path}", n, seed, threads=1)
    if cached:
        os.makedirs(cache_dir, exist_ok=True)
        with contextlib.suppress(OSError):
            for old in os.listdir(cache_dir):  # one cached file per caller count and seed
                if old.startswith(f"voice-{n}-s{seed}-") and old != name:
                    os.remove(os.path.join(cache_dir, old))
        if not os.path.exists(path + "-wal") or os.path.getsize(path + "-wal") == 0:
            shutil.copyfile(path, cached + ".tmp")
            os.replace(cached + ".tmp", cached)
    return f"sqlite:///{path}", seconds, False


class PgSchemas(ServerPgSchemas):
    """bench_server's private schemas, plus ANALYZE after a bulk load."""

    def analyze(self, url: str) -> str:
        """ANALYZE the tables of the schema behind ``url`` (as autovacuum would after a bulk
        load); returns the server's ``autovacuum`` setting."""
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
            tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s",
                                  (schema,)).fetchall()
            for (table,) in tables:
                conn.execute(f'ANALYZE "{schema}"."{table}"')
            return str(conn.execute("SHOW autovacuum").fetchone()[0])


def redis_client(addr: str) -> Any:
    import redis

    host, _, port = addr.rpartition(":")
    return redis.Redis(host=host, port=int(port))


def populate_redis(addr: str, prefix: str, n: int, seed: int) -> float:
    """The same callers in Redis, stored as botwire stores them (JSON text of each value)."""
    r = redis_client(addr)
    now = time.time()
    started = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        c = make_caller(i, seed, now)
        key = f"{prefix}{c.ns}:"
        pipe.hset(key + "facts", mapping={k: dumps(v) for k, v in c.facts.items()})
        pipe.rpush(key + "calls", *[dumps(e.record()) for e in c.calls])
        turns = [dumps({"role": t.role, "text": t.text, "call_id": e.call_id, "platform": "vapi",
                        "ts": t.ts}) for e in c.calls for t in e.turns]
        pipe.rpush(key + "conversation", *turns)
        if c.notes:
            pipe.rpush(key + "notes", *[dumps({"text": t, "call_id": c.calls[-1].call_id,
                                               "ts": now}) for t in c.notes])
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    r.close()
    return time.perf_counter() - started


def redis_cleanup(addr: str, prefix: str) -> int:
    r = redis_client(addr)
    gone, batch = 0, []
    for k in r.scan_iter(match=prefix + "*", count=1000):
        batch.append(k)
        if len(batch) >= 1000:
            gone += r.unlink(*batch)
            batch = []
    if batch:
        gone += r.unlink(*batch)
    r.close()
    return gone


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- the peer: a minimal Vapi assistant-request answerer over Redis ------------------------


def baseline_app() -> Any:
    """ASGI app answering ``POST /voice/vapi`` ``assistant-request`` from Redis (see the module
    docstring); anything else is a 404. Settings from ``BENCH_VOICE_*`` variables."""
    import redis.asyncio as aioredis

    addr = os.environ["BENCH_VOICE_REDIS"]
    prefix = os.environ["BENCH_VOICE_PREFIX"]
    secret = os.environ["BENCH_VOICE_SECRET"].encode()
    assistant = os.environ["BENCH_VOICE_ASSISTANT"]
    host, _, port = addr.rpartition(":")
    number = re.compile(r"\+[1-9][0-9]{6,14}")
    held: dict[str, Any] = {}

    def redis_conn() -> Any:  # one client (and pool) per worker process, made on its loop
        if "r" not in held:
            held["r"] = aioredis.Redis(host=host, port=int(port), max_connections=64)
        return held["r"]

    async def answer(body: bytes) -> tuple[int, bytes]:
        msg = json.loads(body).get("message") or {}
        if msg.get("type") != "assistant-request":
            return 200, b"{}"
        caller = ((msg.get("call") or {}).get("customer") or {}).get("number") or \
            (msg.get("customer") or {}).get("number")
        variables = {"customer_name": ""}
        if isinstance(caller, str) and number.fullmatch(caller.strip()):
            key = f"{prefix}phone:{caller.strip()}:"
            pipe = redis_conn().pipeline(transaction=False)
            pipe.hgetall(key + "facts")
            pipe.lrange(key + "calls", -20, -1)
            pipe.lrange(key + "notes", -20, -1)
            facts, calls, notes = await pipe.execute()
            facts = {k.decode(): json.loads(v) for k, v in facts.items()}
            calls = [json.loads(x) for x in reversed(calls)]
            notes = [json.loads(x).get("text", "") for x in reversed(notes)]
            variables.update({k: baseline_text(v) for k, v in facts.items() if ":" not in k})
            if calls:
                variables["last_call_summary"] = calls[0].get("summary") or ""
                variables["last_call_date"] = baseline_when(calls[0].get("ended_at"))
            variables["memory"] = baseline_memory(facts, calls, notes)
        else:
            variables["memory"] = "The caller's number is withheld."
        out = {"assistantId": assistant, "assistantOverrides": {"variableValues": variables}}
        return 200, json.dumps(out).encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    if "r" in held:
                        await held["r"].aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            event = await receive()
            body += event.get("body", b"")
            more = event.get("more_body", False)
        given = dict(scope["headers"]).get(b"x-vapi-secret", b"")
        if scope["path"] != "/voice/vapi" or scope["method"] != "POST":
            status, out = 404, b'{"error":"not found"}'
        elif not hmac.compare_digest(given, secret):
            status, out = 401, b'{"error":"unauthorized"}'
        else:
            try:
                status, out = await answer(body)
            except (ValueError, AttributeError):
                status, out = 400, b'{"error":"malformed"}'
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    return app


def baseline_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def baseline_when(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return "date unknown"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def baseline_memory(facts: dict[str, Any], calls: list[dict[str, Any]], notes: list[str],
                    budget: int = 2000) -> str:
    """Facts, open items, the last 5 calls and the notes, cut at ``budget`` characters."""
    if not (facts or calls or notes):
        return "This is the first call from this caller; nothing is remembered about them yet."
    lines = ["Known facts:"] + [f"- {k}: {baseline_text(v)}" for k, v in sorted(facts.items())
                                if ":" not in k]
    opened = [f"- {k[5:]}: {baseline_text(v)}" for k, v in sorted(facts.items())
              if k.startswith("open:")]
    if opened:
        lines += ["Still open:", *opened]
    if calls:
        lines.append("Recent calls, newest first:")
        lines += [f"- {baseline_when(c.get('ended_at'))}: {c.get('summary') or 'no summary'}"
                  for c in calls[:5]]
    if notes:
        lines += ["Notes, newest first:", *[f"- {n}" for n in notes]]
    out, size = [], 0
    for line in lines:
        if size + len(line) + 1 > budget:
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def serve_baseline(port: int, workers: int) -> None:
    """Run the peer under the same ``uvicorn.run`` settings as ``botwire serve``."""
    import uvicorn

    sys.path.insert(0, HERE)
    uvicorn.run("bench_voice:baseline_app", factory=True, host="127.0.0.1", port=port,
                workers=workers, timeout_graceful_shutdown=30, access_log=False,
                server_header=False, log_level="info")


# -- the load generator (its own process: ``--load SPEC``) ----------------------------------


class Requests:
    """Vapi webhook requests (raw HTTP/1.1) for one kind, and the check of their answers."""

    def __init__(self, kind: str, host: str, port: int, callers: int, unknown: float,
                 seed: int) -> None:
        self.kind, self.callers, self.unknown = kind, callers, unknown
        self.rnd = random.Random(seed)
        self.head = (f"Host: {host}:{port}\r\nContent-Type: application/json\r\n"
                     f"x-vapi-secret: {SECRET}\r\n").encode()
        self.tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.count = 0
        self.make: Callable[[], tuple[bytes, bool]] = getattr(self, "_" + kind.replace("-", "_"))

    def next(self) -> tuple[bytes, bool]:
        """The next request and whether its caller is known."""
        self.count += 1
        return self.make()

    def _post(self, body: str) -> bytes:
        data = body.encode()
        return (b"POST /voice/vapi HTTP/1.1\r\n" + self.head
                + b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)

    def _caller(self) -> tuple[str, bool]:
        if self.unknown and self.rnd.random() < self.unknown:
            return unknown_number(self.rnd.randrange(self.callers)), False
        return known_number(self.rnd.randrange(self.callers)), True

    def _call(self, number: str) -> str:
        return (f'"call":{{"id":"call-{self.tag}-{self.count}","orgId":"org_bench",'
                f'"type":"inboundPhoneCall","customer":{{"number":"{number}"}}}},'
                f'"customer":{{"number":"{number}"}}')

    def _healthz(self) -> tuple[bytes, bool]:
        return b"GET /healthz HTTP/1.1\r\n" + self.head + b"\r\n", True

    def _assistant_request(self) -> tuple[bytes, bool]:
        number, known = self._caller()
        ms = int(time.time() * 1000)
        body = (f'{{"message":{{"type":"assistant-request","timestamp":{ms},'
                f'{self._call(number)},"phoneNumber":{{"id":"pn_1","number":"+14155550100"}}}}}}')
        return self._post(body), known

    def _tool(self, name: str, args: dict[str, Any]) -> tuple[bytes, bool]:
        number, known = known_number(self.rnd.randrange(self.callers)), True
        ms = int(time.time() * 1000)
        call = (f'{{"id":"toolu-{self.count}","type":"function","function":'
                f'{{"name":"{name}","arguments":{dumps(args)}}}}}')
        body = (f'{{"message":{{"type":"tool-calls","timestamp":{ms},{self._call(number)},'
                f'"toolCallList":[{call}],"toolWithToolCallList":[{{"type":"function",'
                f'"function":{{"name":"{name}"}},"toolCall":{call}}}]}}}}')
        return self._post(body), known

    def _recall_memory(self) -> tuple[bytes, bool]:
        return self._tool("recall_memory", {"query": self.rnd.choice(QUERIES)})

    def _remember(self) -> tuple[bytes, bool]:
        key, value = self.rnd.choice(REMEMBER)
        return self._tool("remember", {"key": key, "value": value})

    def _end_of_call_report(self) -> tuple[bytes, bool]:
        number = known_number(self.rnd.randrange(self.callers))
        now = time.time()
        start = now - 180
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
        iso_end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        _, ask, answer, summary = self.rnd.choice(TOPICS)
        fill = {"order": "ORDER-55555", "city": "Leeds", "name": "Ana"}
        lines = [*FILLER[:2], ("user", ask), ("assistant", answer), *FILLER[2:],
                 ("user", "Thanks."), ("assistant", "Bye!")]
        messages = [{"role": "bot" if role == "assistant" else "user",
                     "message": text.format(**fill), "time": int((start + 15 * k) * 1000),
                     "secondsFromStart": 15 * k} for k, (role, text) in enumerate(lines)]
        body = (f'{{"message":{{"type":"end-of-call-report","timestamp":{int(now * 1000)},'
                f'"endedReason":"customer-ended-call","startedAt":"{iso}","endedAt":"{iso_end}",'
                f'{self._call(number)},"artifact":{{"messages":{dumps(messages)}}},'
                f'"analysis":{{"summary":{dumps(summary.format(**fill))},'
                f'"successEvaluation":"true"}}}}}}')
        return self._post(body), True

    def good(self, status: int, body: bytes, known: bool) -> bool:
        """Whether the answer is what the platform needs (cheap byte checks)."""
        if status != 200:
            return False
        if self.kind == "assistant-request":
            return b'"assistantId"' in body and ((b"Known facts" in body) == known)
        if self.kind in ("recall_memory", "remember"):
            return b'"result"' in body and b'"error"' not in body
        return True


class Tally:
    """Latencies (ns) and outcomes of one measurement, split by known / unknown caller."""

    def __init__(self) -> None:
        self.lat: list[int] = []
        self.lat_unknown: list[int] = []
        self.bad = 0
        self.errors = 0
        self.example: bytes = b""

    def add(self, ns: int, ok: bool, known: bool, body: bytes) -> None:
        (self.lat if known else self.lat_unknown).append(ns)
        if not ok:
            self.bad += 1
            if not self.example:
                self.example = body[:300]


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   request: bytes) -> tuple[int, bytes]:
    """One request on a keep-alive connection: (status, body). Answers carry Content-Length."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError(f"no Content-Length in {head[:200]!r}")
    length = int(head[at + 17:head.index(b"\r\n", at + 2)])
    return status, (await reader.readexactly(length) if length else b"")


async def closed_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """``conns`` connections, each sending its next request when its answer arrived."""
    reqs = Requests(spec["kind"], spec["host"], spec["port"], spec["callers"], spec["unknown"],
                    spec["seed"])
    tally = Tally()
    clock = time.perf_counter_ns
    window = {"start": math.inf, "end": math.inf}

    async def connection() -> None:
        reader = writer = None
        while clock() < window["end"]:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(spec["host"], spec["port"])
                request, known = reqs.next()
                t0 = clock()
                status, body = await exchange(reader, writer, request)  # type: ignore[arg-type]
                t1 = clock()
                if t0 >= window["start"] and t1 <= window["end"]:
                    tally.add(t1 - t0, reqs.good(status, body, known), known, body)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError):
                if clock() >= window["start"]:
                    tally.errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    window["end"] = clock() + int((spec["warmup"] + spec["duration"] + 60) * 1e9)
    tasks = [asyncio.ensure_future(connection()) for _ in range(spec["conns"])]
    await asyncio.sleep(spec["warmup"])
    window["start"] = clock()
    cpu0 = cpu_seconds_self()
    print("START", flush=True)
    await asyncio.sleep(spec["duration"])
    window["end"] = clock()
    cpu = cpu_seconds_self() - cpu0
    print("STOP", flush=True)
    await asyncio.gather(*tasks)
    return summary(tally, (window["end"] - window["start"]) / 1e9, cpu)


async def open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Poisson arrivals at ``rate``/s onto at most ``conns`` connections; latency is counted
    from each request's scheduled arrival, so waiting for a free connection counts too."""
    reqs = Requests(spec["kind"], spec["host"], spec["port"], spec["callers"], spec["unknown"],
                    spec["seed"])
    tally = Tally()
    clock = time.perf_counter_ns
    idle: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
    for _ in range(spec["conns"]):
        idle.put_nowait(await asyncio.open_connection(spec["host"], spec["port"]))
    rnd = random.Random(spec["seed"] + 1)
    start = clock() + int(spec["warmup"] * 1e9)
    end = start + int(spec["duration"] * 1e9)
    pending: set[asyncio.Task[None]] = set()

    async def one(at: int) -> None:
        reader, writer = await idle.get()
        try:
            request, known = reqs.next()
            status, body = await exchange(reader, writer, request)
            t1 = clock()
            if at >= start:
                tally.add(t1 - at, reqs.good(status, body, known), known, body)
            idle.put_nowait((reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            tally.errors += 1
            writer.close()
            idle.put_nowait(await asyncio.open_connection(spec["host"], spec["port"]))

    at = clock()
    cpu0 = None
    while at < end:
        at += int(rnd.expovariate(spec["rate"]) * 1e9)
        delay = (at - clock()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        if cpu0 is None and at >= start:
            cpu0 = cpu_seconds_self()
            print("START", flush=True)
        task = asyncio.ensure_future(one(at))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=60)
    cpu = cpu_seconds_self() - (cpu0 or 0.0)
    print("STOP", flush=True)
    while not idle.empty():
        idle.get_nowait()[1].close()
    return summary(tally, spec["duration"], cpu)


def cpu_seconds_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in ms."""
    if not sorted_ns:
        return math.nan
    return sorted_ns[max(0, math.ceil(q / 100 * len(sorted_ns)) - 1)] / 1e6


def summary(tally: Tally, seconds: float, cpu: float) -> dict[str, Any]:
    lat = sorted(tally.lat + tally.lat_unknown)
    unknown = sorted(tally.lat_unknown)
    n = len(lat)
    return {
        "requests": n, "seconds": seconds, "rps": n / seconds if seconds else math.nan,
        "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99),
        "max_ms": lat[-1] / 1e6 if lat else math.nan,
        "mean_ms": sum(lat) / n / 1e6 if n else math.nan,
        "unknown": len(unknown), "unknown_p50_ms": pct(unknown, 50),
        "bad": tally.bad, "errors": tally.errors, "bad_example": tally.example.decode(
            errors="replace"), "loadgen_cpu_us": cpu / n * 1e6 if n else math.nan,
    }


def load_main(spec_text: str) -> int:
    """Entry point of the load process: run one measurement, print its summary as JSON."""
    spec = json.loads(spec_text)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    run = open_loop if spec.get("rate") else closed_loop
    print(json.dumps(asyncio.run(run(spec))), flush=True)
    return 0


# -- servers -------------------------------------------------------------------------------


def http_status(url: str, timeout: float = 1) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


class Server(ChildServer):
    """A server in a child process: botwire (``python -m botwire serve``) or the Redis peer."""

    def __init__(self, label: str, command: list[str], env: dict[str, str], home: str,
                 ready_path: str, workers: int) -> None:
        self.label, self.command, self.env, self.home = label, command, env, home
        self.ready_path, self.workers = ready_path, workers
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def botwire(cls, label: str, database: str, home: str, workers: int) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
        env.update(BOTWIRE_HOME=home, BOTWIRE_WRITES_PER_DAY="0", BOTWIRE_VAPI_SECRET=SECRET,
                   BOTWIRE_VAPI_ASSISTANT_ID=ASSISTANT)
        server = cls(label, [], env, home, "/readyz", workers)
        server.command = [sys.executable, "-m", "botwire", "serve", "--host", "127.0.0.1",
                          "--port", str(server.port), "--database", database,
                          "--workers", str(workers)]
        return server

    @classmethod
    def baseline(cls, redis_addr: str, prefix: str, home: str, workers: int) -> Server:
        env = {**os.environ, "BENCH_VOICE_REDIS": redis_addr, "BENCH_VOICE_PREFIX": prefix,
               "BENCH_VOICE_SECRET": SECRET, "BENCH_VOICE_ASSISTANT": ASSISTANT}
        server = cls("redis-baseline", [], env, home, "/voice/vapi", workers)
        server.command = [sys.executable, os.path.abspath(__file__), "--serve-baseline",
                          str(server.port), "--workers", str(workers)]
        return server

    def start(self) -> Server:
        os.makedirs(self.home, exist_ok=True)
        with open(os.path.join(self.home, "server.log"), "ab") as out:
            self.proc = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=out,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            with contextlib.suppress(OSError):
                if http_status(self.base + self.ready_path) in (200, 404, 405):
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.label} not ready:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            with open(os.path.join(self.home, "server.log"), errors="replace") as f:
                return f.read()[-3000:]
        return ""

    def pids(self) -> list[int]:
        """The server process and its workers (uvicorn forks them with --workers > 1)."""
        if self.proc is None:
            return []
        out = [self.proc.pid]
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{self.proc.pid}/task"):
                with open(f"/proc/{self.proc.pid}/task/{task}/children") as f:
                    out += [int(p) for p in f.read().split()]
        return out

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.pids())



# -- measuring -----------------------------------------------------------------------------


@dataclass
class Settings:
    callers: int
    conns: int
    duration: float
    warmup: float
    unknown: float


def measure(server: Server, kind: str, cfg: Settings, seed: int,
            rate: float | None = None) -> dict[str, Any]:
    """One measurement in a fresh load process; adds the server's CPU time per request."""
    spec = {"kind": kind, "host": "127.0.0.1", "port": server.port, "callers": cfg.callers,
            "unknown": cfg.unknown if kind == "assistant-request" else 0.0, "seed": seed,
            "conns": cfg.conns, "duration": cfg.duration, "warmup": cfg.warmup, "rate": rate}
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--load",
                                 json.dumps(spec)], stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        cpu: dict[str, float] = {}
        lines: list[str] = []
        for raw in proc.stdout:  # START / STOP mark the measured window
            line = raw.decode().strip()
            if line in ("START", "STOP"):
                cpu[line] = server.cpu_seconds()
            else:
                lines.append(line)
        proc.wait(timeout=60)
        if proc.returncode != 0 or not lines:
            err.seek(0)
            raise RuntimeError(f"load process failed ({proc.returncode}): "
                               f"{err.read().decode(errors='replace')[-2000:]}")
    res: dict[str, Any] = json.loads(lines[-1])
    cpu_s = cpu.get("STOP", math.nan) - cpu.get("START", math.nan)
    res["server_cpu_us"] = cpu_s / res["requests"] * 1e6 if res["requests"] else math.nan
    return res


def med(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else math.nan


# -- the run -------------------------------------------------------------------------------


@dataclass
class Results:
    runs: dict[tuple[str, str], list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list))
    open_runs: dict[tuple[str, float], list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list))
    populate: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    loadavg: list[float] = field(default_factory=list)  # 1-minute load, at start and end


def population_stats(n: int, seed: int) -> dict[str, int]:
    now = time.time()
    out: Counter[str] = Counter()
    for i in range(n):
        c = make_caller(i, seed, now)
        out["facts"] += len(c.facts)
        out["calls"] += len(c.calls)
        out["turns"] += sum(len(e.turns) for e in c.calls)
        out["notes"] += len(c.notes)
    return dict(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="1 repetition of 3 s per measurement, 2k callers in PostgreSQL (~1 min)")
    p.add_argument("--callers", type=int, default=10_000, help="callers stored (default 10000)")
    p.add_argument("--facts", type=int, default=20,
                   help="facts a caller holds, brought by a past call's extraction (default 20)")
    p.add_argument("--pg-callers", type=int, default=None,
                   help="callers stored in PostgreSQL (default --callers; 2000 with --quick)")
    p.add_argument("--concurrency", type=int, default=50,
                   help="requests in flight (connections) (default 50)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds per measurement (default 5; 3 with --quick)")
    p.add_argument("--warmup", type=float, default=1.0,
                   help="seconds of load before each measurement (default 1)")
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 3; 1 with --quick)")
    p.add_argument("--workers", type=int, default=1,
                   help="uvicorn workers of every server (default 1, as botwire serve)")
    p.add_argument("--unknown", type=float, default=0.1,
                   help="share of assistant-requests from unknown numbers (default 0.1)")
    p.add_argument("--kinds", default=None,
                   help="kinds measured (default: all; assistant-request with --goals)")
    p.add_argument("--goals", action="store_true",
                   help="only what the Goals table needs: assistant-request, closed loop and "
                        "open loop at --open-rates (the default rates, also with --quick)")
    p.add_argument("--open-rates", default=None,
                   help="open-loop assistant-request at these rates/s (default 100,250,500; "
                        "none with --quick; '' for none)")
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--postgres-url", default=DEFAULT_PG)
    p.add_argument("--pg-threads", type=int, default=8, help="threads filling PostgreSQL")
    p.add_argument("--no-analyze", action="store_true",
                   help="do not ANALYZE the PostgreSQL tables after filling them")
    p.add_argument("--no-redis", action="store_true", help="no redis-baseline peer")
    p.add_argument("--redis", default="127.0.0.1:6379", help="host:port of the local Redis")
    p.add_argument("--cache-dir", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "botwire-bench"),
        help="where the populated SQLite file is kept between runs")
    p.add_argument("--no-cache", action="store_true", help="populate SQLite afresh, cache nothing")
    p.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                   help="py-spy the SQLite server under assistant-request for SECONDS")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--output", default=os.path.join(HERE, "results", "voice.md"))
    p.add_argument("--load", metavar="SPEC", help=argparse.SUPPRESS)
    p.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.load:
        return load_main(a.load)
    if a.serve_baseline:
        serve_baseline(a.serve_baseline, a.workers)
        return 0
    reps = a.reps or (1 if a.quick else 3)
    FACTS[0] = a.facts
    cfg = Settings(a.callers, a.concurrency, a.duration or (3.0 if a.quick else 5.0), a.warmup,
                   a.unknown)
    pg_callers = a.pg_callers or (min(2000, a.callers) if a.quick else a.callers)
    kinds = [k for k in (a.kinds if a.kinds is not None
                         else GOAL_KIND if a.goals else ",".join(KINDS)).split(",") if k]
    if a.open_rates is not None:
        open_rates = a.open_rates
    else:
        open_rates = "" if a.quick and not a.goals else OPEN_RATES
    rates = [float(r) for r in open_rates.split(",") if r]
    signal.signal(signal.SIGTERM, _exit_on_term)  # stop servers, drop schemas on the way out
    started = time.monotonic()
    res = Results(loadavg=[os.getloadavg()[0]])
    tmp = tempfile.mkdtemp(prefix="botwire-bench-voice-")
    pg = PgSchemas(a.postgres_url)
    prefix = f"botwire-bench-voice:{uuid.uuid4().hex[:10]}:"
    servers: list[Server] = []
    callers_of: dict[str, int] = {}
    try:
        servers += start_subjects(a, res, tmp, pg, prefix, pg_callers, callers_of)
        plan = [(s, k) for s in servers for k in kinds
                if s.label != "redis-baseline" or k in BASELINE_KINDS]
        for rep in range(reps):
            shift = rep * len(plan) // reps
            for s, kind in plan[shift:] + plan[:shift]:
                r = measure(s, kind, replace_callers(cfg, callers_of[s.label]), a.seed + rep)
                res.runs[(s.label, kind)].append(r)
                log(f"rep {rep + 1}/{reps} {s.label:16} {kind:19} {r['rps']:7.0f}/s  p50 "
                    f"{r['p50_ms']:6.2f}  p90 {r['p90_ms']:6.2f}  p99 {r['p99_ms']:6.2f}  max "
                    f"{r['max_ms']:6.1f} ms  bad {r['bad']} err {r['errors']}")
        for rate in rates:
            for s in servers:
                r = measure(s, "assistant-request", replace_callers(cfg, callers_of[s.label]),
                            a.seed, rate=rate)
                res.open_runs[(s.label, rate)].append(r)
                log(f"open {rate:6.0f}/s {s.label:16} {r['rps']:7.0f}/s  p50 {r['p50_ms']:6.2f}"
                    f"  p99 {r['p99_ms']:6.2f}  max {r['max_ms']:6.1f} ms  bad {r['bad']}")
        if a.profile:
            target = next((s for s in servers if s.label == "botwire-sqlite"), None)
            if target is not None:
                res.profile = profile(target, replace_callers(cfg, callers_of[target.label]),
                                      a.profile, tmp, a.seed)
    finally:
        for s in servers:
            s.stop()
        with contextlib.suppress(Exception):
            pg.drop_all()
        if not a.no_redis:
            with contextlib.suppress(Exception):
                redis_cleanup(a.redis, prefix)
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - started
    res.loadavg.append(os.getloadavg()[0])
    report = render(res, servers, cfg, reps, elapsed, a, argv)
    print(report)
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        f.write(report)
    with open(a.output + ".json", "w") as f:
        json.dump(raw_json(res, servers), f, indent=1, default=str)
    log(f"wrote {a.output} (+ .json) in {elapsed:.0f} s")
    return 0


def _exit_on_term(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def replace_callers(cfg: Settings, callers: int) -> Settings:
    return Settings(callers, cfg.conns, cfg.duration, cfg.warmup, cfg.unknown)


def start_subjects(a: argparse.Namespace, res: Results, tmp: str, pg: PgSchemas, prefix: str,
                   pg_callers: int, callers_of: dict[str, int]) -> list[Server]:
    """Populate every store and start its server; returns the servers, ready."""
    servers = []
    log(f"SQLite: {a.callers:,} callers ...")
    url, secs, cached = sqlite_database(tmp, a.callers, a.seed,
                                        None if a.no_cache else a.cache_dir)
    res.populate["botwire-sqlite"] = {"callers": a.callers, "seconds": secs, "cached": cached}
    log(f"  {'copied from the cache' if cached else 'populated'} in {secs:.1f} s")
    servers.append(Server.botwire("botwire-sqlite", url, os.path.join(tmp, "sqlite"),
                                  a.workers).start())
    callers_of["botwire-sqlite"] = a.callers
    why = None if a.no_postgres else pg.check()
    if why:
        res.notes.append(f"PostgreSQL skipped: cannot connect to {a.postgres_url} ({why}).")
        log(res.notes[-1])
    elif not a.no_postgres:
        url = pg.new()
        log(f"PostgreSQL: {pg_callers:,} callers, {a.pg_threads} threads ...")
        secs = populate_botwire(url, pg_callers, a.seed, a.pg_threads)
        res.populate["botwire-postgres"] = {"callers": pg_callers, "seconds": secs,
                                            "cached": False}
        log(f"  populated in {secs:.1f} s")
        if not a.no_analyze:
            autovacuum = pg.analyze(url)
            res.notes.append(f"PostgreSQL: the schema's tables were ANALYZEd after filling "
                             f"them (autovacuum on this server: {autovacuum}).")
        else:
            res.notes.append("PostgreSQL: not ANALYZEd after filling (--no-analyze).")
        servers.append(Server.botwire("botwire-postgres", url, os.path.join(tmp, "postgres"),
                                      a.workers).start())
        callers_of["botwire-postgres"] = pg_callers
    if not a.no_redis:
        try:
            secs = populate_redis(a.redis, prefix, a.callers, a.seed)
        except Exception as exc:  # noqa: BLE001 - no Redis: no peer, said in the report
            res.notes.append(f"redis-baseline skipped: {type(exc).__name__}: {exc}")
            log(res.notes[-1])
        else:
            res.populate["redis-baseline"] = {"callers": a.callers, "seconds": secs,
                                              "cached": False}
            log(f"Redis: {a.callers:,} callers in {secs:.1f} s")
            servers.append(Server.baseline(a.redis, prefix, os.path.join(tmp, "baseline"),
                                           a.workers).start())
            callers_of["redis-baseline"] = a.callers
    return servers


# -- profiling (optional) ------------------------------------------------------------------

LAYERS = [  # (layer, substring of a frame's file); other frames go to their nearest caller here
    ("botwire voice: context, core plans, platforms", "botwire/voice/"),
    ("botwire voice endpoint (server/voice.py)", "botwire/server/voice.py"),
    ("botwire server: Edge, routing glue", "botwire/server/"),
    ("botwire Memory / codec", "botwire/memory.py"),
    ("botwire Memory / codec", "botwire/_"),
    ("botwire engine (sqlite.py, sql.py)", "botwire/engines/"),
    ("FastAPI", "fastapi/"),
    ("Starlette", "starlette/"),
    ("uvicorn (httptools protocol)", "uvicorn/"),
    ("pydantic", "pydantic"),
    ("json", "json/"),
    ("sqlite3 module", "sqlite3/"),
    ("thread pool (to_thread)", "concurrent/"),
    ("thread pool (to_thread)", "threading.py"),
    ("asyncio", "asyncio/"),
]


def profile(server: Server, cfg: Settings, seconds: float, tmp: str,
            seed: int) -> dict[str, Any] | None:
    """py-spy (``--gil``: the thread holding the GIL) on the server under assistant-request."""
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy") or os.path.join(
        os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        log("profile skipped: needs py-spy (pip install py-spy, or PY_SPY=/path/to/py-spy)")
        return None
    raw = os.path.join(tmp, "profile.txt")
    run = Settings(cfg.callers, cfg.conns, seconds + 2, cfg.warmup, cfg.unknown)
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(measure, server, "assistant-request", run, seed)
        time.sleep(cfg.warmup + 1)
        out = subprocess.run(
            [spy, "record", "--pid", str(server.pids()[-1]), "--duration", str(int(seconds)),
             "--rate", "250", "--format", "raw", "--output", raw, "--nonblocking", "--gil"],
            capture_output=True, timeout=seconds + 60, check=False)
        measured = load.result()
    if out.returncode != 0 or not os.path.exists(raw):
        log(f"profile failed: {out.stderr.decode(errors='replace')[-500:]}")
        return None
    self_frames: Counter[str] = Counter()
    self_layers: Counter[str] = Counter()
    total = 0
    with open(raw) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            frames = stack.split(";")
            total += int(count)
            self_frames[re.sub(r":\d+\)$", ")", frames[-1])] += int(count)
            self_layers[layer_of(frames)] += int(count)
    return {"samples": total, "rate": 250, "seconds": seconds, "load": measured,
            "self_frames": self_frames.most_common(25), "self_layers": self_layers.most_common()}


# -- the report ----------------------------------------------------------------------------


def raw_json(res: Results, servers: list[Server]) -> dict[str, Any]:
    return {
        "goals": goals(res, [s.label for s in servers]),
        "closed_loop": {"|".join(k): v for k, v in res.runs.items()},
        "open_loop": {f"{k[0]}|{k[1]:g}": v for k, v in res.open_runs.items()},
        "populate": res.populate, "profile": res.profile, "notes": res.notes,
        "loadavg": res.loadavg,
    }


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for mod in ("botwire", "uvicorn", "fastapi", "starlette", "httptools", "uvloop", "psycopg",
                "redis"):
        try:
            out.append(f"{mod} {version(mod)}")
        except PackageNotFoundError:
            out.append(f"{mod} (not installed)")
    return ", ".join(out)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def ms(x: float) -> str:
    return "n/a" if x != x else (f"{x:.2f}" if x < 10 else f"{x:.1f}")


def stat(runs: list[dict[str, Any]], name: str) -> float:
    return med([r[name] for r in runs])


def render(res: Results, servers: list[Server], cfg: Settings, reps: int, elapsed: float,
           a: argparse.Namespace, argv: list[str] | None) -> str:
    labels = [s.label for s in servers]
    args = " ".join(argv if argv is not None else sys.argv[1:])
    L = ["# botwire voice benchmark\n",
         f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
         f"`python bench/bench_voice.py{' ' + args if args else ''}`, {elapsed:.0f} s. Median "
         f"of {reps} repetition(s) of {cfg.duration:g} s (after {cfg.warmup:g} s of warm-up) "
         f"per measurement; {cfg.conns} connections, closed loop; uvicorn workers: {a.workers}; "
         f"{a.unknown:.0%} of assistant-requests from unknown numbers.\n",
         f"* Machine: {os.cpu_count()} cores ({cpu_model()}), {platform.platform()}, Python "
         f"{platform.python_version()}; the load process, the servers, Redis and PostgreSQL "
         "share these cores. 1-minute load average at the start and the end of the run: "
         f"{' / '.join(f'{x:.1f}' for x in res.loadavg)}.",
         f"* {versions()}; botwire src digest {source_digest()}."]
    for note in res.notes:
        L.append(f"* {note}")
    L.append("")
    L.append("Stored before the run (the same callers in every store):\n")
    L.append("| store | callers | facts | calls | transcript turns | notes | filled in |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for label, p in res.populate.items():
        st = population_stats(p["callers"], a.seed)
        how = "copied from the cache" if p["cached"] else "populated"
        L.append(f"| {label} | {p['callers']:,} | {st['facts']:,} | {st['calls']:,} | "
                 f"{st['turns']:,} | {st['notes']:,} | {p['seconds']:.1f} s ({how}) |")
    L.append("")
    L += render_closed(res, labels, cfg)
    if res.open_runs:
        L += render_open(res, labels)
    if res.profile:
        L += render_profile(res.profile)
    L += render_goals(res, labels, cfg, reps)
    return "\n".join(L)


def goals(res: Results, labels: list[str]) -> list[dict[str, str]]:
    """The Goals rows, from this run's medians (``n/a`` where a measurement is missing)."""

    def over(x: float, y: float) -> float:
        return x / y if y and y == y else math.nan

    def verdict(value: float, ok: bool, stored: int) -> str:
        if value != value:
            return "n/a (not measured)"
        out = f"**{'met' if ok else 'not met'}**"
        return out + (f" (with {stored:,} callers stored)" if stored < FULL_CALLERS else "")

    def x(r: float) -> str:
        return "n/a" if r != r else f"{r:.2f}x"

    rows = []
    peer = res.runs.get(("redis-baseline", GOAL_KIND), [])
    peer_rps, peer_p99 = med([r["rps"] for r in peer]), med([r["p99_ms"] for r in peer])
    engines = [lb for lb in labels if lb.startswith("botwire")]
    for label in engines:
        runs = res.runs.get((label, GOAL_KIND), [])
        stored = res.populate.get(label, {}).get("callers", 0)
        rps, p99 = med([r["rps"] for r in runs]), med([r["p99_ms"] for r in runs])
        r = over(rps, peer_rps)
        rows.append({"row": f"call start, closed loop: req/s, {label}", "botwire": fmt(rps),
                     "peer": f"redis-baseline {fmt(peer_rps)}", "ratio": x(r),
                     "goal": f">= {TARGET_RPS_RATIO:.1f}x",
                     "verdict": verdict(r, r >= TARGET_RPS_RATIO, stored)})
        r = over(p99, peer_p99)
        rows.append({"row": f"call start, closed loop: p99, {label}", "botwire": f"{ms(p99)} ms",
                     "peer": f"redis-baseline {ms(peer_p99)} ms", "ratio": x(r),
                     "goal": f"<= {TARGET_P99_RATIO:.1f}x",
                     "verdict": verdict(r, r <= TARGET_P99_RATIO, stored)})
    rates = sorted({rate for _, rate in res.open_runs})
    for label in engines:
        stored = res.populate.get(label, {}).get("callers", 0)
        for rate in rates:
            p99 = med([r["p99_ms"] for r in res.open_runs.get((label, rate), [])])
            pp99 = med([r["p99_ms"] for r in res.open_runs.get(("redis-baseline", rate), [])])
            peer_cell = f"redis-baseline {ms(pp99)} ms" if pp99 == pp99 else "n/a"
            rows.append({"row": f"call start, open loop {rate:g}/s: p99, {label}",
                         "botwire": f"{ms(p99)} ms", "peer": peer_cell,
                         "ratio": x(over(p99, pp99)), "goal": f"<= {TARGET_P99_MS:g} ms",
                         "verdict": verdict(p99, p99 <= TARGET_P99_MS, stored)})
    return rows


def render_goals(res: Results, labels: list[str], cfg: Settings, reps: int) -> list[str]:
    rows = goals(res, labels)
    if not rows:
        return []
    L = ["## Goals\n",
         f"From this run's medians over {reps} repetition(s). Call start: the Vapi "
         f"`assistant-request`; closed loop: {cfg.conns} requests always in flight; open loop: "
         "Poisson arrivals at the rate named, latency from the scheduled arrival. The peer is "
         "redis-baseline, measured in the same run; ratio = botwire / peer. The open-loop goal "
         "is on botwire's p99 itself; the peer's p99 at the same rate is there to compare.\n",
         "| row | botwire | floor or peer | ratio | goal | verdict |",
         "|---|---:|---|---:|---:|---|"]
    for g in rows:
        L.append(f"| {g['row']} | {g['botwire']} | {g['peer']} | {g['ratio']} | {g['goal']} | "
                 f"{g['verdict']} |")
    L.append("")
    return L


def render_closed(res: Results, labels: list[str], cfg: Settings) -> list[str]:
    L = [f"## Closed loop, {cfg.conns} requests in flight\n",
         "| subject | request | req/s | p50 ms | p90 ms | p99 ms | max ms | bad | errors | "
         "server CPU µs/req | load CPU µs/req |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label in labels:
        for kind in KINDS:
            runs = res.runs.get((label, kind))
            if not runs:
                continue
            name = kind if kind in ("healthz", "assistant-request", "end-of-call-report") \
                else f"tool-calls {kind}"
            L.append(f"| {label} | {name} | {fmt(stat(runs, 'rps'))} | "
                     f"{ms(stat(runs, 'p50_ms'))} | {ms(stat(runs, 'p90_ms'))} | "
                     f"{ms(stat(runs, 'p99_ms'))} | {ms(stat(runs, 'max_ms'))} | "
                     f"{sum(r['bad'] for r in runs)} | {sum(r['errors'] for r in runs)} | "
                     f"{fmt(stat(runs, 'server_cpu_us'))} | {fmt(stat(runs, 'loadgen_cpu_us'))} |")
    L.append("")
    L.append("bad: answers with the wrong status or shape, errors: socket errors (totals over "
             "the repetitions). CPU: user + system time of the server's processes and of the "
             "load process over the requests answered.\n")
    peer = res.runs.get(("redis-baseline", "assistant-request"))
    rows = [lb for lb in labels if lb.startswith("botwire") and (lb, "assistant-request")
            in res.runs]
    if peer and rows:
        L.append("Ratios, assistant-request: botwire / redis-baseline (above 1: botwire slower; "
                 "req/s: below 1), and over the same server's /healthz:\n")
        L.append("| subject | p50 / peer | p99 / peer | req/s / peer | server CPU / peer | "
                 "p50 / own healthz |")
        L.append("|---|---:|---:|---:|---:|---:|")
        for label in rows:
            runs = res.runs[(label, "assistant-request")]
            health = res.runs.get((label, "healthz"))

            L.append(f"| {label} | {ratio(runs, peer, 'p50_ms')} | "
                     f"{ratio(runs, peer, 'p99_ms')} | {ratio(runs, peer, 'rps')} | "
                     f"{ratio(runs, peer, 'server_cpu_us')} | "
                     f"{ratio(runs, health, 'p50_ms')} |")
        L.append("")
    return L


def ratio(runs: list[dict[str, Any]], over: list[dict[str, Any]] | None, name: str) -> str:
    return f"{stat(runs, name) / stat(over, name):.2f}x" if over else "n/a"


def render_open(res: Results, labels: list[str]) -> list[str]:
    L = ["## Open loop: assistant-request at a fixed arrival rate\n",
         "Poisson arrivals (sent /s: the rate drawn); latency from the scheduled arrival, so a "
         "backlog counts in full.\n",
         "| subject | offered /s | sent /s | p50 ms | p90 ms | p99 ms | max ms | bad | "
         "server CPU µs/req |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (label, rate), runs in sorted(res.open_runs.items(),
                                      key=lambda kv: (labels.index(kv[0][0]), kv[0][1])):
        L.append(f"| {label} | {rate:g} | {fmt(stat(runs, 'rps'))} | {ms(stat(runs, 'p50_ms'))}"
                 f" | {ms(stat(runs, 'p90_ms'))} | {ms(stat(runs, 'p99_ms'))} | "
                 f"{ms(stat(runs, 'max_ms'))} | {sum(r['bad'] for r in runs)} | "
                 f"{fmt(stat(runs, 'server_cpu_us'))} |")
    L.append("")
    return L


def render_profile(pr: dict[str, Any]) -> list[str]:
    busy = pr["samples"] / (pr["rate"] * pr["seconds"])
    rps = pr["load"]["rps"]
    per_req = busy / rps * 1e6 if rps else math.nan
    L = ["## Profile: botwire-sqlite under assistant-request (py-spy --gil)\n",
         f"{pr['samples']} samples of whichever thread held the GIL ({busy:.0%} of the time) at "
         f"{fmt(rps)} req/s: about {fmt(per_req)} µs of GIL time per request. Time in C with "
         "the GIL released (SQLite's own work, socket writes) is not sampled.\n",
         "| layer (self time) | % | ≈ µs per request |", "|---|---:|---:|"]
    for layer, n in pr["self_layers"]:
        L.append(f"| {layer} | {100 * n / pr['samples']:.1f} | "
                 f"{fmt(per_req * n / pr['samples'])} |")
    L += ["", "| hottest functions (self) | % |", "|---|---:|"]
    for frame, n in pr["self_frames"][:20]:
        L.append(f"| `{frame[:120]}` | {100 * n / pr['samples']:.1f} |")
    L.append("")
    return L


if __name__ == "__main__":
    sys.exit(main())
