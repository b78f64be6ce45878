#!/usr/bin/env python3
"""`get` p50 on a large database next to a small one, in one run: SQLite (and PostgreSQL with
``--postgres``), random keys of random callers, warm cache.

Run with ``.venv/bin/python bench/bench_scale.py [--large 10000000] [--small 10000]
[--postgres] [--n 20000]``. Each database is filled through the engine's ``Put`` op, 1000 keys
(one caller) a statement, values of about 60 bytes; SQLite files live in a temporary directory,
PostgreSQL in private schemas ``botwire_bench_<random>`` dropped at the end. The report gives
the medians in microseconds and the ratio large / small (goal: at most 2x).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import tempfile
import time
from urllib.parse import quote

from botwire import Memory
from botwire.engines import open_engine
from botwire.engines import base as ops

PER_CALLER = 1000


def fill(url: str, keys: int) -> float:
    engine = open_engine(url)
    start = time.monotonic()
    try:
        for c in range(keys // PER_CALLER):
            items = tuple(
                (f"fact-{k:04d}", json.dumps({"k": k, "caller": c, "note": "x" * 30}))
                for k in range(PER_CALLER)
            )
            engine.execute(ops.Put(f"phone:+1{c:010d}", items))
    finally:
        engine.close()
    took = time.monotonic() - start
    if url.startswith("sqlite:"):  # measure the database, not a WAL the fill left behind
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    return took


def get_p50(url: str, keys: int, n: int) -> float:
    callers = keys // PER_CALLER
    rng = random.Random(7)
    picks = [
        (f"phone:+1{rng.randrange(callers):010d}", f"fact-{rng.randrange(PER_CALLER):04d}")
        for _ in range(n)
    ]
    memories = {ns: Memory(ns, url=url) for ns, _ in picks}
    for ns, key in picks:  # a first pass warms the page cache and each Memory
        assert memories[ns].get(key) is not None
    times = []
    for ns, key in picks:
        m = memories[ns]
        start = time.perf_counter()
        m.get(key)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def pg_schema(base: str) -> tuple[str, str]:
    import psycopg

    schema = f"botwire_bench_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    return schema, f"{base}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BOTWIRE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    print("| engine | keys | fill s | keys/s | get p50 us |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        engines = [("sqlite", lambda size: (None, f"sqlite:///{tmp}/k{size}.db"))]
        if args.postgres:
            engines.append(("postgres", lambda size: pg_schema(args.postgres_url)))
        for name, make in engines:
            p50 = {}
            made = []
            try:
                for size in (args.small, args.large):
                    schema, url = make(size)
                    made.append(schema)
                    took = fill(url, size)
                    p50[size] = get_p50(url, size, args.n)
                    print(
                        f"| {name} | {size:,} | {took:.0f} | {size / took:,.0f} | "
                        f"{p50[size]:.1f} |",
                        flush=True,
                    )
            finally:
                for schema in filter(None, made):
                    import psycopg

                    with psycopg.connect(args.postgres_url, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            ratio = p50[args.large] / p50[args.small]
            print(f"| {name} | ratio | | | {ratio:.2f}x (goal <= 2x) |", flush=True)


if __name__ == "__main__":
    main()
