#!/usr/bin/env python3
"""MCP benchmark: ``recall_memory`` through ``/mcp`` next to the same tool through the Vapi
webhook, in one run against one ``botwire serve`` process.

Run with ``make bench-mcp`` (or ``python bench/bench_mcp.py [--quick] [...]``); see ``--help``.
It prints a markdown report and writes it to ``bench/results/mcp.md`` (every repetition's
numbers in ``mcp.md.json``). Progress goes to stderr.

What one run does:

* **The caller.** ``+14155550123`` holds 40 searchable documents: 12 facts (11 brought by a
  past call's extraction, each with its provenance record, and one ``open:`` item), 2 past
  calls (their records and 10 transcript turns each) and 6 notes. They are written through the
  public API as the webhooks write them: ``voice.core.end_call`` for the calls,
  ``voice.core.remember_fact`` for the notes, ``Memory.set_many`` for the open item. Beside it
  ``--others`` (default 1,000) callers of bench_voice's kind, so the index is not the caller's
  alone.
* **The server**, started as users start it: ``python -m botwire serve --host 127.0.0.1 --port
  P --database URL`` (one worker) with ``BOTWIRE_HOME=<tempdir>``, ``BOTWIRE_VAPI_SECRET``,
  ``BOTWIRE_VAPI_ASSISTANT_ID`` and ``BOTWIRE_WRITES_PER_DAY=0``, on SQLite in the temp dir;
  with ``--postgres-url`` a second server on PostgreSQL, in a private schema
  ``botwire_bench_<random>`` (ANALYZEd after filling, dropped at the end), measured after the
  first with the same procedure.
* **Kinds**, each the same ``recall_memory`` on the same caller with the same sequence of
  queries (``order``, ``refund``, ``blender``, ...), sequential round trips (one in flight):

  - ``healthz``: ``GET /healthz``, the floor (raw HTTP/1.1, keep-alive);
  - ``webhook``: ``POST /voice/vapi`` with a Vapi ``tool-calls`` message of the exact shape of
    ``tests/voice/fixtures/vapi/tool-calls.json`` (a new tool-call id each time), the secret in
    ``x-vapi-secret`` (Vapi's default mode); raw HTTP/1.1, keep-alive;
  - ``webhook-httpx2``: the same request through ``httpx2.AsyncClient``, the HTTP client the
    ``mcp`` SDK uses: separates the client library's cost from MCP's;
  - ``mcp-post``: one stateless JSON-RPC ``tools/call`` POSTed to ``/mcp`` with
    ``MCP-Protocol-Version: 2025-11-25`` and no session (raw HTTP/1.1, keep-alive): what the
    server does for any MCP tool call, without a client library;
  - ``mcp-post-2026``: the same in the SDK's sessionless ``2026-07-28`` era (its envelope in
    ``_meta`` and the ``Mcp-Method`` / ``Mcp-Name`` headers, as the SDK's ``Client(mode="auto")``
    sends it), which the SDK answers without a per-request transport;
  - ``mcp-session``: the ``mcp`` SDK's ``streamable_http_client`` + ``ClientSession``, initialized
    once (and ``list_tools`` once, as a platform lists them at call start) and reused for every
    ``call_tool``, as a platform's long-lived connection would be;
  - ``mcp-connect``: what Vapi does per tool call ("a new connection to the MCP server" each
    time): a new TCP connection, ``initialize``, ``notifications/initialized``, ``tools/call``,
    close (raw HTTP/1.1), the caller named by ``X-Call-Id`` of a call whose ``assistant-request``
    webhook the server answered at the start.

  MCP requests carry the Vapi secret as ``Authorization: Bearer`` (the platform's own secret,
  as the webhook) and, but for ``mcp-connect``, the caller in ``X-Botwire-Caller``. Every
  answer is checked (status, a tool result that is not an error); the webhook's and MCP's
  answers to the same query are compared once, word for word, before measuring.
* **Measuring**: one load process (uvloop) holds every connection. After ``--warmup`` requests
  of each kind, each repetition (``--reps``, default 3) measures ``--requests`` (default
  3,000) round trips per kind in blocks of ``--block`` (default 250), the kinds taking turns
  block by block in an order that rotates between blocks and reverses between repetitions, so
  noise on the shared machine hits every kind alike. Latency is from writing the request to
  the end of the answer, in the load process. The server's CPU time (its POSIX CPU clock,
  every thread, ns resolution; its kernel share from ``/proc/<pid>/stat``) is read between
  blocks, while the load process waits, and charged to the block's kind; the load process's
  own CPU likewise (``getrusage``).
* **The SDK alone** (``--floor-requests``, default 3,000; 0 skips it): the ``mcp`` SDK's
  stateless ``StreamableHTTPSessionManager`` in process, over a tool answering a fixed text,
  driven through its ASGI callable: its own cost per request with JSON and with SSE answers,
  without its OpenTelemetry middleware, in the 2026-07-28 era, and for ``initialize``; and what
  pydantic costs for one message.

The report gives, per kind, the median over repetitions of p50 / p90 / p99 / mean, server and
client CPU per request, and the ratio MCP p50 / webhook p50 (per repetition, and of the
medians) against the target of 1.5x. ``--profile SECONDS`` records the server with py-spy
(``--gil``; ``PY_SPY=/path/to/py-spy``, else ``py-spy`` on PATH or beside the interpreter)
under ``webhook`` and under ``mcp-post`` for SECONDS each, side by side by phase (the raw
stacks are kept beside the report), and the SDK floor's time by library.
bench/MCP_RESULTS.md reads the results.

The default run takes about 2 minutes on a 2-core machine (twice that with
``--postgres-url``, plus 2 x SECONDS with ``--profile``); ``--quick``: 1 repetition of 500
requests per kind, 200 other callers (about 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_core import source_digest  # noqa: E402  (shared with the other benchmarks)
from bench_server import cpu_seconds_of, fmt  # noqa: E402
from bench_voice import (  # noqa: E402
    FILLER,
    NOTES,
    SECRET,
    TOPICS,
    PgSchemas,
    Server,
    cpu_model,
    exchange,
    log,
    pct,
    populate_botwire,
)

ROOT = os.path.dirname(HERE)
SEED = 20240611
CALLER = "+14155550123"
CALL_ID = "call-bench-mcp-1"  # the Vapi call mcp-connect names in X-Call-Id
PROTOCOL = "2025-11-25"  # MCP-Protocol-Version of the raw requests (the SDK's handshake version)
MODERN = "2026-07-28"  # the SDK's sessionless era: every POST carries its own envelope
MODERN_META = {"io.modelcontextprotocol/protocolVersion": MODERN,
               "io.modelcontextprotocol/clientInfo": {"name": "bench-mcp", "version": "1"},
               "io.modelcontextprotocol/clientCapabilities": {}}
TARGET = 1.5  # MCP p50 <= 1.5x the webhook's
KINDS = ("healthz", "webhook", "webhook-httpx2", "mcp-post", "mcp-post-2026", "mcp-session",
         "mcp-connect")
MCP_KINDS = ("mcp-post", "mcp-post-2026", "mcp-session", "mcp-connect")
QUERIES = ("order", "refund", "blender", "delivery address", "morning", "charged twice",
           "newsletter", "Leeds")
FIXTURE = os.path.join(ROOT, "tests", "voice", "fixtures", "vapi", "tool-calls.json")
TOOL_FRAMES = (  # the tool and its thread (by module too: py-spy loses a coroutine's outer frames)
    "tool_in (", "_worker (concurrent/futures/thread.py", "(botwire/voice/core.py",
    "(botwire/voice/context.py", "(botwire/memory.py", "(botwire/engines/", "(botwire/_search.py",
    "(botwire/_codec.py")
HANDOFF = "ThreadPoolExecutor.submit ("
PHASES = [  # (phase, substrings of a frame); a sample goes to its innermost frame's phase
    ("botwire /mcp glue: answer, bind, result", (
        "answer (botwire/server/mcp.py", "bind (botwire/server/mcp.py", "(botwire/mcp_tools.py",
        "(botwire/server/calls.py")),
    ("key check (Gate, authenticate)", ("authenticate (botwire/server/mcp.py",
                                        "_is_voice_secret")),
    ("pydantic (mcp_types validation, dumps)", ("(pydantic", "(mcp_types/")),
    ("anyio (task groups, cancel scopes, memory streams)", ("(anyio/", "(sniffio/")),
    ("MCP SDK: JSON-RPC dispatch (runner, dispatcher, OpenTelemetry)", (
        "(mcp/server/runner.py", "(mcp/shared/", "(mcp/server/_otel", "(mcp/server/lowlevel",
        "(mcp/server/context", "(mcp/server/connection")),
    ("MCP SDK: stateless session manager, streamable HTTP transport", ("(mcp/",)),
    ("FastAPI route matching (every route tried before /mcp)", (
        "_IncludedRouter._match", "APIRouter.matches", "Route.matches", "_EffectiveRouteContext",
        "Mount.matches", "_restore_fastapi_scope_key")),
    ("webhook: verify, parse, answer (server/voice.py, platforms)", (
        "(botwire/server/voice.py", "(botwire/voice/")),
    ("FastAPI / Starlette (middleware stack, Request, Response)", ("(fastapi/", "(starlette/")),
    ("botwire Edge, middlewares, protocol", ("(botwire/",)),
    ("uvicorn (HTTP parsing, socket writes)", ("(uvicorn/", "httptools")),
]
TOOL_PHASE = "recall_memory itself (voice.core, Memory, SQLite search in its thread)"
HANDOFF_PHASE = "handing the search to the thread pool (to_thread submit)"


# -- the caller: 40 documents ---------------------------------------------------------------

FACTS = {
    "customer_name": "Ana Ruiz", "last_order": "ORDER-48213", "account_tier": "gold",
    "city": "Leeds", "preferred_language": "en", "phone_type": "mobile",
    "contact_window": "mornings", "product_interest": "blender", "payment_method": "card",
    "delivery_preference": "locker", "address": {"street": "12 Elm St", "zip": "LS1 4AP"},
}
OPEN = {"open:refund": "refund for ORDER-48213 pending since the last call"}
CALL_TOPICS = (1, 0)  # refund, then order (TOPICS of bench_voice)
DOCS = {"facts": len(FACTS) + len(OPEN), "calls": 2, "turns": 20, "notes": 6}  # 40


def the_calls(now: float) -> list[Any]:
    """The caller's two past calls, 10 turns each, oldest first."""
    from botwire.voice import CallEnd, Turn

    fill = {"order": FACTS["last_order"], "city": FACTS["city"], "name": "Ana"}
    out = []
    for j, topic in enumerate(CALL_TOPICS):
        _, ask, answer, summary = TOPICS[topic]
        lines = [*FILLER[:2], ("user", ask), ("assistant", answer), *FILLER[2:],
                 ("user", "Thanks."), ("assistant", "Bye!")]
        ended = now - (30 - 10 * j) * 86400.0
        step = 240.0 / (len(lines) + 1)
        turns = tuple(Turn(role, text.format(**fill), ended - 240 + (k + 1) * step)
                      for k, (role, text) in enumerate(lines))
        out.append(CallEnd(
            platform="vapi", call_id=f"hist-mcp-{j}", caller=CALLER, started_at=ended - 240,
            ended_at=ended, summary=summary.format(**fill), outcome="customer-ended-call",
            successful=True, turns=turns))
    assert sum(len(c.turns) for c in out) == DOCS["turns"]
    return out


def populate(url: str, others: int, seed: int) -> dict[str, Any]:
    """The caller (through the public API) and ``others`` callers of bench_voice's kind."""
    from botwire import Memory
    from botwire.engines import open_engine
    from botwire.voice import core

    started = time.perf_counter()
    if others:
        populate_botwire(url, others, seed, threads=4 if url.startswith("postgres") else 1)
    engine = open_engine(url)
    try:
        m = Memory(f"phone:{CALLER}", engine=engine)
        m.set_many(OPEN)
        calls = the_calls(time.time())
        for j, event in enumerate(calls):  # the first call's extraction brings the facts
            core.run(core.end_call(replace(event, extracted=FACTS) if j == 0 else event), m)
        for k, note in enumerate(NOTES[:DOCS["notes"]]):
            core.run(core.remember_fact(note, calls[k % 2].call_id), m)
        m.search("order")  # the search index catches up
        stored = count_documents(m)
    finally:
        engine.close()
    return {"seconds": time.perf_counter() - started, "others": others, "stored": stored}


def count_documents(m: Any) -> dict[str, int]:
    """What the caller's namespace holds, by kind (bookkeeping keys apart)."""
    from botwire.voice import core

    keys = [k for k, _ in m.items(include_internal=True)]
    public = [k for k in keys if not k.startswith("~") and k != core.LAST_CALL]
    return {
        "facts": len(public),
        "calls": len(m.log(core.CALLS).read()),
        "turns": len(m.log(core.CONVERSATION).read()),
        "notes": len(m.log(core.NOTES).read()),
        "bookkeeping keys": len(keys) - len(public),
    }


# -- the load process (``--load SPEC``) ------------------------------------------------------


class Client:
    """The requests of every kind, on connections held for the whole run."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.host, self.port = spec["host"], spec["port"]
        self.base = f"http://{self.host}:{self.port}"
        self.count = 0
        self.conns: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        with open(FIXTURE) as f:
            self.fixture = json.load(f)
        self.stack = contextlib.AsyncExitStack()
        self.session: Any = None
        self.http: Any = None
        self.sent = Counter[str]()  # HTTP requests the SDK's client sent, by method
        self.used: dict[str, float] = {}  # when each raw connection was last used

    # the request bodies --------------------------------------------------------------------

    def webhook_body(self, query: str) -> bytes:
        """The fixture's tool-calls message, for our caller and ``query``."""
        self.count += 1
        msg = json.loads(json.dumps(self.fixture["message"]))
        msg["timestamp"] = int(time.time() * 1000)
        msg["call"] = {"id": CALL_ID, "customer": {"number": CALLER}}
        call = {"id": f"toolu_{self.count}", "type": "function",
                "function": {"name": "recall_memory", "arguments": {"query": query}}}
        msg["toolCallList"] = [call]
        msg["toolWithToolCallList"][0]["toolCall"] = call
        return json.dumps({"message": msg}, separators=(",", ":")).encode()

    def raw(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body

    def mcp_headers(self, bound: dict[str, str]) -> dict[str, str]:
        return {"Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": PROTOCOL, "Authorization": f"Bearer {SECRET}", **bound}

    def rpc(self, method: str, params: dict[str, Any], notify: bool = False) -> bytes:
        self.count += 1
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if not notify:
            msg["id"] = self.count
        return json.dumps(msg, separators=(",", ":")).encode()

    # setup ---------------------------------------------------------------------------------

    async def open(self) -> None:
        import httpx2
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        for kind in ("healthz", "webhook", "mcp-post", "mcp-post-2026"):
            self.conns[kind] = await asyncio.open_connection(self.host, self.port)

        async def count(request: Any) -> None:
            self.sent[request.method] += 1

        self.http = await self.stack.enter_async_context(httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {SECRET}", "X-Botwire-Caller": CALLER},
            event_hooks={"request": [count]}))
        self.webhook_http = await self.stack.enter_async_context(httpx2.AsyncClient())
        read, write = await self.stack.enter_async_context(
            streamable_http_client(f"{self.base}/mcp", http_client=self.http))
        self.session = await self.stack.enter_async_context(ClientSession(read, write))
        init = await self.session.initialize()
        self.negotiated = init.protocol_version
        tools = await self.session.list_tools()
        self.tools = [t.name for t in tools.tools]
        # the call mcp-connect names: its assistant-request, as Vapi sends it at call start
        body = json.dumps({"message": {
            "type": "assistant-request", "timestamp": int(time.time() * 1000),
            "call": {"id": CALL_ID, "customer": {"number": CALLER}},
            "customer": {"number": CALLER}}}).encode()
        status, answer = await self.exchange("webhook", self.raw(
            "POST", "/voice/vapi", {"Content-Type": "application/json",
                                    "x-vapi-secret": SECRET}, body))
        assert status == 200 and b"Ana Ruiz" in answer, (status, answer[:300])
        await asyncio.sleep(0.2)  # the call's binding is recorded after the answer

    async def close(self) -> None:
        for _, writer in self.conns.values():
            writer.close()
        await self.stack.aclose()

    async def exchange(self, kind: str, request: bytes) -> tuple[int, bytes]:
        reader, writer = self.conns[kind]
        self.used[kind] = time.monotonic()
        return await exchange(reader, writer, request)

    async def prime(self, kind: str) -> None:
        """Before a block, untimed: a connection idle long enough for the server to close it
        (uvicorn's keep-alive timeout is 5 s) opened again, then one request of the kind."""
        if kind in self.conns and time.monotonic() - self.used.get(kind, 0) > 2:
            self.conns[kind][1].close()
            self.conns[kind] = await asyncio.open_connection(self.host, self.port)
        await self.op(kind)(QUERIES[0])

    # one round trip of each kind: the tool's answer text ------------------------------------

    async def healthz(self, query: str) -> str:
        status, body = await self.exchange("healthz", self.raw("GET", "/healthz", {}))
        check(status == 200, "healthz", status, body)
        return ""

    async def webhook(self, query: str) -> str:
        status, body = await self.exchange("webhook", self.raw(
            "POST", "/voice/vapi", {"Content-Type": "application/json", "x-vapi-secret": SECRET},
            self.webhook_body(query)))
        return webhook_text(status, body)

    async def webhook_httpx2(self, query: str) -> str:
        r = await self.webhook_http.post(
            f"{self.base}/voice/vapi", content=self.webhook_body(query),
            headers={"Content-Type": "application/json", "x-vapi-secret": SECRET})
        return webhook_text(r.status_code, r.content)

    async def mcp_post(self, query: str) -> str:
        body = self.rpc("tools/call", {"name": "recall_memory", "arguments": {"query": query}})
        status, answer = await self.exchange("mcp-post", self.raw(
            "POST", "/mcp", self.mcp_headers({"X-Botwire-Caller": CALLER}), body))
        return mcp_text(status, answer)

    async def mcp_post_2026(self, query: str) -> str:
        body = json.dumps({"jsonrpc": "2.0", "id": self.count, "method": "tools/call", "params": {
            "name": "recall_memory", "arguments": {"query": query}, "_meta": MODERN_META}},
            separators=(",", ":")).encode()
        self.count += 1
        headers = self.mcp_headers({"X-Botwire-Caller": CALLER})
        headers.update({"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call",
                        "Mcp-Name": "recall_memory"})
        status, answer = await self.exchange("mcp-post-2026", self.raw("POST", "/mcp", headers,
                                                                       body))
        return mcp_text(status, answer)

    async def mcp_session(self, query: str) -> str:
        res = await self.session.call_tool("recall_memory", {"query": query})
        check(not res.is_error, "mcp-session", 200, res.content[0].text.encode())
        return str(res.content[0].text)

    async def mcp_connect(self, query: str) -> str:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            headers = self.mcp_headers({"X-Call-Id": CALL_ID})
            init = self.rpc("initialize", {
                "protocolVersion": PROTOCOL, "capabilities": {},
                "clientInfo": {"name": "bench-mcp", "version": "1"}})
            status, body = await exchange(reader, writer, self.raw("POST", "/mcp", headers, init))
            check(status == 200 and b'"protocolVersion"' in body, "initialize", status, body)
            done = self.rpc("notifications/initialized", {}, notify=True)
            status, body = await exchange(reader, writer, self.raw("POST", "/mcp", headers, done))
            check(status == 202, "notifications/initialized", status, body)
            call = self.rpc("tools/call", {"name": "recall_memory",
                                           "arguments": {"query": query}})
            status, body = await exchange(reader, writer, self.raw("POST", "/mcp", headers, call))
            return mcp_text(status, body)
        finally:
            writer.close()

    def op(self, kind: str) -> Callable[[str], Awaitable[str]]:
        return getattr(self, kind.replace("-", "_"))  # type: ignore[no-any-return]


class Bad(Exception):
    pass


def check(ok: bool, what: str, status: int, body: bytes) -> None:
    if not ok:
        raise Bad(f"{what}: {status} {body[:300]!r}")


def webhook_text(status: int, body: bytes) -> str:
    check(status == 200, "webhook", status, body)
    results = json.loads(body)["results"]
    check(len(results) == 1 and "result" in results[0], "webhook", status, body)
    return str(results[0]["result"])


def mcp_text(status: int, body: bytes) -> str:
    check(status == 200, "mcp", status, body)
    res = json.loads(body).get("result") or {}
    check(res.get("isError") is False, "mcp", status, body)
    return str(res["content"][0]["text"])


def order_of(kinds: list[str], rep: int, block: int) -> list[str]:
    """Kinds rotated by ``block``, reversed on odd repetitions."""
    shift = block % len(kinds)
    out = kinds[shift:] + kinds[:shift]
    return out[::-1] if rep % 2 else out


def cpu_seconds_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def wait_go() -> None:
    """Block (the whole loop: nothing is in flight) until the main process read the CPU."""
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("the main process went away")


async def load(spec: dict[str, Any]) -> dict[str, Any]:
    kinds: list[str] = spec["kinds"]
    client = Client(spec)
    await client.open()
    clock = time.perf_counter_ns
    out: dict[str, Any] = {"negotiated": client.negotiated, "tools": client.tools,
                           "lat": {}, "cpu": {}, "bad": {}}
    try:
        # the same tool, the same answer: the webhook's text is MCP's, word for word
        for query in QUERIES:
            texts = {k: await client.op(k)(query) for k in kinds if k != "healthz"}
            if len(set(texts.values())) != 1:
                raise Bad(f"answers differ for {query!r}: {json.dumps(texts)[:2000]}")
        out["example"] = {q: await client.webhook(q) for q in QUERIES[:2]}
        for kind in kinds:  # warm-up
            for i in range(spec["warmup"]):
                await client.op(kind)(QUERIES[i % len(QUERIES)])
        sent0 = sum(client.sent.values())
        session_calls = 0
        blocks = math.ceil(spec["requests"] / spec["block"])
        for rep in range(spec["reps"]):
            lat: dict[str, list[int]] = defaultdict(list)
            cpu: dict[str, float] = defaultdict(float)
            bad: Counter[str] = Counter()
            for b in range(blocks):
                size = min(spec["block"], spec["requests"] - b * spec["block"])
                for kind in order_of(kinds, rep, b):
                    op = client.op(kind)
                    await client.prime(kind)
                    print(f"BLOCK {kind}", flush=True)
                    wait_go()
                    c0 = cpu_seconds_self()
                    for i in range(size):
                        query = QUERIES[(b * spec["block"] + i) % len(QUERIES)]
                        t0 = clock()
                        try:
                            await op(query)
                        except (Bad, OSError, asyncio.IncompleteReadError, ValueError,
                                KeyError) as exc:
                            bad[kind] += 1
                            if bad[kind] == 1:
                                print(f"bad {kind}: {exc}", file=sys.stderr, flush=True)
                            continue
                        lat[kind].append(clock() - t0)
                    cpu[kind] += cpu_seconds_self() - c0
                    if kind == "mcp-session":
                        session_calls += size + 1  # and its prime
                    print(f"DONE {kind}", flush=True)
                    wait_go()
            out["lat"][rep], out["cpu"][rep], out["bad"][rep] = lat, cpu, dict(bad)
        out["sdk_http_per_call"] = (sum(client.sent.values()) - sent0) / session_calls \
            if session_calls else math.nan
    finally:
        await client.close()
    return out


def load_main(spec_text: str) -> int:
    """Entry point of the load process: print its results as JSON on the last line."""
    spec = json.loads(spec_text)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    res = asyncio.run(load(spec))
    print("RESULT " + json.dumps(res), flush=True)
    return 0


# -- the run ---------------------------------------------------------------------------------


def measure(server: Server, a: argparse.Namespace, kinds: list[str]) -> dict[str, Any]:
    """Every kind, interleaved, in one load process; the server's CPU per block."""
    spec = {"host": "127.0.0.1", "port": server.port, "kinds": kinds, "reps": a.reps,
            "requests": a.requests, "block": a.block, "warmup": a.warmup}
    clock = ProcessClock(server.pids()[-1])
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--load",
                             json.dumps(spec)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    server_cpu: dict[str, list[float]] = defaultdict(list)  # by kind: one entry per block
    ticks: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # by kind: utime, stime
    blocks_seen: Counter[str] = Counter()
    result = None
    started, mark, mark_ticks = time.monotonic(), 0.0, (0, 0)
    per_rep = math.ceil(a.requests / a.block)
    for raw in proc.stdout:
        line = raw.decode().strip()
        if line.startswith("BLOCK "):
            mark, mark_ticks = clock.seconds(), user_system_ticks(server.pids()[-1])
        elif line.startswith("DONE "):
            kind = line[5:]
            server_cpu[kind].append(clock.seconds() - mark)
            now = user_system_ticks(server.pids()[-1])
            ticks[kind][0] += now[0] - mark_ticks[0]
            ticks[kind][1] += now[1] - mark_ticks[1]
            blocks_seen[kind] += 1
            if kind == kinds[0] and blocks_seen[kind] % per_rep == 0:
                log(f"  {server.label}: repetition {blocks_seen[kind] // per_rep}/{a.reps} "
                    f"measured ({time.monotonic() - started:.0f} s)")
        elif line.startswith("RESULT "):
            result = json.loads(line[7:])
            continue
        else:
            continue
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    proc.wait(timeout=60)
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"load process failed ({proc.returncode})")
    result["cpu_clock"] = "POSIX CPU clock" if clock.exact else "/proc/<pid>/stat (10 ms ticks)"
    result["server_system_share"] = {k: t[1] / (t[0] + t[1]) if t[0] + t[1] else math.nan
                                     for k, t in ticks.items()}
    result["server_cpu"] = {}
    for kind, blocks in server_cpu.items():  # split back into repetitions
        result["server_cpu"][kind] = [sum(blocks[r * per_rep:(r + 1) * per_rep])
                                      for r in range(a.reps)]
    return result


def stats(result: dict[str, Any], kinds: list[str], requests: int) -> dict[str, Any]:
    """Per kind: every repetition's statistics and their medians."""
    out: dict[str, Any] = {}
    for kind in kinds:
        runs = []
        for rep, lat in sorted(result["lat"].items(), key=lambda kv: int(kv[0])):
            ns = sorted(lat.get(kind, []))
            n = len(ns)
            cpu = result["server_cpu"].get(kind, [math.nan] * (int(rep) + 1))[int(rep)]
            runs.append({
                "requests": n, "bad": result["bad"][rep].get(kind, 0),
                "p50_ms": pct(ns, 50), "p90_ms": pct(ns, 90), "p99_ms": pct(ns, 99),
                "mean_ms": sum(ns) / n / 1e6 if n else math.nan,
                "max_ms": ns[-1] / 1e6 if ns else math.nan,
                "server_cpu_us": cpu / n * 1e6 if n else math.nan,
                "client_cpu_us": result["cpu"][rep].get(kind, math.nan) / n * 1e6
                if n else math.nan,
            })
        out[kind] = {"runs": runs, **{k: med([r[k] for r in runs]) for k in runs[0]
                                      if k not in ("requests", "bad")},
                     "requests": sum(r["requests"] for r in runs),
                     "bad": sum(r["bad"] for r in runs),
                     "system_share": result["server_system_share"].get(kind, math.nan)}
    return out


def med(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else math.nan


def user_system_ticks(pid: int) -> tuple[int, int]:
    """utime and stime of a process, in clock ticks (``/proc/<pid>/stat``)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return int(fields[11]), int(fields[12])
    return 0, 0


class ProcessClock:
    """A process's CPU time (every thread, user + system) in ns resolution: its POSIX CPU
    clock (``clock_getcpuclockid``); ``/proc/<pid>/stat`` (10 ms ticks) where that fails."""

    def __init__(self, pid: int) -> None:
        import ctypes
        import ctypes.util

        class Timespec(ctypes.Structure):
            _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]

        self.pid, self.ts, self.ctypes = pid, Timespec(), ctypes
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.clock = ctypes.c_int()
        self.exact = self.libc.clock_getcpuclockid(pid, ctypes.byref(self.clock)) == 0 and \
            self.libc.clock_gettime(self.clock, ctypes.byref(self.ts)) == 0

    def seconds(self) -> float:
        if not self.exact:
            return cpu_seconds_of([self.pid])
        if self.libc.clock_gettime(self.clock, self.ctypes.byref(self.ts)) != 0:
            return math.nan
        return self.ts.sec + self.ts.nsec / 1e9


def routes_before_mcp() -> int | None:
    """How many routes the app's router tries before ``/mcp`` (included routers counted by
    their routes), in an app built as ``botwire serve`` builds it (not started)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("BOTWIRE_")}
    home = tempfile.mkdtemp(prefix="botwire-bench-mcp-routes-")
    try:
        for k in saved:
            del os.environ[k]
        os.environ["BOTWIRE_HOME"] = home
        from botwire.server.app import create_app

        def count(routes: list[Any]) -> int:
            n = 0
            for r in routes:
                sub = getattr(getattr(r, "original_router", None), "routes", None)
                n += count(sub) if sub is not None else 1
            return n

        routes = create_app().router.routes
        return count(routes[:[getattr(r, "path", None) for r in routes].index("/mcp")])
    except Exception:  # noqa: BLE001 - a figure for the report only
        return None
    finally:
        os.environ.pop("BOTWIRE_HOME", None)
        os.environ.update(saved)
        shutil.rmtree(home, ignore_errors=True)


def start_server(label: str, url: str, home: str) -> Server:
    server = Server.botwire(label, url, home, workers=1)
    return server.start()


# -- profiling (optional) --------------------------------------------------------------------


def spy_path() -> str | None:
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy") or os.path.join(
        os.path.dirname(sys.executable), "py-spy")
    return spy if os.path.exists(spy) else None


def phase_of(frames: list[str]) -> str:
    if HANDOFF in frames[-1]:
        return HANDOFF_PHASE
    if any(needle in frame for frame in frames for needle in TOOL_FRAMES):
        return TOOL_PHASE
    for frame in reversed(frames):
        for name, needles in PHASES:
            if any(needle in frame for needle in needles):
                return name
    return "event loop, asyncio, other"


def profile(server: Server, kind: str, seconds: float, raw: str) -> dict[str, Any] | None:
    """py-spy (``--gil``) on the server while a load process sends ``kind`` sequentially; the
    raw stacks are kept in ``raw``."""
    spy = spy_path()
    if spy is None:
        log("profile skipped: needs py-spy (PY_SPY=/path/to/py-spy, or py-spy on PATH)")
        return None
    spec = {"host": "127.0.0.1", "port": server.port, "kind": kind, "seconds": seconds + 3}
    with ThreadPoolExecutor(1) as pool:
        load_run = pool.submit(subprocess.run, [sys.executable, os.path.abspath(__file__),
                                                "--profile-load", json.dumps(spec)],
                               capture_output=True, timeout=seconds + 120, check=False)
        time.sleep(2)
        out = subprocess.run(
            [spy, "record", "--pid", str(server.pids()[-1]), "--duration", str(int(seconds)),
             "--rate", "500", "--format", "raw", "--output", raw, "--nonblocking", "--gil"],
            capture_output=True, timeout=seconds + 60, check=False)
        done = load_run.result()
    if out.returncode != 0 or not os.path.exists(raw):
        log(f"profile failed: {out.stderr.decode(errors='replace')[-500:]}")
        return None
    rate = json.loads(done.stdout.decode().strip().splitlines()[-1])["rps"]
    self_frames: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    total = 0
    with open(raw) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            frames = stack.split(";")
            n = int(count)
            total += n
            self_frames[re.sub(r":\d+\)$", ")", frames[-1])] += n
            phases[phase_of(frames)] += n
    return {"kind": kind, "samples": total, "rate": 500, "seconds": seconds, "rps": rate,
            "self_frames": self_frames.most_common(30), "phases": phases.most_common()}


async def profile_load(spec: dict[str, Any]) -> dict[str, Any]:
    client = Client(spec)
    await client.open()
    op = client.op(spec["kind"])
    await client.prime(spec["kind"])
    n, t_end = 0, time.monotonic() + spec["seconds"]
    started = time.monotonic()
    try:
        while time.monotonic() < t_end:
            await op(QUERIES[n % len(QUERIES)])
            n += 1
    finally:
        await client.close()
    return {"requests": n, "rps": n / (time.monotonic() - started)}


# -- the SDK alone, in process (``--sdk-floor``) ---------------------------------------------

FLOOR_TEXT = ("last_order: ORDER-48213\nuser said (2026-11-13 09:28 UTC): Where is my order "
              "ORDER-48213? It was due on Monday.\n" * 5)[:480]  # a recall answer's size
FLOOR_VARIANTS = (  # (label, json_response, era, OpenTelemetry middleware, method)
    ("stateless tools/call, JSON answer (botwire's settings)", True, PROTOCOL, True, "tools/call"),
    ("stateless tools/call, SSE answer (json_response=False)", False, PROTOCOL, True,
     "tools/call"),
    ("stateless tools/call, JSON, the SDK's OpenTelemetry middleware off", True, PROTOCOL, False,
     "tools/call"),
    (f"{MODERN} era tools/call (no per-request transport), JSON", True, MODERN, True,
     "tools/call"),
    ("stateless initialize, JSON", True, PROTOCOL, True, "initialize"),
)
FLOOR_GROUPS = [  # (group, substrings of a frame's file), for the floor's profile
    ("anyio / asyncio: per-request task, task group, cancel scopes, memory streams, events",
     ("(anyio/", "(asyncio/", "(sniffio/", "(contextlib.py", "(weakref.py", "(_weakrefset.py")),
    ("pydantic / mcp_types: validating and dumping the messages", ("(pydantic", "(mcp_types/")),
    ("MCP SDK: streamable HTTP transport, session manager", (
        "(mcp/server/streamable_http", "(mcp/server/transport_security")),
    ("MCP SDK: JSON-RPC dispatcher, runner, context streams", ("(mcp/",)),
    ("Starlette Request / Response", ("(starlette/",)),
]


async def sdk_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """A low-level ``Server`` with one tool answering a fixed text, behind a stateless
    ``StreamableHTTPSessionManager``, driven through its ASGI callable: the SDK's own cost per
    request, without sockets, HTTP parsing, botwire or the tool's work."""
    import mcp_types as types
    from mcp.server import Server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=[])

    async def call_tool(ctx: Any, params: Any) -> Any:
        return types.CallToolResult(content=[types.TextContent(type="text", text=FLOOR_TEXT)],
                                    is_error=False)

    async def one(manager: Any, scope: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
        given = False

        async def receive() -> dict[str, Any]:
            nonlocal given
            if given:  # the client stays: a disconnect would cancel the request
                await asyncio.sleep(3600)
            given = True
            return {"type": "http.request", "body": body, "more_body": False}

        out: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            out.append(message)

        await manager.handle_request(scope, receive, send)
        return out

    n = spec["n"]
    results = []
    for i, (label, json_response, era, otel, method) in enumerate(FLOOR_VARIANTS):
        if "variants" in spec and i not in spec["variants"]:
            continue
        server = Server("floor", on_list_tools=list_tools, on_call_tool=call_tool)
        if not otel:
            server.middleware = []
        manager = StreamableHTTPSessionManager(
            app=server, stateless=True, json_response=json_response,
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        headers = [(b"content-type", b"application/json"), (b"host", b"127.0.0.1"),
                   (b"accept", b"application/json, text/event-stream"),
                   (b"mcp-protocol-version", era.encode())]
        params: dict[str, Any] = {"name": "recall_memory", "arguments": {"query": "order"}}
        if method == "initialize":
            params = {"protocolVersion": era, "capabilities": {},
                      "clientInfo": {"name": "bench-mcp", "version": "1"}}
        if era == MODERN:
            params["_meta"] = MODERN_META
            headers += [(b"mcp-method", method.encode()), (b"mcp-name", b"recall_memory")]
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        scope = {"type": "http", "method": "POST", "path": "/mcp", "raw_path": b"/mcp",
                 "query_string": b"", "headers": headers, "scheme": "http", "root_path": "",
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
                 "http_version": "1.1", "asgi": {"version": "3.0"}}
        async with manager.run():
            out = await one(manager, scope, body)
            answer = b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")
            if out[0].get("status") != 200 or b'"result"' not in answer:
                raise RuntimeError(f"{label}: {out[0].get('status')} {answer[:300]!r}")
            for _ in range(min(300, n)):
                await one(manager, scope, body)
            lat = []
            cpu0 = time.process_time()
            for _ in range(n):
                t0 = time.perf_counter_ns()
                await one(manager, scope, body)
                lat.append(time.perf_counter_ns() - t0)
            cpu = (time.process_time() - cpu0) / n * 1e6
        lat.sort()
        results.append({"label": label, "p50_us": lat[len(lat) // 2] / 1e3, "cpu_us": cpu,
                        "answer": answer[:40].decode(errors="replace")})
    return {"variants": results, "pydantic": pydantic_costs()}


def pydantic_costs(n: int = 20_000) -> dict[str, float]:
    """µs to validate a tools/call message and to dump a CallToolResult, next to plain json."""
    import mcp_types as types
    from pydantic import TypeAdapter

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "recall_memory", "arguments": {"query": "order"}}}).encode()
    adapter: Any = TypeAdapter(types.JSONRPCMessage)
    result = types.CallToolResult(content=[types.TextContent(type="text", text=FLOOR_TEXT)],
                                  is_error=False)
    plain = {"jsonrpc": "2.0", "id": 1, "result": {"content": [
        {"type": "text", "text": FLOOR_TEXT}], "isError": False}}

    def per(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1e6

    return {"validate_request_us": per(lambda: adapter.validate_json(body)),
            "dump_result_us": per(lambda: result.model_dump_json(by_alias=True,
                                                                 exclude_unset=True)),
            "plain_json_us": per(lambda: (json.loads(body), json.dumps(plain)))}


def run_sdk_floor(n: int, profile_to: str | None) -> dict[str, Any] | None:
    """The floor in a child process (uvloop, as uvicorn runs); then, if asked, its first
    variant (botwire's settings) again under py-spy, for where its time goes."""

    def child(spec: dict[str, Any], spy: str | None = None) -> dict[str, Any] | None:
        cmd = [sys.executable, os.path.abspath(__file__), "--sdk-floor", json.dumps(spec)]
        if spy:
            cmd = [spy, "record", "--rate", "500", "--format", "raw", "--output",
                   str(profile_to), "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
        lines = [x for x in out.stdout.decode().splitlines() if x.startswith("{")]
        if out.returncode != 0 or not lines:
            log(f"SDK floor failed: {out.stderr.decode(errors='replace')[-800:]}")
            return None
        return json.loads(lines[-1])  # type: ignore[no-any-return]

    res = child({"n": n})
    spy = spy_path() if profile_to else None
    if res is not None and spy and child({"n": max(n, 5000), "variants": [0]}, spy) and \
            profile_to and os.path.exists(profile_to):
        groups: Counter[str] = Counter()
        with open(profile_to) as f:
            for line in f:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                frames = stack.split(";")
                if not any("handle_request (mcp/" in fr for fr in frames) and not any(
                        "_run_coro (anyio/" in fr for fr in frames):
                    continue  # the benchmark's own loop, imports, setup
                leaf = frames[-1]
                name = next((g for g, needles in FLOOR_GROUPS if any(x in leaf for x in needles)),
                            "other")
                groups[name] += int(count)
        res["profile"] = groups.most_common()
    return res


# -- the report ------------------------------------------------------------------------------


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for mod in ("botwire", "mcp", "mcp-types", "pydantic", "uvicorn", "starlette", "httptools",
                "uvloop", "httpx2"):
        try:
            out.append(f"{mod} {version(mod)}")
        except PackageNotFoundError:
            out.append(f"{mod} (not installed)")
    return ", ".join(out)


def ms(x: float) -> str:
    return "n/a" if x != x else (f"{x:.2f}" if x < 10 else f"{x:.1f}")


NAMES = {
    "healthz": "GET /healthz (floor)",
    "webhook": "webhook: POST /voice/vapi tool-calls",
    "webhook-httpx2": "webhook through httpx2",
    "mcp-post": "MCP: one stateless POST /mcp (raw)",
    "mcp-post-2026": f"MCP: one POST /mcp, {MODERN} era (raw)",
    "mcp-session": "MCP: SDK ClientSession, reused",
    "mcp-connect": "MCP: new connection + initialize per call (Vapi)",
}


def render(subjects: dict[str, dict[str, Any]], a: argparse.Namespace, kinds: list[str],
           elapsed: float, loadavg: list[float], argv: list[str] | None,
           floor: dict[str, Any] | None = None) -> str:
    args = " ".join(argv if argv is not None else sys.argv[1:])
    L = ["# botwire MCP benchmark: recall_memory through /mcp and through the Vapi webhook\n",
         f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
         f"`python bench/bench_mcp.py{' ' + args if args else ''}`, {elapsed:.0f} s. "
         f"{a.requests:,} sequential round trips per kind per repetition (blocks of {a.block}, "
         f"the kinds taking turns), {a.reps} repetition(s), after {a.warmup} warm-up requests "
         "of each kind; medians over repetitions. One server process, one worker.\n",
         f"* Machine: {os.cpu_count()} cores ({cpu_model()}), {platform.platform()}, Python "
         f"{platform.python_version()}; the load process and the server share these cores. "
         f"1-minute load average at the start and the end: "
         f"{' / '.join(f'{x:.1f}' for x in loadavg)}.",
         f"* {versions()}; botwire src digest {source_digest()}."]
    for label, sub in subjects.items():
        st = sub["populate"]["stored"]
        L.append(f"* {label}: the caller {CALLER} holds {st['facts']} facts, {st['calls']} "
                 f"calls, {st['turns']} transcript turns and {st['notes']} notes "
                 f"({st['facts'] + st['calls'] + st['turns'] + st['notes']} documents; "
                 f"{st['bookkeeping keys']} bookkeeping keys beside them), next to "
                 f"{sub['populate']['others']:,} other callers; filled in "
                 f"{sub['populate']['seconds']:.1f} s. MCP protocol negotiated by the SDK "
                 f"client: {sub['negotiated']}; HTTP requests the SDK sent per call_tool: "
                 f"{sub['sdk_http_per_call']:.2f}. Server CPU read from its "
                 f"{sub['cpu_clock']} between blocks. Routes the app's router tries before "
                 f"/mcp: {sub.get('routes_before_mcp', 'n/a')} (/voice/vapi is answered by "
                 "Edge before the router).")
    L.append("")
    for label, sub in subjects.items():
        st = sub["stats"]
        L += [f"## {label}\n",
              "| kind | p50 ms | p90 ms | p99 ms | mean ms | max ms | server CPU µs/req | "
              "of it in the kernel | client CPU µs/req | p50 / webhook | bad |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        web = st.get("webhook")
        for kind in kinds:
            s = st[kind]
            rel = f"{s['p50_ms'] / web['p50_ms']:.2f}x" if web else "n/a"
            L.append(f"| {NAMES[kind]} | {ms(s['p50_ms'])} | {ms(s['p90_ms'])} | "
                     f"{ms(s['p99_ms'])} | {ms(s['mean_ms'])} | {ms(s['max_ms'])} | "
                     f"{fmt(s['server_cpu_us'])} | {s['system_share']:.0%} | "
                     f"{fmt(s['client_cpu_us'])} | {rel} | {s['bad']} |")
        L.append("")
        if web:
            L.append(f"Target: MCP p50 <= {TARGET:g}x the webhook's p50 "
                     f"({ms(web['p50_ms'])} ms), the same tool on the same caller:\n")
            for kind in (k for k in MCP_KINDS if k in st):
                s = st[kind]
                each = ", ".join(f"{r['p50_ms'] / w['p50_ms']:.2f}x"
                                 for r, w in zip(s["runs"], web["runs"], strict=True))
                ratio = s["p50_ms"] / web["p50_ms"]
                verdict = "met" if ratio <= TARGET else "not met"
                L.append(f"* {NAMES[kind]}: p50 {ms(s['p50_ms'])} ms = **{ratio:.2f}x** "
                         f"(repetitions: {each}) -> **{verdict}**; server CPU "
                         f"{s['server_cpu_us'] / web['server_cpu_us']:.2f}x the webhook's")
            both = st.get("mcp-session"), st.get("webhook-httpx2")
            if both[0] and both[1]:
                L.append(f"\nWith the same HTTP client on both sides (httpx2, the SDK's): the "
                         f"SDK session's p50 is {both[0]['p50_ms'] / both[1]['p50_ms']:.2f}x "
                         "the webhook's through httpx2; the SDK's client costs "
                         f"{fmt(both[0]['client_cpu_us'] - both[1]['client_cpu_us'])} µs of CPU "
                         "per call over httpx2's own.")
            L.append("")
        if sub.get("profiles"):
            L += render_profiles(label, sub["profiles"])
    if floor:
        L += render_floor(floor, a.floor_requests)
    return "\n".join(L)


def render_floor(floor: dict[str, Any], n: int) -> list[str]:
    L = ["## The mcp SDK alone, in process\n",
         "A low-level `Server` with one tool answering a fixed 480-character text behind a "
         "stateless `StreamableHTTPSessionManager`, called through its ASGI callable (no "
         f"sockets, no HTTP parsing, no botwire, no tool work), {n:,} requests per variant, "
         "uvloop: the SDK's own cost per request.\n",
         "| variant | p50 µs | CPU µs/req |", "|---|---:|---:|"]
    for v in floor["variants"]:
        L.append(f"| {v['label']} | {fmt(v['p50_us'])} | {fmt(v['cpu_us'])} |")
    py = floor["pydantic"]
    L += ["", f"pydantic alone: validating a `tools/call` message {py['validate_request_us']:.1f}"
          f" µs, dumping a `CallToolResult` {py['dump_result_us']:.1f} µs (plain `json.loads` + "
          f"`json.dumps` of the same: {py['plain_json_us']:.1f} µs).\n"]
    if floor.get("profile"):
        total = sum(c for _, c in floor["profile"])
        cpu = floor["variants"][0]["cpu_us"]
        L += ["Where the first variant's time goes (py-spy, self time, again in a run of its "
              "own; µs scaled to its CPU above):\n",
              "| part | % | ≈ µs per stateless tools/call |", "|---|---:|---:|"]
        for name, c in floor["profile"]:
            L.append(f"| {name} | {100 * c / total:.1f} | {fmt(cpu * c / total)} |")
        L.append("")
    return L


def per_request(pr: dict[str, Any]) -> float:
    """µs of GIL time per request in profile ``pr``."""
    busy = pr["samples"] / (pr["rate"] * pr["seconds"])
    return busy / pr["rps"] * 1e6 if pr["rps"] else math.nan


def render_profiles(label: str, profiles: list[dict[str, Any]]) -> list[str]:
    """The profiles side by side: each phase's µs of GIL time per request."""
    L = [f"### Where the server's time goes: {label} (py-spy --gil, sequential)\n",
         "py-spy samples whichever thread holds the GIL (time in C with the GIL released, as "
         "socket writes and SQLite's own work, is not seen); each sample goes to the phase of "
         "its innermost frame that names one, any sample inside the tool to the tool.\n"]
    for pr in profiles:
        busy = pr["samples"] / (pr["rate"] * pr["seconds"])
        L.append(f"* {pr['kind']}: {pr['samples']:,} samples in {pr['seconds']:g} s "
                 f"({busy:.0%} of the time), {fmt(pr['rps'])} req/s: **{fmt(per_request(pr))} "
                 "µs of GIL time per request**.")
    L.append("")
    shares = [dict(pr["phases"]) for pr in profiles]
    names = sorted({n for sh in shares for n in sh},
                   key=lambda n: -max(sh.get(n, 0) / pr["samples"] * per_request(pr)
                                      for sh, pr in zip(shares, profiles, strict=True)))
    head = " | ".join(f"{pr['kind']} µs/req" for pr in profiles)
    L += [f"| phase | {head} |" + (" difference |" if len(profiles) == 2 else ""),
          "|---|" + "---:|" * (len(profiles) + (len(profiles) == 2))]
    for name in names:
        vals = [sh.get(name, 0) / pr["samples"] * per_request(pr)
                for sh, pr in zip(shares, profiles, strict=True)]
        row = " | ".join(fmt(v) for v in vals)
        diff = f" {vals[1] - vals[0]:+,.0f} |" if len(vals) == 2 else ""
        L.append(f"| {name} | {row} |{diff}")
    L.append("")
    for pr in profiles[1:]:
        L += [f"Hottest functions under {pr['kind']} (self time):\n",
              "| function | % | ≈ µs/req |", "|---|---:|---:|"]
        for frame, n in pr["self_frames"][:12]:
            L.append(f"| `{frame[:110]}` | {100 * n / pr['samples']:.1f} | "
                     f"{fmt(per_request(pr) * n / pr['samples'])} |")
        L.append("")
    return L


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="1 repetition of 500 requests per kind, 200 other callers (~20 s)")
    p.add_argument("--requests", type=int, default=None,
                   help="round trips per kind per repetition (default 3000; 500 with --quick)")
    p.add_argument("--block", type=int, default=250, help="round trips per block (default 250)")
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 3; 1 --quick)")
    p.add_argument("--warmup", type=int, default=200, help="warm-up requests per kind")
    p.add_argument("--others", type=int, default=None,
                   help="other callers stored beside the measured one (default 1000; 200 "
                        "with --quick)")
    p.add_argument("--kinds", default=",".join(KINDS), help="kinds measured (default: all)")
    p.add_argument("--postgres-url", default=None,
                   help="also measure a server on PostgreSQL (a private schema, dropped after)")
    p.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                   help="py-spy the (SQLite) server under webhook and mcp-post for SECONDS each")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--output", default=os.path.join(HERE, "results", "mcp.md"))
    p.add_argument("--load", metavar="SPEC", help=argparse.SUPPRESS)
    p.add_argument("--floor-requests", type=int, default=3000,
                   help="requests per variant of the in-process SDK floor (0: skip it)")
    p.add_argument("--profile-load", metavar="SPEC", help=argparse.SUPPRESS)
    p.add_argument("--sdk-floor", metavar="SPEC", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.requests = a.requests or (500 if a.quick else 3000)
    a.reps = a.reps or (1 if a.quick else 3)
    a.others = (200 if a.quick else 1000) if a.others is None else a.others
    return a


def _exit_on_term(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.load:
        return load_main(a.load)
    if a.sdk_floor:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        print(json.dumps(asyncio.run(sdk_floor(json.loads(a.sdk_floor)))), flush=True)
        return 0
    if a.profile_load:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        print(json.dumps(asyncio.run(profile_load(json.loads(a.profile_load)))), flush=True)
        return 0
    kinds = [k for k in a.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise SystemExit(f"unknown kinds: {', '.join(sorted(unknown))}")
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    signal.signal(signal.SIGTERM, _exit_on_term)  # stop servers, drop schemas on the way out
    started = time.monotonic()
    loadavg = [os.getloadavg()[0]]
    tmp = tempfile.mkdtemp(prefix="botwire-bench-mcp-")
    pg = PgSchemas(a.postgres_url) if a.postgres_url else None
    subjects: dict[str, dict[str, Any]] = {}
    servers: list[Server] = []
    try:
        plan = [("botwire-sqlite", f"sqlite:///{os.path.join(tmp, 'mcp.db')}")]
        if pg is not None:
            why = pg.check()
            if why:
                raise SystemExit(f"cannot connect to {a.postgres_url}: {why}")
            plan.append(("botwire-postgres", pg.new()))
        for label, url in plan:
            log(f"{label}: the caller and {a.others:,} others ...")
            filled = populate(url, a.others, a.seed)
            if pg is not None and label == "botwire-postgres":
                pg.analyze(url)
            log(f"  filled in {filled['seconds']:.1f} s: {filled['stored']}")
            server = start_server(label, url, os.path.join(tmp, label))
            servers.append(server)
            log(f"{label}: measuring {', '.join(kinds)}")
            result = measure(server, a, kinds)
            subjects[label] = {"populate": filled, "negotiated": result["negotiated"],
                               "sdk_http_per_call": result["sdk_http_per_call"],
                               "cpu_clock": result["cpu_clock"],
                               "stats": stats(result, kinds, a.requests),
                               "example": result["example"]}
            for kind in kinds:
                s = subjects[label]["stats"][kind]
                log(f"  {kind:15} p50 {s['p50_ms']:6.2f}  p90 {s['p90_ms']:6.2f}  p99 "
                    f"{s['p99_ms']:6.2f} ms  server {s['server_cpu_us']:6.0f} µs  client "
                    f"{s['client_cpu_us']:6.0f} µs  bad {s['bad']}")
            if a.profile and label == "botwire-sqlite":
                subjects[label]["profiles"] = [
                    pr for pr in (profile(server, kind, a.profile,
                                          f"{a.output}.profile-{kind}.txt")
                                  for kind in ("webhook", "mcp-post")) if pr]
            server.stop()
    finally:
        for s in servers:
            s.stop()
        if pg is not None:
            with contextlib.suppress(Exception):
                pg.drop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    before = routes_before_mcp()
    if before is not None:
        for sub in subjects.values():
            sub["routes_before_mcp"] = before
    floor = None
    if a.floor_requests:
        log(f"the SDK alone, in process: {a.floor_requests:,} requests per variant ...")
        floor = run_sdk_floor(a.floor_requests,
                              f"{a.output}.profile-sdk-floor.txt" if a.profile else None)
    elapsed = time.monotonic() - started
    loadavg.append(os.getloadavg()[0])
    report = render(subjects, a, kinds, elapsed, loadavg, argv, floor)
    print(report)
    with open(a.output, "w") as f:
        f.write(report)
    with open(a.output + ".json", "w") as f:
        json.dump({"subjects": subjects, "sdk_floor": floor}, f, indent=1, default=str)
    log(f"wrote {a.output} (+ .json) in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
