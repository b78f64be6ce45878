#!/usr/bin/env python3
"""Console benchmark: how long /console's pages take the server over a big caller and 100k
callers, next to the /v1 requests that read the same data.

Run with ``.venv/bin/python bench/bench_console.py [--quick] [--no-postgres] [--output PATH]``.
It prints a markdown report (and writes it to ``--output`` when given); progress goes to stderr.

What one run does, per database (SQLite in a temporary directory; PostgreSQL, when
``BOTWIRE_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
answers, in a private schema ``botwire_bench_<random>`` dropped at the end):

* **Fill**, through the public API: ``--namespaces`` (default 100k) callers
  ``phone:+1415NNNNNNN`` with one fact each (``Put`` ops, 8 threads); one caller,
  ``phone:+14155550123``, with ``--calls`` (default 1000) calls written by
  ``voice.core.end_call`` exactly as the webhooks write them (call record, ``last_call``,
  claims, a transcript of 6 turns, 3 extracted fields) and ``--facts`` (default 200) facts by
  ``voice.facts.write``, each with its provenance record.
* **Measure** the app in this process (``httpx.ASGITransport``: no socket, so the time is the
  server's, routing and rendering included), signed in with the admin key. Each page is
  requested ``--reps`` times (default 30) after 3 warm-up requests; the report gives the median
  and the 90th percentile in milliseconds, and the answer's size.

  * ``callers`` (the first page of 50), ``callers, page 1000`` (a cursor 50k namespaces in),
    ``callers, phone search`` (``q=+1415000``: a page of 50 of them);
  * ``caller`` (the big caller's page: 200 facts with history, the newest 20 calls with their
    transcripts, the ``{{memory}}`` text), ``caller, older calls`` (the timeline 500 calls back,
    reached by following the pages' own "Older calls" links), ``caller search``;
  * the peers, ``/v1`` reads of the same data: ``GET /v1/namespaces?limit=50`` and the caller's
    keys with values (``limit=1000``) plus the newest 20 call records (two requests).

The target: each console page under 100 ms of server time, and the callers list as fast at
page 1000 as at page 1 (the ``Namespaces`` op seeks past the cursor; nothing scans all).
``--quick``: 10k namespaces, 10 repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx

from botwire import Memory
from botwire._wire import segment
from botwire.engines import open_engine
from botwire.engines.base import Engine, Put
from botwire.server import Settings, create_app
from botwire.server.auth import bootstrap_op
from botwire.voice import core, facts
from botwire.voice.records import CallEnd, Turn
from botwire.voice.settings import VoiceSettings

POSTGRES = os.environ.get("BOTWIRE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CALLER = "phone:+14155550123"
START = 1_700_000_000.0


def say(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


# -- filling -----------------------------------------------------------------------------------


def fill_namespaces(engine: Engine, n: int) -> None:
    names = [f"phone:+1415{i:07d}" for i in range(n)]

    def put(chunk: list[str]) -> None:
        for ns in chunk:
            engine.execute(Put(ns, (("customer_name", '"caller"'),)))

    chunks = [names[i : i + 1000] for i in range(0, n, 1000)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, chunks))


def a_call(n: int) -> CallEnd:
    ended = START + n * 600
    turns = tuple(
        Turn("user" if t % 2 == 0 else "assistant", f"turn {t} of call {n}: order A-{n}", ended)
        for t in range(6)
    )
    return CallEnd(
        "vapi",
        f"call-{n:05d}",
        "+14155550123",
        started_at=ended - 120,
        ended_at=ended,
        summary=f"Call {n}: asked about order A-{n}, resolved",
        outcome="resolved",
        successful=True,
        turns=turns,
        extracted={"last_order": f"A-{n}", "sentiment": "positive", "topic": "shipping"},
    )


def fill_caller(engine: Engine, calls: int, facts_n: int) -> None:
    memory = Memory(CALLER, engine=engine)
    values = {f"fact_{i:03d}": f"value {i} of the caller" for i in range(facts_n)}
    origin = facts.Origin("tool", "vapi", "call-00001")
    core.run(facts.write(values, origin), memory)
    for n in range(1, calls + 1):
        core.run(core.end_call(a_call(n)), memory)
        if n % 200 == 0:
            say(f"  {n} calls")


# -- measuring ---------------------------------------------------------------------------------


class Client:
    def __init__(self, app: Any) -> None:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://bench.local")

    async def sign_in(self, key: str) -> None:
        form = (await self.http.get("/console/sign-in")).text
        token = re.search(r'name="sign_in_token" value="([^"]+)"', form)
        assert token is not None
        data = {"sign_in_token": token.group(1), "api_key": key}
        answer = await self.http.post("/console/sign-in", data=data)
        assert answer.status_code == 303, answer.text

    async def timed(self, paths: list[str], reps: int, headers=None) -> tuple[float, float, int]:
        """Median and p90 in ms of requesting ``paths`` one after another; bytes answered."""
        times, size = [], 0
        for i in range(reps + 3):
            start = time.perf_counter()
            size = 0
            for path in paths:
                answer = await self.http.get(path, headers=headers)
                assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
                size += len(answer.content)
            if i >= 3:
                times.append((time.perf_counter() - start) * 1000)
        times.sort()
        return statistics.median(times), times[int(len(times) * 0.9) - 1], size


async def measure(url: str, args: argparse.Namespace) -> list[tuple[str, float, float, int]]:
    engine = open_engine(url)
    secret, op = bootstrap_op()
    engine.execute(op)
    say(f"filling {args.namespaces} namespaces")
    started = time.perf_counter()
    fill_namespaces(engine, args.namespaces)
    say(f"filling the caller: {args.calls} calls, {args.facts} facts")
    fill_caller(engine, args.calls, args.facts)
    say(f"filled in {time.perf_counter() - started:.0f} s")
    settings = Settings(database=url, writes_per_day=0, max_bytes=0)
    app = create_app(settings, engine=engine, voice_settings=VoiceSettings())
    rows = []
    async with app.router.lifespan_context(app):
        client = Client(app)
        await client.sign_in(secret)
        page = f"/console/callers/{segment(CALLER)}"
        cursor = await middle_cursor(client, args.namespaces)
        older = await older_page(client, page, hops=500 // 20)
        api = {"Authorization": f"Bearer {secret}"}
        ns = quote(CALLER, safe="")
        cases: list[tuple[str, list[str], dict[str, str] | None]] = [
            ("callers", ["/console/callers"], None),
            (
                f"callers, page {args.namespaces // 100}",
                [f"/console/callers?cursor={cursor}"],
                None,
            ),
            ("callers, phone search", ["/console/callers?q=%2B1415000"], None),
            ("caller", [page], None),
            ("caller, older calls", [older], None),
            ("caller search", [f"{page}/search?q=order+shipping"], None),
            ("peer: /v1 namespaces (50)", ["/v1/namespaces?limit=50"], api),
            (
                "peer: /v1 keys + last 20 calls",
                [
                    f"/v1/namespaces/{ns}/keys?values=true&limit=1000",
                    f"/v1/namespaces/{ns}/logs/calls?last=20",
                ],
                api,
            ),
        ]
        for name, paths, headers in cases:
            median, p90, size = await client.timed(paths, args.reps, headers)
            rows.append((name, median, p90, size))
            say(f"  {name}: {median:.1f} ms (p90 {p90:.1f})")
        await client.http.aclose()
    await engine.aclose()
    engine.close()
    return rows


async def middle_cursor(client: Client, n: int) -> str:
    """The cursor of the callers' list half way through, as its "Next page" link gives it."""
    from botwire._wire import make_cursor

    return quote(make_cursor(f"phone:+1415{n // 2:07d}"), safe="")


async def older_page(client: Client, page: str, hops: int) -> str:
    """The caller's timeline ``hops`` pages back, following the pages' own links."""
    path = page
    for _ in range(hops):
        html = (await client.http.get(path)).text
        found = re.search(r"\?before=([0-9.]+)#", html)
        if found is None:
            break
        path = f"{page}?before={found.group(1)}"
    return path


# -- PostgreSQL ----------------------------------------------------------------------------------


def postgres_schema() -> tuple[str, str] | None:
    try:
        import psycopg
    except ImportError:
        return None
    schema = f"botwire_bench_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error as exc:
        say(f"PostgreSQL not reachable ({exc}): skipped")
        return None
    sep = "&" if "?" in POSTGRES else "?"
    return schema, f"{POSTGRES}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def analyze(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


# -- report ------------------------------------------------------------------------------------


def report(results: dict[str, list[tuple[str, float, float, int]]], args) -> str:
    lines = [
        "# Console pages, server time (in-process ASGI)",
        "",
        f"{args.namespaces} namespaces; one caller with {args.calls} calls and {args.facts} "
        f"facts; {args.reps} requests each after 3 warm-up ones. Target: under 100 ms a page.",
        "",
    ]
    for db, rows in results.items():
        lines += [
            f"## {db}",
            "",
            "| page | median ms | p90 ms | bytes |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, median, p90, size in rows:
            lines.append(f"| {name} | {median:.1f} | {p90:.1f} | {size} |")
        lines.append("")
    lines.append(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs.")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10k namespaces, 10 repetitions")
    p.add_argument("--namespaces", type=int, default=None)
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--facts", type=int, default=200)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--output", help="also write the report here")
    args = p.parse_args(argv)
    args.namespaces = args.namespaces or (10_000 if args.quick else 100_000)
    args.reps = args.reps or (10 if args.quick else 30)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        say("SQLite")
        results["SQLite"] = asyncio.run(measure(f"sqlite:///{tmp}/bench.db", args))
    held = None if args.no_postgres else postgres_schema()
    if held is not None:
        schema, url = held
        try:
            say("PostgreSQL")
            results["PostgreSQL"] = asyncio.run(measure(url, args))
        finally:
            drop_schema(schema)
    text = report(results, args)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
