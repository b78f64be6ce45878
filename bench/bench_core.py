#!/usr/bin/env python3
"""Core-operation benchmark: botwire (SQLite, PostgreSQL) side by side with diskcache, redis-py
and a raw-sqlite3 floor.

Run with ``make bench`` (or ``python bench/bench_core.py [--quick] [...]``); see ``--help``.
``--sections goals`` (with ``--quick``: a few seconds) measures only the rows of the Goals table.

What is measured (one workload, the same for every subject):

* key-value at each key count (default 10k and 1M keys): ``get``, ``set``, ``set_many(100)``,
  ``incr``, plus ``log append`` and ``log read(last=20)`` on short (10-entry) logs stored next to
  those keys;
* logs at each log length (default 10 and 100k entries): ``append`` and ``read(last=20)``.

Subjects and how each operation maps onto them:

============  ==================  ======================  ====================================
op            botwire             diskcache.Cache         redis-py (local Redis)
============  ==================  ======================  ====================================
get           ``m.get(k)``        ``loads(c.get(k))``     ``loads(r.get(k))``
set           ``m.set(k, v)``     ``c.set(k, dumps(v))``  ``r.set(k, dumps(v))``
set_many 100  ``m.set_many(d)``   ``with c.transact():``  ``r.mset({k: dumps(v)})``
                                  100 x ``c.set``
incr          ``m.incr(k)``       ``c.incr(k)``           ``r.incr(k)``
log append    ``log.append(e)``   ``c.push(dumps(e),      ``r.rpush(name, dumps(e))``
                                  prefix=name)``
read last 20  ``log.read(         ``c.peek(name, 'back')``  ``[loads(x) for x in
              last=20)``          for the newest key,     r.lrange(name, -20, -1)]``
                                  then ``c.get`` of the
                                  19 keys before it
============  ==================  ======================  ====================================

botwire takes and returns Python values and does its own JSON encoding/decoding, so the peers are
given the JSON text of the same values (``json.dumps`` on the way in, ``json.loads`` on the way
out, inside the timed call): every subject does equal work.

``sqlite-raw`` is the floor under botwire-sqlite, for ``get`` and ``set`` only: Python's
``sqlite3`` on a table ``bench_raw_kv (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID`` in
botwire-sqlite's own database file, with the pragmas botwire's engine sets on its connections
(WAL, ``synchronous=NORMAL``, ``temp_store``, ``mmap_size``, ``cache_size``,
``wal_autocheckpoint=0``; the report says whether they match the engine's connection), in
autocommit. ``set`` is ``INSERT INTO bench_raw_kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO
UPDATE SET v = excluded.v`` of ``json.dumps(v)`` (committed when ``execute`` returns); ``get``
is ``SELECT v FROM bench_raw_kv WHERE k = ?`` and ``json.loads``. It holds the same keys and
values and is timed in the same interleaved slices as the other subjects.

The report ends with two verdict tables, both computed from this run's measurements: Targets
(botwire next to the peers) and Goals (botwire p50 / floor p50 at each key count):

======================================================  ============================  =======
row                                                     floor                         goal
======================================================  ============================  =======
embedded ``set`` p50 (SQLite, search index on)          sqlite-raw ``set``            <= 1.3x
embedded ``get`` p50 (SQLite)                           sqlite-raw ``get``            <= 1.2x
PostgreSQL ``incr`` p50                                 botwire-postgres ``set``      <= 1.3x
PostgreSQL log ``append`` p50 (10-entry log)            botwire-postgres ``set``      <= 1.3x
======================================================  ============================  =======

(botwire's SQLite engine indexes a large namespace for keyword search on demand, once it is
searched, and keeps it indexed from then on; after loading the keys of each key count the run
makes one search and waits for the index to hold the whole namespace, untimed, so that the
timed writes go to an indexed namespace.)

``--sections`` picks what is measured: ``kv`` (every key-value row), ``logs`` (the log-length
section), ``goals`` (only the four rows above, at each key count, and by default only the
subjects they need: botwire-sqlite, sqlite-raw, botwire-postgres); the default is
``kv,logs``.

diskcache has no "newest N entries of a queue" call. ``push(prefix=name)`` names the entries
``"{name}-{n:015d}"`` with consecutive ``n`` (documented in ``Cache.push``), so the closest
equivalent is ``peek(name, side='back')`` for the newest key and 19 ``get``s for the ones before it
(without a surrounding ``transact()``: cheaper for diskcache, though not one snapshot).

Latency of every call is taken with ``time.perf_counter_ns``; a measurement is a few thousand
calls after a short warm-up; ops/s is 1 / mean latency; p50/p99 are in microseconds. Within a
section the calls of all rows and subjects are interleaved in slices (``--chunks``), so that the
noise of a shared machine falls on all of them alike; each measurement is repeated (``--reps``,
default 3; the subject order rotates) and the median of each statistic over the repetitions is
reported.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_PG = os.environ.get(
    "BOTWIRE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SEED = 20240611
POPULATE_BATCH = 1000
LOG_SHORT = 10  # "short log" length used next to the key-value ops
APPENDS_PER_SHORT_LOG = 5  # short logs receive at most this many timed appends (10 -> 15 entries)
READ_LOGS = 100  # short logs that only get read
N_COUNTERS = 100
SET_MANY = 100
LAST = 20

APPEND_ROW = f"log append ({LOG_SHORT}-entry log)"
GOAL_ROWS = ("get", "set", "incr", APPEND_ROW)  # the kv rows the Goals table is computed from
GOAL_SUBJECTS = ("botwire-sqlite", "sqlite-raw", "botwire-postgres")
SECTIONS = ("kv", "logs", "goals")
INDEX_BUDGET = 60.0  # seconds botwire-sqlite's search-index catch-up may take after loading

dumps = json.dumps
loads = json.loads


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def human(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    mult = 1
    if text.endswith("k"):
        mult, text = 1000, text[:-1]
    elif text.endswith("m"):
        mult, text = 1_000_000, text[:-1]
    return int(float(text) * mult)


def parse_sizes(text: str) -> list[int]:
    return sorted({parse_size(t) for t in text.split(",") if t.strip()})


def kv_key(i: int) -> str:
    return f"caller:{i:07d}"


def kv_value(i: int) -> dict[str, Any]:
    return {"order": f"ORDER-{i % 1000:03d}", "n": i, "status": "shipped"}


def log_entry(i: int) -> dict[str, Any]:
    return {"role": "user", "text": "Where is my order ORDER-789?", "turn": i}


# --------------------------------------------------------------------------------------------
# Subjects
# --------------------------------------------------------------------------------------------


class Subject:
    """One store under test. Methods take Python values; peers JSON-encode them."""

    name = "?"
    kind = "?"  # "botwire" / "peer" / "floor"
    methods: frozenset[str] | None = None  # the ops it has (None: all of them)

    def supports(self, method: str) -> bool:
        return self.methods is None or method in self.methods

    def after_populate(self) -> str | None:
        """Untimed work once the keys of a key count are loaded; a note for the report."""
        return None

    def open(self) -> None: ...

    def populate(self, start: int, end: int) -> None: ...

    def prefill_log(self, name: str, n: int) -> None: ...

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any) -> Any: ...

    def set_many(self, mapping: dict[str, Any]) -> Any: ...

    def incr(self, key: str) -> Any: ...

    def append(self, name: str, entry: Any) -> Any: ...

    def read_last(self, name: str) -> Any: ...

    def check(self) -> None:
        """Sanity-check the mapping once before timing anything."""
        self.set("check:key", {"a": 1})
        assert self.get("check:key") == {"a": 1}, "get after set"
        self.set_many({"check:a": 1, "check:b": [1, 2]})
        assert self.get("check:b") == [1, 2], "set_many"
        assert self.incr("check:ctr") == 1 and self.incr("check:ctr") == 2, "incr"
        for i in range(25):
            self.append("check:log", {"i": i})
        got = self.read_last("check:log")
        assert len(got) == LAST and _entry_value(got[-1]) == {"i": 24}, f"read_last: {got[:2]}"
        assert _entry_value(got[0]) == {"i": 5}, "read_last order"

    def close(self) -> None: ...


def _entry_value(e: Any) -> Any:
    return getattr(e, "value", e)


class BotwireSubject(Subject):
    kind = "botwire"

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.ns = f"bench-{uuid.uuid4().hex[:10]}"
        self.m: Any = None
        self._logs: dict[str, Any] = {}

    def open(self) -> None:
        from botwire import Memory

        self.m = Memory(self.ns, url=self.url)

    def _log(self, name: str) -> Any:
        lg = self._logs.get(name)
        if lg is None:
            lg = self._logs[name] = self.m.log(name)
        return lg

    def populate(self, start: int, end: int) -> None:
        sm = self.m.set_many
        for b in range(start, end, POPULATE_BATCH):
            sm({kv_key(i): kv_value(i) for i in range(b, min(b + POPULATE_BATCH, end))})

    def prefill_log(self, name: str, n: int) -> None:
        lg = self._log(name)
        for b in range(0, n, POPULATE_BATCH):
            lg.extend([log_entry(i) for i in range(b, min(b + POPULATE_BATCH, n))])

    def get(self, key: str) -> Any:
        return self.m.get(key)

    def set(self, key: str, value: Any) -> Any:
        return self.m.set(key, value)

    def set_many(self, mapping: dict[str, Any]) -> Any:
        return self.m.set_many(mapping)

    def incr(self, key: str) -> Any:
        return self.m.incr(key)

    def append(self, name: str, entry: Any) -> Any:
        return self._log(name).append(entry)

    def read_last(self, name: str) -> Any:
        return self._log(name).read(last=LAST)

    def close(self) -> None:
        if self.m is not None:
            self.m.close()
            self.m = None


class BotwireSQLite(BotwireSubject):
    def __init__(self, tmpdir: str) -> None:
        super().__init__("botwire-sqlite", f"sqlite:///{tmpdir}/bench.db")

    def after_populate(self) -> str | None:
        """Turn the namespace's keyword-search index on and bring it up to date, untimed.

        The engine indexes a large namespace on demand: only once a search has asked for it,
        and from then on the background keeps it indexed (an overwrite of an indexed key
        marks it stale for that). One search registers the namespace; the engine's
        ``_catch_up`` (when present) then indexes all of it now, so that the timed writes are
        writes to an indexed namespace from their first call."""
        t0 = time.perf_counter()
        self.m.search("shipped", limit=1)
        catch_up = getattr(self.m.engine, "_catch_up", None)
        done = None
        while catch_up is not None and time.perf_counter() - t0 < INDEX_BUDGET:
            done = catch_up(self.m.namespace, True, 50)  # 50 slices at a time, then the clock
            if done:
                break
        self.m.search("shipped", limit=1)
        state = {
            True: "complete",
            False: f"not complete after the {INDEX_BUDGET:.0f} s budget; the background goes "
            "on indexing during the timed calls",
            None: "left to the background",
        }
        return (
            f"botwire-sqlite: search index turned on for its namespace after loading "
            f"(one search, then the catch-up: {state.get(done, done)}; "
            f"{time.perf_counter() - t0:.1f} s, untimed)"
        )


# the pragmas SQLiteEngine._open sets on each of its connections (src/botwire/engines/sqlite.py);
# journal_mode=WAL is the file's, set once by its migration
SQLITE_PRAGMAS = (
    "PRAGMA synchronous=NORMAL",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA mmap_size=268435456",
    "PRAGMA cache_size=-16000",
    "PRAGMA wal_autocheckpoint=0",
)
RAW_TABLE = "bench_raw_kv"
RAW_UPSERT = (
    f"INSERT INTO {RAW_TABLE} (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
)
RAW_SELECT = f"SELECT v FROM {RAW_TABLE} WHERE k = ?"


def _begin_immediate(conn: sqlite3.Connection, tries: int = 10) -> None:
    """``BEGIN IMMEDIATE``, again when it gives up on the lock: botwire's background thread
    (checkpoints, search-index upkeep) can take SQLite's write lock again and again, and
    sqlite3's busy handler may lose each race for it. Untimed (loading only)."""
    for attempt in range(tries):
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            log(f"  sqlite-raw: {exc} while loading; again")
            time.sleep(0.05)


class SQLiteRaw(Subject):
    """The floor under botwire-sqlite: Python's sqlite3 on a table of its own in the SAME
    database file, with the same pragmas, in autocommit (each statement is its own
    transaction, committed before ``execute`` returns). ``set`` is one upsert of the value's
    JSON text, ``get`` one indexed SELECT and ``json.loads``. Only ``get`` and ``set``: the
    other rows have no floor here."""

    name = "sqlite-raw"
    kind = "floor"
    methods = frozenset({"get", "set"})

    def __init__(self, tmpdir: str) -> None:
        self.path = os.path.join(tmpdir, "bench.db")  # botwire-sqlite's file
        self.conn: sqlite3.Connection | None = None

    def open(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")  # botwire-sqlite left out of the run
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        # one B-tree keyed by the key, as botwire_kv (PRIMARY KEY (ns, key) WITHOUT ROWID)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {RAW_TABLE} (k TEXT PRIMARY KEY, v TEXT NOT NULL) "
            "WITHOUT ROWID"
        )
        self.conn = conn

    def populate(self, start: int, end: int) -> None:
        conn = self.conn
        assert conn is not None
        for b in range(start, end, POPULATE_BATCH):
            _begin_immediate(conn)
            conn.executemany(
                RAW_UPSERT,
                [(kv_key(i), dumps(kv_value(i))) for i in range(b, min(b + POPULATE_BATCH, end))],
            )
            conn.execute("COMMIT")
        # what botwire's background thread does after its writes (wal_autocheckpoint is 0),
        # so that the loaded keys do not stay in the WAL that both subjects read through
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def get(self, key: str) -> Any:
        row = self.conn.execute(RAW_SELECT, (key,)).fetchone()  # type: ignore[union-attr]
        return None if row is None else loads(row[0])

    def set(self, key: str, value: Any) -> Any:
        self.conn.execute(RAW_UPSERT, (key, dumps(value)))  # type: ignore[union-attr]

    def check(self) -> None:
        conn = self.conn
        assert conn is not None
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode.lower() == "wal", f"journal_mode {mode}"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1, "synchronous NORMAL"
        self.set("check:key", {"a": 1})
        assert self.get("check:key") == {"a": 1}, "get after set"
        assert not conn.in_transaction, "autocommit"
        self.set("check:key", [1, 2])
        assert self.get("check:key") == [1, 2], "set replaces"
        assert self.get("check:absent") is None, "get of a missing key"

    def compare_pragmas(self, other: sqlite3.Connection | None) -> str:
        """One line for the report: this connection's pragmas next to botwire-sqlite's."""
        assert self.conn is not None
        names = ("journal_mode", *(p.split()[1].split("=")[0] for p in SQLITE_PRAGMAS))

        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            return {n: conn.execute(f"PRAGMA {n}").fetchone()[0] for n in names}

        mine = read(self.conn)
        text = ", ".join(f"{k}={v}" for k, v in mine.items())
        if other is None:
            return f"sqlite-raw pragmas: {text} (botwire-sqlite's connection not compared)"
        theirs = read(other)
        if theirs == mine:
            return f"sqlite-raw pragmas: {text}, the same as botwire-sqlite's connection"
        diff = ", ".join(f"{k} {mine[k]} vs {theirs[k]}" for k in names if mine[k] != theirs[k])
        return f"**sqlite-raw pragmas differ from botwire-sqlite's connection**: {diff}"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class BotwirePostgres(BotwireSubject):
    """botwire on PostgreSQL. By default in a private schema (``search_path`` via the URL's
    ``options``), created here and dropped afterwards, so that the run neither sees nor disturbs
    anything else in that database; ``--postgres-shared-schema`` uses the URL as given."""

    def __init__(self, url: str, private_schema: bool = True) -> None:
        super().__init__("botwire-postgres", url)
        self.base_url = url
        self.schema: str | None = None
        self.private_schema = private_schema

    def open(self) -> None:
        if self.private_schema:
            import psycopg

            schema = f"botwire_bench_{uuid.uuid4().hex[:8]}"
            try:
                with psycopg.connect(self.base_url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'CREATE SCHEMA "{schema}"')
            except psycopg.Error as exc:
                log(
                    f"botwire-postgres: cannot create a private schema ({exc}); "
                    "using the URL's own search_path"
                )
            else:
                self.schema = schema
                sep = "&" if "?" in self.base_url else "?"
                self.url = f"{self.base_url}{sep}options=-csearch_path%3D{schema}"
        super().open()

    def close(self) -> None:
        super().close()
        import botwire

        try:
            botwire.forget(self.ns, url=self.url)
        except Exception as exc:  # noqa: BLE001
            log(f"botwire-postgres: forget({self.ns!r}) failed: {exc}")
        if self.schema:
            import psycopg

            with psycopg.connect(self.base_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


class DiskcacheSubject(Subject):
    name = "diskcache"
    kind = "peer"

    def __init__(self, tmpdir: str) -> None:
        self.dir = os.path.join(tmpdir, "diskcache")
        self.c: Any = None

    def open(self) -> None:
        import diskcache

        self.c = diskcache.Cache(self.dir)  # its default settings

    def populate(self, start: int, end: int) -> None:
        c = self.c
        for b in range(start, end, POPULATE_BATCH):
            with c.transact():
                for i in range(b, min(b + POPULATE_BATCH, end)):
                    c.set(kv_key(i), dumps(kv_value(i)))

    def prefill_log(self, name: str, n: int) -> None:
        c = self.c
        for b in range(0, n, POPULATE_BATCH):
            with c.transact():
                for i in range(b, min(b + POPULATE_BATCH, n)):
                    c.push(dumps(log_entry(i)), prefix=name)

    def get(self, key: str) -> Any:
        raw = self.c.get(key)
        return None if raw is None else loads(raw)

    def set(self, key: str, value: Any) -> Any:
        return self.c.set(key, dumps(value))

    def set_many(self, mapping: dict[str, Any]) -> Any:
        c = self.c
        with c.transact():
            for k, v in mapping.items():
                c.set(k, dumps(v))

    def incr(self, key: str) -> Any:
        return self.c.incr(key)

    def append(self, name: str, entry: Any) -> Any:
        return self.c.push(dumps(entry), prefix=name)

    def read_last(self, name: str) -> Any:
        c = self.c
        key, raw = c.peek(name, side="back")
        if key is None:
            return []
        num = int(key.rsplit("-", 1)[1])
        first = max(num - LAST + 1, 500_000_000_000_000)
        out = []
        for n in range(first, num):
            r = c.get(f"{name}-{n:015d}")
            if r is not None:
                out.append(loads(r))
        out.append(loads(raw))
        return out

    def close(self) -> None:
        if self.c is not None:
            self.c.close()
            self.c = None


class RedisSubject(Subject):
    name = "redis-py"
    kind = "peer"

    def __init__(self, host: str = "127.0.0.1", port: int = 6379) -> None:
        self.host, self.port = host, port
        self.prefix = f"botwire-bench:{uuid.uuid4().hex[:10]}:"
        self.r: Any = None

    def open(self) -> None:
        import redis

        self.r = redis.Redis(host=self.host, port=self.port)
        self.r.ping()

    def populate(self, start: int, end: int) -> None:
        p = self.prefix
        for b in range(start, end, POPULATE_BATCH):
            self.r.mset(
                {p + kv_key(i): dumps(kv_value(i)) for i in range(b, min(b + POPULATE_BATCH, end))}
            )

    def prefill_log(self, name: str, n: int) -> None:
        key = self.prefix + name
        for b in range(0, n, POPULATE_BATCH):
            self.r.rpush(key, *[dumps(log_entry(i)) for i in range(b, min(b + POPULATE_BATCH, n))])

    # keys are prefixed inside the timed call: one string concatenation, negligible
    def get(self, key: str) -> Any:
        raw = self.r.get(self.prefix + key)
        return None if raw is None else loads(raw)

    def set(self, key: str, value: Any) -> Any:
        return self.r.set(self.prefix + key, dumps(value))

    def set_many(self, mapping: dict[str, Any]) -> Any:
        p = self.prefix
        return self.r.mset({p + k: dumps(v) for k, v in mapping.items()})

    def incr(self, key: str) -> Any:
        return self.r.incr(self.prefix + key)

    def append(self, name: str, entry: Any) -> Any:
        return self.r.rpush(self.prefix + name, dumps(entry))

    def read_last(self, name: str) -> Any:
        return [loads(x) for x in self.r.lrange(self.prefix + name, -LAST, -1)]

    def close(self) -> None:
        if self.r is None:
            return
        batch: list[bytes] = []
        for k in self.r.scan_iter(match=self.prefix.replace("*", r"\*") + "*", count=5000):
            batch.append(k)
            if len(batch) >= 5000:
                self.r.unlink(*batch)
                batch.clear()
        if batch:
            self.r.unlink(*batch)
        self.r.close()
        self.r = None


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


@dataclass
class Stat:
    p50: float  # microseconds
    p99: float
    ops: float  # ops/s = 1 / mean
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
            ops=statistics.median(s.ops for s in self.reps),
            n=sum(s.n for s in self.reps),
        )


def pct(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanoseconds, in microseconds."""
    idx = max(0, min(len(sorted_ns) - 1, math.ceil(q * len(sorted_ns)) - 1))
    return sorted_ns[idx] / 1000.0


def time_calls(fn: Callable[..., Any], args: list[tuple]) -> list[int]:
    clock = time.perf_counter_ns
    out = [0] * len(args)
    for i, a in enumerate(args):
        t0 = clock()
        fn(*a)
        out[i] = clock() - t0
    return out


def summarize(lat: list[int]) -> Stat:
    lat = sorted(lat)
    return Stat(
        p50=pct(lat, 0.50),
        p99=pct(lat, 0.99),
        ops=1e9 / (sum(lat) / len(lat)),
        n=len(lat),
    )


@dataclass
class OpPlan:
    """One row: which method, and a generator of (warm-up args, timed args) per repetition."""

    label: str
    method: str
    make_args: Callable[[random.Random, int, str], list[tuple]]  # (rng, n, subject)
    ops: int  # timed calls per repetition
    warm: int


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


class Runner:
    def __init__(self, args: argparse.Namespace, subjects: list[Subject]) -> None:
        self.a = args
        self.subjects = subjects
        self.populated = {s.name: 0 for s in subjects}
        # results[section][row][subject] = Cell
        self.results: dict[str, dict[str, dict[str, Cell]]] = {}
        self.section_titles: dict[str, str] = {}
        self.dead: dict[str, str] = {}  # subject -> why it was dropped mid-run
        self._log_group = 0
        self.too_slow: dict[str, str] = {}  # subject -> why it is left out of larger key counts
        self.section_notes: dict[str, list[str]] = {}
        self.row_methods: dict[str, dict[str, str]] = {}  # section -> row -> Subject method
        self.notes: list[str] = []  # for the head of the report

    # -- helpers -----------------------------------------------------------------------------

    def subject(self, name: str) -> Subject:
        return next(s for s in self.subjects if s.name == name)

    @staticmethod
    def with_logs(subjects: list[Subject]) -> list[Subject]:
        return [s for s in subjects if s.supports("append") or s.supports("read_last")]

    def live(self) -> list[Subject]:
        return [s for s in self.subjects if s.name not in self.dead]

    def kv_subjects(self) -> list[Subject]:
        return [s for s in self.live() if s.name not in self.too_slow]

    def _each(
        self, what: str, fn: Callable[[Subject], None], subjects: list[Subject] | None = None
    ) -> None:
        for s in self.live() if subjects is None else subjects:
            t0 = time.perf_counter()
            try:
                fn(s)
            except Exception as exc:  # noqa: BLE001 - a broken subject must not end the run
                self.dead[s.name] = _short(f"{what} failed: {type(exc).__name__}: {exc}", 300)
                log(f"  {s.name}: {self.dead[s.name]} -- dropped from the rest of the run")
                continue
            log(f"  {s.name}: {what} in {time.perf_counter() - t0:.1f}s")

    def run_rows(self, section: str, rows: list[OpPlan], kv: bool = False) -> None:
        """Measure every (row, subject) of a section, ``reps`` times.

        Within a repetition the timed calls of all rows and subjects are interleaved in
        ``--chunks`` slices (row 1 subject A slice 1, row 1 subject B slice 1, ..., row 2 ...,
        then slice 2 of each), so that a burst of noise from the shared machine hits every
        subject and row alike instead of spoiling one measurement. Each slice starts with one
        untimed call, so that the cache misses caused by the other subjects are not counted.
        """
        table = self.results.setdefault(section, {})
        n_chunks = max(1, self.a.chunks)
        for rep in range(self.a.reps):
            subjects = self.kv_subjects() if kv else self.live()
            shift = rep % max(1, len(subjects))
            order = subjects[shift:] + subjects[:shift]
            plans = []  # (row, subject, cell, fn, slices, latencies)
            for row in rows:
                cells = table.setdefault(row.label, {})
                self.row_methods.setdefault(section, {})[row.label] = row.method
                for s in order:
                    if not s.supports(row.method):
                        continue  # no such op (a floor has only the ops it is the floor of)
                    cell = cells.setdefault(s.name, Cell())
                    if cell.error:
                        continue
                    # the same arguments for every subject in this repetition
                    seed = zlib.crc32(f"{SEED}/{section}/{row.label}/{rep}".encode())
                    rng = random.Random(seed)
                    warm = row.make_args(rng, row.warm, s.name)
                    args = row.make_args(rng, row.ops, s.name)
                    fn = getattr(s, row.method)
                    try:
                        time_calls(fn, warm)
                    except Exception as exc:  # noqa: BLE001
                        cell.error = _short(f"{type(exc).__name__}: {exc}", 200)
                        log(f"    {s.name} {row.label}: ERROR {cell.error}")
                        continue
                    step = math.ceil(len(args) / n_chunks)
                    slices = [args[i : i + step] for i in range(0, len(args), step)]
                    plans.append((row, s, cell, fn, slices, []))
            gc.collect()
            for c in range(n_chunks):
                for row, s, cell, fn, slices, lat in plans:
                    if cell.error or c >= len(slices):
                        continue
                    try:
                        fn(*slices[c][0])  # untimed: re-warm after the other subjects ran
                        lat += time_calls(fn, slices[c])
                    except Exception as exc:  # noqa: BLE001
                        cell.error = _short(f"{type(exc).__name__}: {exc}", 200)
                        log(f"    {s.name} {row.label}: ERROR {cell.error}")
            for row, s, cell, _fn, _slices, lat in plans:
                if cell.error or not lat:
                    continue
                st = summarize(lat)
                cell.reps.append(st)
                log(
                    f"    rep {rep + 1}/{self.a.reps} {row.label:<28} {s.name:<17}"
                    f" p50 {st.p50:9.1f}us  p99 {st.p99:9.1f}us  {st.ops:10.0f} ops/s"
                )

    def short_logs(self, tag: str, count: int) -> list[str]:
        names = [f"{tag}-{i}" for i in range(count)]
        self._each(
            f"prefill {count} logs x {LOG_SHORT} entries",
            lambda s: [s.prefill_log(n, LOG_SHORT) for n in names],
            self.with_logs(self.kv_subjects()),
        )
        return names

    # -- sections ----------------------------------------------------------------------------

    def kv_section(self, size: int) -> None:
        a = self.a
        sec = f"kv-{size}"
        self.section_titles[sec] = f"{human(size)} keys"
        log(f"== {human(size)} keys: populating")

        budget = a.populate_budget
        notes = self.section_notes.setdefault(sec, [])

        def populate(s: Subject) -> None:
            start = self.populated[s.name]
            if start >= size:
                return
            t0 = time.perf_counter()
            done = start
            step = 5 * POPULATE_BATCH
            while done < size:
                end = min(done + step, size)
                s.populate(done, end)
                done = end
                self.populated[s.name] = done
                dt = time.perf_counter() - t0
                projected = dt / (done - start) * (size - start)
                if done < size and (dt > budget or (dt > 15 and projected > budget * 1.2)):
                    rate = (done - start) / dt
                    why = (
                        f"not measured at {human(size)} keys: loading them "
                        f"({POPULATE_BATCH} keys per call or transaction) ran at "
                        f"{rate:,.0f} keys/s "
                        f"({human(done)} keys after {dt:.0f} s, about {projected:.0f} s "
                        f"projected for all), over the {budget:.0f} s budget "
                        "(--populate-budget)"
                    )
                    self.too_slow[s.name] = why
                    notes.append(f"**{s.name}** {why}")
                    log(f"  {s.name}: {why}")
                    return
            dt = time.perf_counter() - t0
            log(
                f"  {s.name}: +{human(size - start)} keys in {dt:.1f}s "
                f"({(size - start) / dt:,.0f} keys/s)"
            )
            notes.append(
                f"{s.name}: loaded {human(size - start)} keys in {dt:.1f} s "
                f"({(size - start) / dt:,.0f} keys/s)"
            )

        # one subject after another: in threads, the GIL convoy effect slowed the I/O-bound
        # loaders (PostgreSQL, Redis) tenfold
        def populate_then(s: Subject) -> None:
            populate(s)
            # before the next subject loads: botwire-sqlite's search-index catch-up holds the
            # file's write lock in slices, which would starve sqlite-raw's loading
            if s.name not in self.too_slow:
                note = s.after_populate()
                if note:
                    notes.append(note)
                    log(f"  {note}")

        self._each("populate", populate_then, self.kv_subjects())

        total_appends = a.reps * (a.ops + a.warm + a.chunks)  # + one re-warm call per slice
        n_append_logs = max(1, math.ceil(total_appends / APPENDS_PER_SHORT_LOG))
        self._log_group += 1
        g = self._log_group
        full = "kv" in a.sections  # else only the rows the goals are about
        read_logs = self.short_logs(f"r{g}", READ_LOGS) if full else []
        append_logs = self.short_logs(f"a{g}", n_append_logs)
        append_iters = {
            s.name: _round_robin(append_logs, random.Random(SEED + g)) for s in self.subjects
        }

        def keys(rng: random.Random, n: int, subj: str) -> list[tuple]:
            return [(kv_key(rng.randrange(size)),) for _ in range(n)]

        def key_values(rng: random.Random, n: int, subj: str) -> list[tuple]:
            out = []
            for _ in range(n):
                i = rng.randrange(size)
                out.append((kv_key(i), kv_value(i + size)))
            return out

        def batches(rng: random.Random, n: int, subj: str) -> list[tuple]:
            out = []
            for _ in range(n):
                idx = rng.sample(range(size), SET_MANY)
                out.append(({kv_key(i): kv_value(i + size) for i in idx},))
            return out

        def counters(rng: random.Random, n: int, subj: str) -> list[tuple]:
            return [(f"counter:{rng.randrange(N_COUNTERS)}",) for _ in range(n)]

        def appends(rng: random.Random, n: int, subj: str) -> list[tuple]:
            it = append_iters[subj]
            return [(next(it), log_entry(rng.randrange(1000))) for _ in range(n)]

        def reads(rng: random.Random, n: int, subj: str) -> list[tuple]:
            return [(rng.choice(read_logs),) for _ in range(n)]

        rows = [
            OpPlan("get", "get", keys, a.ops, a.warm),
            OpPlan("set", "set", key_values, a.ops, a.warm),
            OpPlan(f"set_many({SET_MANY})", "set_many", batches, a.ops_many, a.warm_many),
            OpPlan("incr", "incr", counters, a.ops, a.warm),
            OpPlan(APPEND_ROW, "append", appends, a.ops, a.warm),
            OpPlan(
                f"log read(last={LAST}) ({LOG_SHORT}-entry log)", "read_last", reads, a.ops, a.warm
            ),
        ]
        if not full:
            rows = [r for r in rows if r.label in GOAL_ROWS]
        log(f"== {human(size)} keys: measuring")
        self.run_rows(sec, rows, kv=True)

    def log_section(self, lengths: list[int]) -> None:
        a = self.a
        sec = "logs"
        self.section_titles[sec] = "log length"
        reads: list[OpPlan] = []
        appends: list[OpPlan] = []
        total_appends = a.reps * (a.ops + a.warm + a.chunks)  # + one re-warm call per slice
        for length in lengths:
            self._log_group += 1
            g = self._log_group
            if length <= 1000:
                # many short logs, so that each stays near `length` despite the timed appends
                per_log = max(1, min(APPENDS_PER_SHORT_LOG, length // 2))
                n_logs = max(1, math.ceil(total_appends / per_log))
                log(f"== logs of {human(length)} entries: prefilling {n_logs} logs per subject")
                names = [f"L{g}-{i}" for i in range(n_logs)]
                self._each(
                    f"prefill {n_logs} logs x {length} entries",
                    lambda s, names=names, length=length: [s.prefill_log(n, length) for n in names],
                    self.with_logs(self.live()),
                )
                read_names = [f"R{g}-{i}" for i in range(READ_LOGS)]
                self._each(
                    f"prefill {READ_LOGS} logs x {length} entries (read only)",
                    lambda s, names=read_names, length=length: [
                        s.prefill_log(n, length) for n in names
                    ],
                    self.with_logs(self.live()),
                )
            else:
                log(f"== a log of {human(length)} entries: prefilling")
                names = [f"L{g}-0"]
                self._each(
                    f"prefill 1 log x {human(length)} entries",
                    lambda s, names=names, length=length: s.prefill_log(names[0], length),
                    self.with_logs(self.live()),
                )
                read_names = names
            iters = {s.name: _round_robin(names, random.Random(SEED + g)) for s in self.subjects}

            def append_args(rng: random.Random, n: int, subj: str, iters=iters) -> list[tuple]:
                it = iters[subj]
                return [(next(it), log_entry(rng.randrange(1000))) for _ in range(n)]

            def read_args(rng: random.Random, n: int, subj: str, rn=read_names) -> list[tuple]:
                return [(rng.choice(rn),) for _ in range(n)]

            reads.append(
                OpPlan(
                    f"read(last={LAST}) @ {human(length)} entries",
                    "read_last",
                    read_args,
                    a.ops,
                    a.warm,
                )
            )
            appends.append(
                OpPlan(f"append @ {human(length)} entries", "append", append_args, a.ops, a.warm)
            )
        log("== logs: measuring")
        self.run_rows(sec, appends + reads)


def _round_robin(names: list[str], rng: random.Random) -> Iterable[str]:
    order = list(names)
    rng.shuffle(order)

    def gen():
        while True:
            yield from order

    return gen()


def _cycle(names: list[str]) -> Iterable[str]:
    def gen():
        while True:
            yield from names

    return gen()


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def fmt_us(x: float) -> str:
    if x >= 1000:
        return f"{x / 1000:.2f} ms"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}"


def fmt_ops(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x"


def stat_of(results, sec, row, subj) -> Stat | None:
    cell = results.get(sec, {}).get(row, {}).get(subj)
    return cell.median() if cell else None


def render(runner: Runner, meta: dict[str, Any]) -> str:
    res = runner.results
    names = [s.name for s in runner.subjects]
    out: list[str] = []
    w = out.append
    w("# botwire core benchmark results\n")
    w(f"Command: `{meta['command']}`  ")
    w(f"Date: {meta['date']}; total run time {meta['elapsed']:.0f} s  ")
    w(f"Machine: {meta['machine']}  ")
    w(f"Versions: {meta['versions']}  ")
    w(
        f"Per measurement: {runner.a.ops} timed calls ({runner.a.ops_many} for set_many) after "
        f"{runner.a.warm} warm-up calls, all rows and subjects of a section interleaved in "
        f"{runner.a.chunks} slices; median of {runner.a.reps} repetition(s); "
        "latencies in microseconds unless marked ms; ops/s = 1 / mean latency.\n"
    )
    if meta.get("interrupted"):
        w("- **The run was interrupted**: only what was measured before is shown.")
    for sname, why in meta["skipped"].items():
        w(f"- **{sname} skipped**: {why}")
    for sname, why in runner.dead.items():
        w(f"- **{sname} dropped during the run**: {why}")
    for note in runner.notes:
        w(f"- {note}")
    if meta["skipped"] or runner.dead or runner.notes:
        w("")

    for sec, rows in res.items():
        title = runner.section_titles[sec]
        methods = runner.row_methods.get(sec, {})
        names = [
            s.name
            for s in runner.subjects
            if any(s.supports(methods.get(r, r)) for r in rows)  # no column of only "–"
        ]
        w(f"## {title}\n")
        for note in runner.section_notes.get(sec, []):
            w(f"- {note}")
        if runner.section_notes.get(sec):
            w("")
        hdr = "| op |" + "".join(f" {n} p50 | {n} p99 | {n} ops/s |" for n in names)
        w(hdr)
        w("|---|" + "---:|" * (3 * len(names)))
        for row, cells in rows.items():
            line = f"| {row} |"
            for n in names:
                c = cells.get(n)
                st = c.median() if c else None
                if c is None and not runner.subject(n).supports(methods.get(row, row)):
                    line += " – | – | – |"
                elif st is None:
                    err = c.error if c and c.error else "not measured"
                    line += f" {_short(err)} | | |"
                else:
                    line += f" {fmt_us(st.p50)} | {fmt_us(st.p99)} | {fmt_ops(st.ops)} |"
            w(line)
        w("")
        # ratios
        pairs = [
            (b, p)
            for b in ("botwire-sqlite", "botwire-postgres")
            for p in ("diskcache", "redis-py")
            if b in names and p in names
        ]
        if pairs:
            w(
                f"Ratios at {title}: peer p50 / botwire p50 (above 1 = botwire faster), "
                "and botwire ops/s / peer ops/s\n"
            )
            w(
                "| op |"
                + "".join(
                    f" {p} / {b.replace('botwire-', '')} p50 | "
                    f"{b.replace('botwire-', '')} / {p} ops/s |"
                    for b, p in pairs
                )
            )
            w("|---|" + "---:|" * (2 * len(pairs)))
            for row in rows:
                line = f"| {row} |"
                for b, p in pairs:
                    sb, sp = stat_of(res, sec, row, b), stat_of(res, sec, row, p)
                    if sb and sp:
                        line += f" {fmt_ratio(sp.p50 / sb.p50)} | {fmt_ratio(sb.ops / sp.ops)} |"
                    else:
                        line += " n/a | n/a |"
                w(line)
            w("")

    targets = evaluate_targets(runner)
    if targets and ("kv" in runner.a.sections or "logs" in runner.a.sections):
        w("## Targets\n")
        w("| target | subject / where | numbers | result |")
        w("|---|---|---|---|")
        for t in targets:
            w(f"| {t['target']} | {t['where']} | {t['numbers']} | {t['result']} |")
        w("")

    goals = evaluate_goals(runner)
    if goals:
        w("## Goals\n")
        w(
            "Each botwire p50 next to its floor's p50, both from the section named in the row "
            "(the same keys, values and interleaved slices, in this run). ratio = botwire p50 / "
            "floor p50, from the medians over the repetitions; per rep = the same ratio in "
            "each repetition. The floor of the embedded rows is `sqlite-raw` (Python's sqlite3 "
            f"on a `{RAW_TABLE}` table in botwire-sqlite's own file, the same pragmas; `set`: "
            "one `INSERT ... ON CONFLICT (k) DO UPDATE` in autocommit; `get`: one "
            "`SELECT v ... WHERE k = ?` and `json.loads`); the floor of the PostgreSQL rows is "
            "botwire-postgres's own `set`.\n"
        )
        w("| row | botwire p50 (us) | floor | floor p50 (us) | ratio | per rep | goal | verdict |")
        w("|---|---:|---|---:|---:|---|---:|---|")
        for g in goals:
            w(
                f"| {g['row']} | {g['botwire_p50']} | {g['floor']} | {g['floor_p50']} | "
                f"{g['ratio']} | {g['per_rep']} | {g['goal']} | {g['verdict']} |"
            )
        w("")
    return "\n".join(out)


# (row, botwire subject, botwire row, floor subject, floor row, goal: at most this ratio)
GOALS: tuple[tuple[str, str, str, str, str, float], ...] = (
    (
        "embedded `set` p50 (SQLite, search index on)",
        "botwire-sqlite",
        "set",
        "sqlite-raw",
        "set",
        1.3,
    ),
    ("embedded `get` p50 (SQLite)", "botwire-sqlite", "get", "sqlite-raw", "get", 1.2),
    ("PostgreSQL `incr` p50", "botwire-postgres", "incr", "botwire-postgres", "set", 1.3),
    (
        f"PostgreSQL log `append` p50 ({LOG_SHORT}-entry log)",
        "botwire-postgres",
        APPEND_ROW,
        "botwire-postgres",
        "set",
        1.3,
    ),
)


def evaluate_goals(runner: Runner) -> list[dict[str, Any]]:
    """The Goals table: one row per goal and key count, computed from this run's cells."""
    res = runner.results
    have = {s.name for s in runner.subjects}
    out: list[dict[str, Any]] = []
    for sec in [s for s in res if s.startswith("kv-")]:
        title = runner.section_titles[sec]
        for label, subj, row, fsubj, frow, goal in GOALS:
            g: dict[str, Any] = {
                "row": f"{label} @ {title}",
                "section": sec,
                "subject": subj,
                "subject_row": row,
                "floor": f"{fsubj} `{frow}`",
                "goal": f"<= {goal:g}x",
                "goal_ratio": goal,
                "botwire_p50": "n/a",
                "floor_p50": "n/a",
                "botwire_p50_us": None,
                "floor_p50_us": None,
                "ratio": "n/a",
                "ratio_value": None,
                "per_rep": "",
                "verdict": "n/a",
            }
            out.append(g)
            missing = [n for n in (subj, fsubj) if n not in have]
            if missing:
                g["verdict"] = f"n/a ({', '.join(sorted(set(missing)))} not in the run)"
                continue
            cb = res.get(sec, {}).get(row, {}).get(subj)
            cf = res.get(sec, {}).get(frow, {}).get(fsubj)
            sb = cb.median() if cb else None
            sf = cf.median() if cf else None
            if sb:
                g["botwire_p50"], g["botwire_p50_us"] = fmt_us(sb.p50), sb.p50
            if sf:
                g["floor_p50"], g["floor_p50_us"] = fmt_us(sf.p50), sf.p50
            if not (sb and sf):
                why = [c.error for c in (cb, cf) if c and c.error]
                if not why:
                    slow = [n for n in dict.fromkeys((subj, fsubj)) if n in runner.too_slow]
                    why = [f"{n} not measured at {title}: loading was over budget" for n in slow]
                if not why:
                    why = [f"{n}: {runner.dead[n]}" for n in (subj, fsubj) if n in runner.dead]
                g["verdict"] = "n/a (" + (_short(why[0], 90) if why else "not measured") + ")"
                continue
            ratio = sb.p50 / sf.p50
            g["ratio"] = fmt_ratio(ratio)
            g["ratio_value"] = ratio
            if cb and cf and len(cb.reps) == len(cf.reps):
                g["per_rep"] = ", ".join(
                    f"{b.p50 / f.p50:.2f}" for b, f in zip(cb.reps, cf.reps, strict=True)
                )
            g["verdict"] = "**met**" if ratio <= goal else "**not met**"
    return out


def _short(text: str, n: int = 60) -> str:
    return " ".join(text.replace("|", "/").split())[:n]


def evaluate_targets(runner: Runner) -> list[dict[str, str]]:
    res = runner.results
    out: list[dict[str, str]] = []
    kv_secs = [s for s in res if s.startswith("kv-")]
    B = "botwire-sqlite"

    def add(target, where, numbers, ok):
        out.append(
            {
                "target": target,
                "where": where,
                "numbers": numbers,
                "result": "n/a" if ok is None else ("**met**" if ok else "**NOT met**"),
            }
        )

    for sec in kv_secs:
        t = runner.section_titles[sec]
        g = stat_of(res, sec, "get", B)
        dg = stat_of(res, sec, "get", "diskcache")
        rg = stat_of(res, sec, "get", "redis-py")
        if g and dg:
            add(
                "embedded get p50 <= diskcache get p50",
                t,
                f"{g.p50:.1f} vs {dg.p50:.1f} us ({dg.p50 / g.p50:.2f}x)",
                g.p50 <= dg.p50,
            )
        else:
            add("embedded get p50 <= diskcache get p50", t, "missing data", None)
        if g and rg:
            add(
                "embedded get p50 >= 10x faster than redis-py GET",
                t,
                f"{g.p50:.1f} vs {rg.p50:.1f} us ({rg.p50 / g.p50:.1f}x)",
                g.p50 * 10 <= rg.p50,
            )
        else:
            add("embedded get p50 >= 10x faster than redis-py GET", t, "missing data", None)
        s = stat_of(res, sec, "set", B)
        ds = stat_of(res, sec, "set", "diskcache")
        if s and ds:
            add(
                "embedded set p50 <= 1/2 diskcache set p50",
                t,
                f"{s.p50:.1f} vs {ds.p50:.1f} us ({s.p50 / ds.p50:.2f} of it)",
                s.p50 * 2 <= ds.p50,
            )
        else:
            add("embedded set p50 <= 1/2 diskcache set p50", t, "missing data", None)

    logs = res.get("logs", {})
    lengths = sorted({int(_length_of(r)) for r in logs})
    if len(lengths) >= 2:
        lo, hi = lengths[0], lengths[-1]
        note = "" if hi >= 100_000 else f" (only {human(hi)} measured, target is at 100k)"
        for subj in (B, "botwire-postgres"):
            if subj not in [s.name for s in runner.subjects]:
                continue
            a_lo = stat_of(res, "logs", f"append @ {human(lo)} entries", subj)
            a_hi = stat_of(res, "logs", f"append @ {human(hi)} entries", subj)
            label = "" if subj == B else " (informational)"
            if a_lo and a_hi:
                add(
                    f"append p50 @{human(hi)} <= 1.5x append @{human(lo)}{label}",
                    subj + note,
                    f"{a_hi.p50:.1f} vs {a_lo.p50:.1f} us ({a_hi.p50 / a_lo.p50:.2f}x)",
                    a_hi.p50 <= 1.5 * a_lo.p50,
                )
            else:
                add(
                    f"append p50 @{human(hi)} <= 1.5x append @{human(lo)}{label}",
                    subj,
                    "missing data",
                    None,
                )
            r_hi = stat_of(res, "logs", f"read(last={LAST}) @ {human(hi)} entries", subj)
            if r_hi:
                add(
                    f"read(last={LAST}) p50 @{human(hi)} < 1 ms{label}",
                    subj + note,
                    f"{r_hi.p50:.1f} us (p99 {r_hi.p99:.1f} us)",
                    r_hi.p50 < 1000,
                )
            else:
                add(f"read(last={LAST}) p50 @{human(hi)} < 1 ms{label}", subj, "missing data", None)
    return out


def _length_of(row: str) -> int:
    txt = row.split("@")[1].strip().split()[0]
    return parse_size(txt)


def machine_info() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        kb = int(f.readline().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores{mem} "
        "(shared, noisy)"
    )


SOURCE_DIGEST = ""  # taken when the run starts


def source_digest(src: str | None = None) -> str:
    """Short digest of the package's *.py (``src``, default src/botwire): which state of the code
    these numbers belong to."""
    import hashlib

    h = hashlib.sha256()
    src = src or os.path.join(ROOT, "src", "botwire")
    for dirpath, dirnames, filenames in sorted(os.walk(src)):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                h.update(os.path.relpath(path, src).encode())
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()[:12]


def versions(subjects: list[Subject]) -> str:
    parts = [f"Python {platform.python_version()}", f"SQLite {sqlite3.sqlite_version}"]
    for mod in ("botwire", "diskcache", "redis", "psycopg"):
        with contextlib.suppress(Exception):
            m = __import__(mod)
            ver = f"{mod} {getattr(m, '__version__', '?')}"
            if mod == "botwire":
                ver += f" (src digest {SOURCE_DIGEST or source_digest()})"
            parts.append(ver)
    for s in subjects:
        with contextlib.suppress(Exception):
            if isinstance(s, RedisSubject) and s.r is not None:
                parts.append(f"Redis server {s.r.info('server')['redis_version']}")
            if isinstance(s, BotwirePostgres):
                import psycopg

                with psycopg.connect(s.url, connect_timeout=3) as conn:
                    v = conn.execute("SHOW server_version").fetchone()[0]
                parts.append(f"PostgreSQL server {v}")
    return ", ".join(parts)


def to_json(runner: Runner, meta: dict[str, Any]) -> dict[str, Any]:
    def cell_json(c: Cell) -> dict[str, Any]:
        m = c.median()
        return {
            "error": c.error,
            "median": m.__dict__ if m else None,
            "reps": [s.__dict__ for s in c.reps],
        }

    return {
        "meta": meta,
        "sections": {
            sec: {
                "title": runner.section_titles[sec],
                "rows": {
                    r: {n: cell_json(c) for n, c in cells.items()} for r, cells in rows.items()
                },
            }
            for sec, rows in runner.results.items()
        },
        "targets": evaluate_targets(runner),
        "goals": evaluate_goals(runner),
        "dropped": runner.dead,
    }


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


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
        return f"{url} unreachable: {type(exc).__name__}: {str(exc).strip()[:200]}"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="10k keys, logs of 10 and 10k entries, fewer calls (about a minute)",
    )
    p.add_argument("--sizes", help="key counts, comma-separated (default 10k,1M; quick: 10k)")
    p.add_argument("--log-sizes", help="log lengths (default 10,100k; quick: 10,10k)")
    p.add_argument(
        "--postgres-url",
        default=DEFAULT_PG,
        help="PostgreSQL for botwire-postgres (default $BOTWIRE_BENCH_POSTGRES_URL "
        "or postgresql://postgres@127.0.0.1:5432/test)",
    )
    p.add_argument(
        "--postgres-shared-schema",
        action="store_true",
        help="run in the URL's own schema instead of a private one made for the run",
    )
    p.add_argument("--no-postgres", action="store_true", help="leave out botwire-postgres")
    p.add_argument("--redis", default="127.0.0.1:6379", help="host:port of the local Redis")
    p.add_argument(
        "--subjects",
        help="comma-separated subset of botwire-sqlite,sqlite-raw,botwire-postgres,diskcache,"
        "redis-py (default: all; with --sections goals alone: " + ",".join(GOAL_SUBJECTS) + ")",
    )
    p.add_argument(
        "--sections",
        default="kv,logs",
        help="comma-separated subset of kv (every key-value row at each key count), logs (the "
        "log-length section), goals (only the rows of the Goals table: get, set, incr and "
        "log append at each key count; kv includes them). Default kv,logs. "
        "`--quick --sections goals` is the short check of the goals",
    )
    p.add_argument("--ops", type=int, help="timed calls per measurement (default 2000; quick 500)")
    p.add_argument("--reps", type=int, help="repetitions (default 3)")
    p.add_argument(
        "--chunks",
        type=int,
        default=10,
        help="slices in which the calls of all rows and subjects are interleaved (default 10)",
    )
    p.add_argument(
        "--output", help="write the markdown here (default: stdout and bench/results/latest.md)"
    )
    p.add_argument(
        "--populate-budget",
        type=float,
        default=150.0,
        help="seconds a subject may take to load the keys for one key count before "
        "it is left out of that count and larger ones (default 150)",
    )
    p.add_argument("--tmpdir", help="parent directory for the SQLite/diskcache files")
    a = p.parse_args(argv)

    a.sizes = parse_sizes(a.sizes) if a.sizes else ([10_000] if a.quick else [10_000, 1_000_000])
    a.log_sizes = (
        parse_sizes(a.log_sizes) if a.log_sizes else ([10, 10_000] if a.quick else [10, 100_000])
    )
    a.ops = a.ops or (500 if a.quick else 2000)
    a.reps = a.reps or 3
    a.warm = max(20, a.ops // 10)
    a.ops_many = max(50, a.ops // 10)
    a.warm_many = max(5, a.ops_many // 10)
    a.sections = {t.strip() for t in a.sections.split(",") if t.strip()}
    if not a.sections or a.sections - set(SECTIONS):
        p.error(f"--sections: a comma-separated subset of {','.join(SECTIONS)}")
    wanted = set(a.subjects.split(",")) if a.subjects else None
    if wanted is None and a.sections == {"goals"}:
        wanted = set(GOAL_SUBJECTS)

    global SOURCE_DIGEST
    with contextlib.suppress(OSError):
        SOURCE_DIGEST = source_digest()
    t_start = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="botwire-bench-", dir=a.tmpdir)
    subjects: list[Subject] = []
    skipped: dict[str, str] = {}

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    botwire_problem = None
    try:
        import botwire  # noqa: F401
        from botwire import Memory  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        botwire_problem = f"`from botwire import Memory` failed: {type(exc).__name__}: {exc}"

    candidates: list[tuple[str, Callable[[], Subject], str | None]] = [
        ("botwire-sqlite", lambda: BotwireSQLite(tmp), botwire_problem),
        ("sqlite-raw", lambda: SQLiteRaw(tmp), None),  # after botwire-sqlite: its file
        (
            "botwire-postgres",
            lambda: BotwirePostgres(a.postgres_url, not a.postgres_shared_schema),
            botwire_problem or ("--no-postgres" if a.no_postgres else None),
        ),
        ("diskcache", lambda: DiskcacheSubject(tmp), None),
        ("redis-py", lambda: RedisSubject(*_hostport(a.redis)), None),
    ]
    for name, make, problem in candidates:
        if not want(name):
            continue
        if name == "botwire-postgres" and not problem:
            problem = postgres_reachable(a.postgres_url)
        if problem:
            skipped[name] = problem
            log(f"skipping {name}: {problem}")
            continue
        s = make()
        try:
            s.open()
            s.check()
        except Exception as exc:  # noqa: BLE001
            skipped[name] = _short(f"open/sanity check failed: {type(exc).__name__}: {exc}", 300)
            log(f"skipping {name}: {skipped[name]}")
            with contextlib.suppress(Exception):
                s.close()
            continue
        subjects.append(s)
        log(f"subject {name} ready")

    if not subjects:
        log("nothing to benchmark")
        shutil.rmtree(tmp, ignore_errors=True)
        return 1

    runner = Runner(a, subjects)
    raw = next((s for s in subjects if isinstance(s, SQLiteRaw)), None)
    if raw is not None:
        bw = next((s for s in subjects if isinstance(s, BotwireSQLite)), None)
        other = None
        with contextlib.suppress(Exception):  # the engine's own connection, if it is at hand
            other = bw.m.engine._connection() if bw else None
        runner.notes.append(raw.compare_pragmas(other))
        log(runner.notes[-1])
    interrupted = False
    try:
        kv = bool(a.sections & {"kv", "goals"})
        for size in a.sizes if kv else []:
            runner.kv_section(size)
            if size == a.sizes[0] and "logs" in a.sections:
                runner.log_section(a.log_sizes)
        if not kv and "logs" in a.sections:
            runner.log_section(a.log_sizes)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: reporting what was measured so far")
    finally:
        vers = versions(subjects)
        for s in subjects:
            try:
                s.close()
            except Exception as exc:  # noqa: BLE001
                log(f"cleanup of {s.name} failed: {exc}")
        shutil.rmtree(tmp, ignore_errors=True)

    elapsed = time.perf_counter() - t_start
    cmd = "make bench" + (
        f" BENCH_ARGS='{' '.join(argv if argv is not None else sys.argv[1:])}'"
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    meta = {
        "command": cmd,
        "argv": sys.argv[1:] if argv is None else argv,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "elapsed": elapsed,
        "machine": machine_info(),
        "versions": vers,
        "skipped": skipped,
        "interrupted": interrupted,
    }
    md = render(runner, meta)
    if a.output:
        os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
        with open(a.output, "w") as f:
            f.write(md + "\n")
        json_path = os.path.splitext(a.output)[0] + ".json"
    else:
        print(md)
        resdir = os.path.join(HERE, "results")
        os.makedirs(resdir, exist_ok=True)
        with open(os.path.join(resdir, "latest.md"), "w") as f:
            f.write(md + "\n")
        json_path = os.path.join(resdir, "latest.json")
    with open(json_path, "w") as f:
        json.dump(to_json(runner, meta), f, indent=1, default=str)
    log(
        f"done in {elapsed:.0f}s; markdown -> {a.output or 'stdout + bench/results/latest.md'}, "
        f"raw -> {json_path}"
    )
    return 0


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port or 6379)


if __name__ == "__main__":
    sys.exit(main())
