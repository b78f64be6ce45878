#!/usr/bin/env python3
"""What SQLite's search index and botwire's own layers cost a write, against the raw floor.

    python bench/bench_write_floor.py                  # about 30 s
    PYTHONPATH=/path/to/older/checkout/src python bench/bench_write_floor.py   # the older code

One process, 10k keys per file, values of about 50 bytes of JSON, varying keys. Subjects, all
timed in interleaved slices of 100 calls (so the machine's noise falls on all alike), p50 and
mean of every call:

* ``caller``: ``Memory.set`` / ``log.append`` in a namespace never searched (a caller's), on a
  file with the index triggers, and on a file with every trigger dropped (``index off``);
* ``served``: ``Memory.set`` in a 10k-key namespace searched once (the index serves it), on the
  same two kinds of file, and with the background catch-up held off;
* ``raw``: Python's sqlite3 on a table of its own in the first file, same pragmas:
  ``INSERT ... ON CONFLICT (k) DO UPDATE`` in autocommit (the floor of ``set``), and
  ``SELECT v ... WHERE k = ?`` + ``json.loads`` (the floor of ``get``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

N = 10_000


def value(i: int) -> dict[str, object]:
    return {"order": f"ORDER-{i % 1000:03d}", "n": i, "status": "shipped"}


def key(i: int) -> str:
    return f"caller:{i:07d}"


def open_memory(path: str, served: bool, triggers: bool):  # type: ignore[no-untyped-def]
    from botwire import Memory

    m = Memory("caller-1", url=f"sqlite:///{path}")
    m.set_many({key(i): value(i) for i in range(N)})
    m.log("calls").extend([value(i) for i in range(10)])
    if served:
        m.search("shipped")  # the index serves this namespace from now on
    if not triggers:
        with sqlite3.connect(path, timeout=30) as c:
            names = c.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
            for (name,) in names:
                c.execute(f"DROP TRIGGER {name}")
    return m


def raw_table(path: str) -> sqlite3.Connection:
    c = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "temp_store=MEMORY"):
        c.execute(f"PRAGMA {pragma}")
    c.execute("CREATE TABLE IF NOT EXISTS bench_raw (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID")
    c.execute("BEGIN")
    c.executemany(
        "INSERT OR REPLACE INTO bench_raw VALUES (?, ?)",
        [(key(i), json.dumps(value(i))) for i in range(N)],
    )
    c.execute("COMMIT")
    return c


def main() -> int:
    import botwire

    tmp = tempfile.mkdtemp(prefix="botwire-floor-")
    files = {
        name: os.path.join(tmp, f"{n}.db")
        for n, name in enumerate(
            ("caller", "caller, index off", "served", "served, index off", "served, no background")
        )
    }
    mems = {
        name: open_memory(path, served=name.startswith("served"), triggers="off" not in name)
        for name, path in files.items()
    }
    mems["served, no background"].engine._index_pending = lambda wait=True: None
    raw = raw_table(files["caller"])
    upsert = (
        "INSERT INTO bench_raw (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
    )
    select = "SELECT v FROM bench_raw WHERE k = ?"
    calls: dict[str, Callable[[int], object]] = {
        "raw upsert (set floor)": lambda i: raw.execute(upsert, (key(i % N), json.dumps(value(i)))),
        "raw select (get floor)": lambda i: json.loads(
            raw.execute(select, (key(i % N),)).fetchone()[0]
        ),
        "get, caller": lambda i: mems["caller"].get(key(i % N)),
    }
    for name, m in mems.items():
        calls[f"set, {name}"] = lambda i, m=m: m.set(key(i % N), value(i))
        if name.startswith("caller"):
            log = m.log("calls")
            calls[f"append, {name}"] = lambda i, log=log: log.append(value(i))
    times: dict[str, list[int]] = {name: [] for name in calls}
    j = 0
    for _ in range(40):
        for name, call in calls.items():
            for _ in range(100):
                j += 1
                i = (j * 7919) % (2 * N)
                t = time.perf_counter_ns()
                call(i)
                times[name].append(time.perf_counter_ns() - t)
    p50 = {name: statistics.median(t) / 1000 for name, t in times.items()}
    print(
        f"botwire from {os.path.dirname(botwire.__file__)}; {N:,} keys a file; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load {os.getloadavg()[0]:.1f}\n"
    )
    print("| call | p50 µs | mean µs | ratio |")
    print("|---|---:|---:|---|")
    over = {
        "set, caller": ("set, caller, index off", "raw upsert (set floor)"),
        "append, caller": ("append, caller, index off",),
        "set, served": ("set, served, index off", "raw upsert (set floor)"),
        "set, served, no background": ("set, served, index off",),
        "get, caller": ("raw select (get floor)",),
    }
    for name, t in times.items():
        ratios = ", ".join(f"{p50[name] / p50[b]:.2f}x {b}" for b in over.get(name, ()))
        print(f"| {name} | {p50[name]:.1f} | {statistics.mean(t) / 1000:.1f} | {ratios} |")
    for m in mems.values():
        m.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
