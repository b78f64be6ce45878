#!/usr/bin/env python3
"""PostgreSQL `incr` and log `append` next to `set`, in one run: each is one statement (one
round trip) since incr and append became single statements; `set` is the reference.

Run with ``.venv/bin/python bench/bench_pg_round_trips.py [--url URL] [--n 2000] [--rounds 3]``.
It works in a private schema ``botwire_bench_<random>`` of ``--url`` (default
``BOTWIRE_BENCH_POSTGRES_URL`` or ``postgresql://postgres@127.0.0.1:5432/test``), dropped at
the end, and prints the medians in microseconds and the ratios to `set` for each round.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import time
from collections.abc import Callable
from urllib.parse import quote

import psycopg

from botwire import Memory

GOAL = 1.3  # incr and append within this many times a set


def median_us(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(200, n)):
        fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    default = "postgresql://postgres@127.0.0.1:5432/test"
    parser.add_argument("--url", default=os.environ.get("BOTWIRE_BENCH_POSTGRES_URL", default))
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    schema = f"botwire_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in args.url else "?"
    url = f"{args.url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"
    try:
        with Memory("bench", url=url) as m:
            m.set("n", 0)
            calls = m.log("calls")
            print("| round | set p50 us | incr p50 us | incr/set | append p50 us | append/set |")
            print("|---:|---:|---:|---:|---:|---:|")
            for r in range(1, args.rounds + 1):
                s = median_us(lambda: m.set("k", {"v": 1}), args.n)
                i = median_us(lambda: m.incr("n"), args.n)
                a = median_us(lambda: calls.append({"v": 1}), args.n)
                print(f"| {r} | {s:.0f} | {i:.0f} | {i / s:.2f} | {a:.0f} | {a / s:.2f} |")
        print(f"\ngoal: incr and append each at most {GOAL}x a set, one statement each")
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
