#!/usr/bin/env python3
"""Sizing figures for docs/deploy.md: writes and call starts per core, disk per caller, SQLite
and PostgreSQL.

    python bench/bench_capacity.py                   # about 4 minutes; a markdown report
    python bench/bench_capacity.py --big-callers 960 # + 1M keys and log entries: 15-20 min
    python bench/bench_capacity.py --no-postgres --callers 2000 --seconds 2

What is measured, on this machine:

* **Writes per core, one process** (``engine``): one thread calls ``Memory.set`` of a fact
  value of about 200 bytes of JSON, over 20 facts of 1000 callers, for ``--seconds``,
  ``--reps`` times (the median is shown). CPU is the process's own (every thread: SQLite's
  background checkpoints and search indexing included) plus, on PostgreSQL, the CPU of the
  database backends serving it (found by their ``application_name``; the WAL writer and
  checkpointer are not counted). Writes per core = writes / (those CPU seconds).
* **Writes per core, ``botwire serve``** (``http``): one server worker (the default) takes
  ``PUT /v1/namespaces/{caller}/keys/{fact}`` from ``--clients`` keep-alive connections for
  ``--seconds`` (``--reps`` times); the CPU counted is the server process's (and its
  backends'), not the load generator's, which shares the machine.
* **Disk per caller**: ``--callers`` callers, each with 20 facts (``set_many``) and a
  10-entry ``calls`` log (one ``extend``), values as above (``plain``; SQLite filled by one
  thread, PostgreSQL by ``--threads``); and ``--voice-callers``
  callers as the voice webhooks leave them: 10 calls each through ``core.end_call``, every call
  with a 6-turn transcript, a summary and 2 extracted fields that become facts with provenance
  (20 facts), so each caller has 20 facts and their history records, 10 call records, 60
  transcript lines, ``last_call`` and the calls' claims (``voice``). SQLite: the file's growth
  once the WAL is checkpointed (TRUNCATE); its search index is built on demand, when a caller
  is searched, so callers never searched carry none. PostgreSQL: the
  growth of ``pg_total_relation_size`` (tables, indexes, TOAST) of the ``botwire_*`` tables in
  a private schema ``botwire_bench_<random>`` (dropped at the end), after ``VACUUM``. Callers
  per GiB = 2^30 / bytes per caller: a linear extrapolation (indexes grow a little faster
  than linearly; WAL, backups and free space are extra).
* **Call starts per core, one process**: one thread runs the call-start read the webhooks
  run, ``core.briefing()`` (the caller's facts, last 20 calls and notes, built into the
  ``memory`` text and variables) driven by ``core.run`` on a ``Memory`` of one ``voice``
  caller after another (the callers the disk measurement just filled, in its database); each
  answer is checked to know the caller. CPU as for writes.
* **Call starts per core, ``botwire serve``**: one server worker, started with
  ``BOTWIRE_VAPI_SECRET`` and ``BOTWIRE_VAPI_ASSISTANT_ID``, answers Vapi ``assistant-request``
  webhooks (``POST /voice/vapi``, the secret in ``x-vapi-secret``) for those callers' numbers
  from ``--clients`` keep-alive connections; every answer must name the assistant and carry
  the caller's "Known facts". CPU as for the PUTs.
* **A million callers** (``--big-callers`` N, ``--calls-per-caller`` C): N callers of C calls
  each through ``core.end_call``, as in ``voice`` (20 facts, which later calls overwrite, so a
  caller has 20 facts and their provenance, ``last_call``, 6 C transcript lines, C call
  records and 3 C delivery claims), in a database of their own; measured as above, with the
  keys and log entries they added counted; on SQLite measured again once each caller was
  searched (one ``Memory.search``) and the index caught up. 960 x 100 make about 1M.
  1M callers = bytes per caller at that size x 1,000,000, in GiB: WAL, backups, free space
  beyond the pages' own and index growth a little above linear are not included. PostgreSQL
  is filled with ``synchronous_commit=off`` (the same rows; commits do not wait for the disk).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import quote

from botwire import Memory
from botwire._version import __version__
from botwire.engines import open_engine
from botwire.voice import core
from botwire.voice.records import CallEnd, Turn

POSTGRES = os.environ.get("BOTWIRE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
FACTS, CALLS, TURNS = 20, 10, 6
GIB = 2**30
START = 1_700_000_000.0


def say(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


# -- realistic values --------------------------------------------------------------------------


def caller_ns(i: int) -> str:
    return f"phone:+1415{i:07d}"


def fact_value(i: int, j: int) -> dict[str, Any]:
    """About 200 bytes of JSON: what a voice agent remembers about a caller."""
    return {
        "text": f"Prefers a callback after 5 pm on weekdays; order A-{i:06d}-{j:02d} shipped "
        "by ground, asked for a signature on delivery and a paper receipt",
        "source": "vapi",
        "call_id": f"call-{i:07d}-{j:02d}",
        "confidence": 0.92,
    }


def call_record(i: int, n: int) -> dict[str, Any]:
    """About 300 bytes: one entry of a ``calls`` log."""
    ended = START + n * 600
    return {
        "call_id": f"call-{i:07d}-{n:02d}",
        "platform": "vapi",
        "started_at": ended - 180,
        "ended_at": ended,
        "duration_s": 180.0,
        "summary": f"Asked about order A-{i:06d}-{n:02d}: shipped by ground, arriving Thursday; "
        "wants a callback if it is late",
        "outcome": "resolved",
        "successful": True,
    }


def voice_call(i: int, n: int) -> CallEnd:
    ended = START + n * 600
    turns = tuple(
        Turn(
            "user" if t % 2 == 0 else "assistant",
            f"Turn {t}: about order A-{i:06d}-{n:02d}, when it ships and where it goes",
            ended - 180 + t * 20,
        )
        for t in range(TURNS)
    )
    extracted = {  # 20 facts in all: from the 11th call on, calls overwrite them
        f"detail_{2 * n % FACTS:02d}": f"order A-{i:06d}-{n:02d} ships by ground",
        f"detail_{(2 * n + 1) % FACTS:02d}": "prefers a callback after 5 pm on weekdays",
    }
    return CallEnd(
        "vapi",
        f"call-{i:07d}-{n:02d}",
        caller_ns(i).removeprefix("phone:"),
        started_at=ended - 180,
        ended_at=ended,
        summary=f"Asked about order A-{i:06d}-{n:02d}: shipped, arriving Thursday",
        outcome="resolved",
        successful=True,
        turns=turns,
        extracted=extracted,
    )


# -- CPU accounting ----------------------------------------------------------------------------


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of one process so far (Linux /proc); 0 once it is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


class Backends:
    """The PostgreSQL backends of one ``application_name``, and their CPU (local server only)."""

    def __init__(self, admin_url: str, tag: str) -> None:
        self.admin_url, self.tag = admin_url, tag
        self.start: dict[int, float] = {}

    def pids(self) -> list[int]:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.tag,)
            ).fetchall()
        return [r[0] for r in rows]

    def mark(self) -> None:
        self.start = {pid: cpu_of(pid) for pid in self.pids()}

    def used(self) -> float:
        now = {pid: cpu_of(pid) for pid in self.pids()}
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in now.items())


@dataclass
class Rate:
    label: str
    count: int  # writes, or call starts
    seconds: float
    client_cpu: float
    db_cpu: float | None = None  # None: no separate database process

    @property
    def per_core(self) -> float:
        cpu = self.client_cpu + (self.db_cpu or 0.0)
        return self.count / cpu if cpu else 0.0


# -- PostgreSQL schemas ------------------------------------------------------------------------


@dataclass
class Schemas:
    """Private schemas ``botwire_bench_<random>``, dropped by ``drop_all``."""

    url: str
    made: list[str] = field(default_factory=list)

    def reachable(self) -> str | None:
        try:
            import psycopg

            with psycopg.connect(self.url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure: PostgreSQL is left out
            return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        return None

    def new(self, tag: str, settings: str = "") -> tuple[str, str]:
        """A fresh schema and a URL on it whose connections carry ``application_name=tag``
        (and ``settings``, more ``-c`` options: one ``options`` parameter holds them all)."""
        import psycopg

        schema = f"botwire_bench_{secrets.token_hex(6)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        self.made.append(schema)
        sep = "&" if "?" in self.url else "?"
        options = quote(f"-csearch_path={schema} {settings}".strip(), safe="")
        return schema, f"{self.url}{sep}options={options}&application_name={tag}"

    def drop_all(self) -> None:
        if not self.made:
            return
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            for schema in self.made:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self.made = []


def relation_bytes(url: str, schema: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE 'botwire%%'",
            (schema,),
        ).fetchall()
        for (table,) in tables:
            conn.execute(f'VACUUM "{schema}"."{table}"')
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchone()
    assert row is not None
    return int(row[0])


# -- writes and call starts per core: one process ----------------------------------------------


def timed_sets(memories: list[Memory], seconds: float) -> int:
    n, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(100):
            i = n % (len(memories) * FACTS)
            memories[i // FACTS].set(f"fact_{i % FACTS:02d}", fact_value(i, n % 97))
            n += 1
    return n


def timed_starts(memories: list[Memory], seconds: float) -> int:
    """The call-start read (``core.briefing``, as the webhooks run it) of one caller after
    another."""
    n, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(20):
            brief = core.run(core.briefing(), memories[n % len(memories)])
            if not brief.known or "Known facts" not in brief.memory:
                raise RuntimeError(f"call start of a known caller answered {brief.memory!r}")
            n += 1
    return n


Timed = Callable[[list[Memory], float], int]


def median(rates: list[Rate]) -> Rate:
    """The repetition with the median writes per core (the machine may be shared)."""
    return sorted(rates, key=lambda r: r.per_core)[len(rates) // 2]


def engine_rate(
    label: str,
    url: str,
    args: argparse.Namespace,
    backends: Backends | None,
    callers: range = range(1000),
    timed: Timed = timed_sets,
) -> Rate:
    engine = open_engine(url)
    reps = []
    try:
        memories = [Memory(caller_ns(i), engine=engine) for i in callers]
        timed(memories, min(1.0, args.seconds / 4))  # warm-up: tables, pools, caches
        for _ in range(args.reps):
            if backends:
                backends.mark()
            wall, cpu = time.perf_counter(), time.process_time()
            n = timed(memories, args.seconds)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            reps.append(Rate(label, n, wall, cpu, backends.used() if backends else None))
    finally:
        engine.close()
    return median(reps)


# -- writes and call starts per core: botwire serve --------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


VAPI_SECRET, VAPI_ASSISTANT = "bench-vapi-secret", "asst_bench"
VOICE_ENV = {"BOTWIRE_VAPI_SECRET": VAPI_SECRET, "BOTWIRE_VAPI_ASSISTANT_ID": VAPI_ASSISTANT}


class Server:
    """``python -m botwire serve`` (one worker) with its own home, quotas off; the Vapi
    webhook on (its secret checked in the default mode, the ``x-vapi-secret`` header)."""

    def __init__(self, database: str, home: str) -> None:
        self.database, self.home, self.port = database, home, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""

    def start(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
        env.update(BOTWIRE_HOME=self.home, BOTWIRE_WRITES_PER_DAY="0", BOTWIRE_MAX_BYTES="0")
        env.update(VOICE_ENV)
        cmd = [sys.executable, "-m", "botwire", "serve", "--port", str(self.port)]
        with open(os.path.join(self.home, "server.log"), "ab") as out:
            self.proc = subprocess.Popen(
                [*cmd, "--database", self.database],
                env=env,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
            )
        try:
            self._wait_ready()
            with open(os.path.join(self.home, "admin.key")) as f:
                self.key = f.read().strip()
        except BaseException:
            self.stop()  # never leave a server behind
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"botwire serve exited {self.proc.returncode}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError("botwire serve did not become ready")

    def rss_mib(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return kb / 1024

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


Request = Callable[[int, int], tuple[str, str, bytes, dict[str, str]]]  # (worker, n) -> request
Check = Callable[[int, bytes], bool]


def put_request(key: str) -> Request:
    """``PUT /v1/namespaces/{caller}/keys/{fact}`` over 20 facts of 1000 callers."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def make(worker: int, n: int) -> tuple[str, str, bytes, dict[str, str]]:
        i = worker * 100_003 + n
        ns, fact = quote(caller_ns(i % 1000), safe=""), f"fact_{i % FACTS:02d}"
        body = json.dumps(fact_value(i, n % 97)).encode()
        return "PUT", f"/v1/namespaces/{ns}/keys/{fact}", body, headers

    return make


def put_ok(status: int, body: bytes) -> bool:
    return status == 200


def start_request(callers: range) -> Request:
    """The Vapi ``assistant-request`` of a call from one of ``callers`` (known numbers)."""
    headers = {"Content-Type": "application/json", "x-vapi-secret": VAPI_SECRET}

    def make(worker: int, n: int) -> tuple[str, str, bytes, dict[str, str]]:
        number = caller_ns(callers[(worker * 7919 + n) % len(callers)]).removeprefix("phone:")
        call = {"id": f"start-{worker}-{n}", "orgId": "org_bench", "type": "inboundPhoneCall"}
        message = {
            "type": "assistant-request",
            "timestamp": int(time.time() * 1000),
            "call": {**call, "customer": {"number": number}},
            "customer": {"number": number},
            "phoneNumber": {"id": "pn_1", "number": "+14155550100"},
        }
        return "POST", "/voice/vapi", json.dumps({"message": message}).encode(), headers

    return make


def start_ok(status: int, body: bytes) -> bool:
    """The platform's answer: the assistant, with the caller's memory in its variables."""
    return status == 200 and b'"assistantId"' in body and b"Known facts" in body


def client_loop(
    port: int,
    request: Request,
    check: Check,
    worker: int,
    stop: threading.Event,
    counts: list[int],
    errors: list[str],
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n = 0
    try:
        while not stop.is_set():
            method, path, body, headers = request(worker, n)
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            answer = response.read()
            if not check(response.status, answer):
                raise RuntimeError(f"{method} {path} answered {response.status}: {answer[:300]!r}")
            n += 1
    except Exception as exc:  # noqa: BLE001 - reported by the caller, in the main thread
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        counts[worker] = n
        conn.close()


def requests_for(
    server: Server, request: Request, check: Check, clients: int, seconds: float
) -> int:
    """Requests answered by ``clients`` keep-alive connections in ``seconds`` (each sends its
    next request as soon as the previous answer arrived); an unexpected answer stops the run."""
    stop, counts = threading.Event(), [0] * clients
    errors: list[str] = []
    threads = [
        threading.Thread(
            target=client_loop, args=(server.port, request, check, w, stop, counts, errors)
        )
        for w in range(clients)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not errors:
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return sum(counts)


def http_rate(
    label: str,
    url: str,
    args: argparse.Namespace,
    backends: Backends | None,
    callers: range | None = None,
) -> tuple[Rate, float]:
    """PUTs per core, or (``callers``) Vapi call starts per core, of one server worker."""
    with tempfile.TemporaryDirectory(prefix="botwire-capacity-") as home:
        server = Server(url, home).start()
        try:
            if callers is None:
                request, check = put_request(server.key), put_ok
            else:
                request, check = start_request(callers), start_ok
            requests_for(server, request, check, args.clients, min(1.0, args.seconds / 4))
            reps = [
                timed_requests(label, server, request, check, args, backends)
                for _ in range(args.reps)
            ]
            rss = server.rss_mib()
        finally:
            server.stop()
    return median(reps), rss


def timed_requests(
    label: str,
    server: Server,
    request: Request,
    check: Check,
    args: argparse.Namespace,
    backends: Backends | None,
) -> Rate:
    assert server.proc is not None
    if backends:
        backends.mark()
    cpu, wall = cpu_of(server.proc.pid), time.perf_counter()
    n = requests_for(server, request, check, args.clients, args.seconds)
    wall, cpu = time.perf_counter() - wall, cpu_of(server.proc.pid) - cpu
    return Rate(label, n, wall, cpu, backends.used() if backends else None)


# -- disk per caller ---------------------------------------------------------------------------


def fill_plain(memory: Memory, i: int) -> None:
    memory.set_many({f"fact_{j:02d}": fact_value(i, j) for j in range(FACTS)})
    memory.log("calls").extend([call_record(i, n) for n in range(CALLS)])


def fill_voice(memory: Memory, i: int, calls: int = CALLS) -> None:
    for n in range(calls):
        core.run(core.end_call(voice_call(i, n)), memory)


Filler = Callable[[Memory, int], None]
Profile = tuple[str, int, Filler]


def fill(url: str, first: int, count: int, one: Filler, threads: int) -> None:
    """Callers ``first`` .. ``first + count - 1``, by ``threads`` threads on one engine."""
    engine = open_engine(url)
    step = max(1, -(-count // (threads * 4)))

    def chunk(lo: int) -> None:
        for i in range(lo, min(first + count, lo + step)):
            one(Memory(caller_ns(i), engine=engine), i)

    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(chunk, range(first, first + count, step)))
        drain = getattr(engine, "_checkpoint", None)  # SQLite: the search index catches up
        if drain is not None:
            drain()
    finally:
        engine.close()


def sqlite_bytes(path: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return os.path.getsize(path)


@dataclass
class Disk:
    label: str
    profile: str
    callers: int
    grown: int
    fill_seconds: float
    first: int = 0  # the first caller's number (``caller_ns(first)``)

    @property
    def per_caller(self) -> float:
        return self.grown / self.callers

    @property
    def per_gib(self) -> float:
        return GIB / self.per_caller

    @property
    def numbers(self) -> range:
        return range(self.first, self.first + self.callers)


def disk_run(
    label: str, url: str, measure: Callable[[], int], profiles: list[Profile], threads: int
) -> Iterator[Disk]:
    fill(url, 0, 1, fill_plain, 1)  # the schema exists (migrations ran)
    before, first = measure(), 1
    for profile, count, one in profiles:
        if count <= 0:
            continue
        say(f"  {label}: {count} callers, {profile}")
        started = time.perf_counter()
        fill(url, first, count, one, threads)
        took = time.perf_counter() - started
        after = measure()
        yield Disk(label, profile, count, after - before, took, first)
        before, first = after, first + count


# -- disk for a million callers ----------------------------------------------------------------

ROWS = "SELECT (SELECT count(*) FROM botwire_kv) + (SELECT count(*) FROM botwire_entries)"
MILLION = 1_000_000


def sqlite_rows(path: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute(ROWS).fetchone()[0])


def postgres_rows(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(ROWS).fetchone()
    assert row is not None
    return int(row[0])


@dataclass
class Big:
    """``callers`` voice callers after ``calls`` calls each, and what 1M of them would take."""

    label: str
    callers: int
    calls: int
    rows: int  # keys + log entries they added
    grown: int
    fill_seconds: float

    @property
    def per_caller(self) -> float:
        return self.grown / self.callers

    @property
    def million_gib(self) -> float:
        return self.per_caller * MILLION / GIB


def big_run(
    label: str,
    url: str,
    measure: Callable[[], int],
    rows: Callable[[], int],
    args: argparse.Namespace,
    threads: int,
    search: bool = False,
) -> list[Big]:
    """The big callers; with ``search`` (SQLite, whose search index is built on demand) also
    the disk once each of them was searched (``Memory.search``) and the index caught up."""
    fill(url, 0, 1, fill_plain, 1)  # the schema exists (migrations ran)
    before, rows_before = measure(), rows()
    n, calls = args.big_callers, args.calls_per_caller
    say(f"  {label}: {n} callers x {calls} calls")
    started = time.perf_counter()
    fill(url, 1, n, partial(fill_voice, calls=calls), threads)
    took = time.perf_counter() - started
    added = rows() - rows_before
    out = [Big(label, n, calls, added, measure() - before, took)]
    if search:
        say(f"  {label}: each of them searched once")
        started = time.perf_counter()
        fill(url, 1, n, search_once, 1)
        took = time.perf_counter() - started
        out.append(Big(f"{label}, each searched once", n, calls, added, measure() - before, took))
    return out


def search_once(memory: Memory, i: int) -> None:
    memory.search("order ground", limit=5)


# -- the report --------------------------------------------------------------------------------


def fmt(x: float) -> str:
    return f"{x:,.0f}"


@dataclass
class Part:
    rates: list[Rate] = field(default_factory=list)  # writes
    starts: list[Rate] = field(default_factory=list)  # call starts
    rss: dict[str, float] = field(default_factory=dict)
    disks: list[Disk] = field(default_factory=list)
    bigs: list[Big] = field(default_factory=list)

    def add(self, other: Part) -> None:
        self.rates += other.rates
        self.starts += other.starts
        self.rss.update(other.rss)
        self.disks += other.disks
        self.bigs += other.bigs


def rate_rows(rates: list[Rate], what: str, unit: str) -> list[str]:
    lines = [
        f"| {what} | {what}/s (wall) | client or server CPU µs/{unit} | database CPU µs/{unit} "
        f"| {what}/s per core |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rates:
        db = "—" if r.db_cpu is None else f"{1e6 * r.db_cpu / r.count:,.0f}"
        lines.append(
            f"| {r.label} | {fmt(r.count / r.seconds)} | {1e6 * r.client_cpu / r.count:,.0f} "
            f"| {db} | **{fmt(r.per_core)}** |"
        )
    return lines


def report(part: Part, notes: list[str]) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"# botwire {__version__} capacity ({platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version})",
        "",
        f"Load average at the end: {load} (the machine is shared; CPU is counted per process).",
        "",
        *rate_rows(part.rates, "writes", "write"),
    ]
    if part.starts:
        lines += ["", *rate_rows(part.starts, "call starts", "start")]
    if part.rss:
        memory = ", ".join(f"{k} {v:.0f} MiB" for k, v in part.rss.items())
        lines += ["", f"Server worker memory after the run (RSS): {memory}"]
    if part.disks:
        lines += [
            "",
            "| storage | caller profile | callers | bytes per caller | callers per GiB "
            "| fill time |",
            "|---|---|---:|---:|---:|---:|",
        ]
    for d in part.disks:
        lines.append(
            f"| {d.label} | {d.profile} | {fmt(d.callers)} | {fmt(d.per_caller)} "
            f"| **{fmt(d.per_gib)}** | {d.fill_seconds:.1f} s |"
        )
    if part.bigs:
        lines += [
            "",
            "| storage | callers x calls | keys + log entries | bytes per caller "
            "| 1M callers (GiB) | fill time |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for b in part.bigs:
            lines.append(
                f"| {b.label} | {fmt(b.callers)} x {b.calls} | {fmt(b.rows)} "
                f"| {fmt(b.per_caller)} | **{b.million_gib:,.1f}** | {b.fill_seconds:.0f} s |"
            )
        lines += [
            "",
            "1M callers = bytes per caller measured at that size x 1,000,000. Not included: "
            "WAL, backups, free space beyond what the data leaves in its pages, and index "
            "growth a little faster than linear.",
        ]
    return "\n".join(lines + [""] + notes) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="each rate measurement (3)")
    p.add_argument("--reps", type=int, default=3, help="repetitions; the median is shown (3)")
    p.add_argument("--clients", type=int, default=4, help="HTTP connections sending requests (4)")
    p.add_argument("--callers", type=int, default=10_000, help="plain callers for disk (10000)")
    p.add_argument(
        "--voice-callers", type=int, default=300, help="voice callers, also for call starts (300)"
    )
    p.add_argument(
        "--big-callers",
        type=int,
        default=10,
        help="callers of --calls-per-caller calls for the 1M-callers disk (10; 0: skip; "
        "about 960 make 1M keys + log entries)",
    )
    p.add_argument(
        "--calls-per-caller", type=int, default=100, help="calls of each big caller (100)"
    )
    p.add_argument("--threads", type=int, default=4, help="PostgreSQL: threads filling (4)")
    p.add_argument("--postgres", default=POSTGRES, help="PostgreSQL URL (a private schema)")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--no-http", action="store_true", help="skip the botwire serve measurements")
    p.add_argument("--output", help="also write the report to this file")
    return p.parse_args(argv)


def measured(
    name: str,
    urls: Callable[[], str],
    args: argparse.Namespace,
    backends: Backends | None,
    part: Part,
) -> None:
    """Writes per core through ``Memory.set`` and (unless ``--no-http``) ``botwire serve``."""
    say(f"{name}: writes")
    part.rates.append(engine_rate(f"{name}, Memory.set, 1 thread", urls(), args, backends))
    if not args.no_http:
        label = f"{name}, botwire serve (1 worker), PUT"
        rate, part.rss[f"{name} (PUT)"] = http_rate(label, urls(), args, backends)
        part.rates.append(rate)


def call_starts(
    name: str, url: str, args: argparse.Namespace, backends: Backends | None, part: Part
) -> None:
    """Call starts per core over the ``voice`` callers of ``part.disks`` (in their database)."""
    voice = [d for d in part.disks if d.profile == "voice"]
    if not voice:
        return
    say(f"{name}: call starts")
    label = f"{name}, core.briefing via core.run, 1 thread"
    timed = timed_starts
    part.starts.append(engine_rate(label, url, args, backends, voice[0].numbers, timed))
    if not args.no_http:
        label = f"{name}, botwire serve (1 worker), Vapi assistant-request"
        rate, rss = http_rate(label, url, args, backends, voice[0].numbers)
        part.starts.append(rate)
        part.rss[f"{name} (assistant-request)"] = rss


def sqlite_part(args: argparse.Namespace, tmp: str, profiles: list[Profile]) -> Part:
    part = Part()
    names = iter(range(1_000_000))
    measured("SQLite", lambda: f"sqlite:///{tmp}/rate{next(names)}.db", args, None, part)
    say("SQLite: disk")
    path = f"{tmp}/disk.db"
    size = partial(sqlite_bytes, path)
    part.disks += disk_run("SQLite", f"sqlite:///{path}", size, profiles, 1)  # writers take turns
    call_starts("SQLite", f"sqlite:///{path}", args, None, part)
    if args.big_callers > 0:
        big = f"{tmp}/big.db"
        rows = partial(sqlite_rows, big)
        size = partial(sqlite_bytes, big)
        part.bigs += big_run("SQLite", f"sqlite:///{big}", size, rows, args, 1, search=True)
    return part


def postgres_part(args: argparse.Namespace, schemas: Schemas, profiles: list[Profile]) -> Part:
    part = Part()
    tag = f"botwire_bench_{secrets.token_hex(4)}"
    backends = Backends(args.postgres, tag)
    measured("PostgreSQL", lambda: schemas.new(tag)[1], args, backends, part)
    say("PostgreSQL: disk")
    schema, url = schemas.new(tag)
    size = partial(relation_bytes, args.postgres, schema)
    part.disks += disk_run("PostgreSQL", url, size, profiles, args.threads)
    call_starts("PostgreSQL", url, args, backends, part)
    if args.big_callers > 0:  # the same rows, written sooner: commits do not wait for the disk
        schema, url = schemas.new(tag, "-csynchronous_commit=off")
        size, rows = partial(relation_bytes, args.postgres, schema), partial(postgres_rows, url)
        part.bigs += big_run("PostgreSQL", url, size, rows, args, args.threads)
    return part


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    profiles: list[Profile] = [
        ("plain", args.callers, fill_plain),
        ("voice", args.voice_callers, fill_voice),
    ]
    part = Part()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="botwire-capacity-") as tmp:
        part.add(sqlite_part(args, tmp, profiles))
    if not args.no_postgres:
        schemas = Schemas(args.postgres)
        missing = schemas.reachable()
        if missing:
            notes.append(f"PostgreSQL left out: {missing}")
        else:
            try:
                part.add(postgres_part(args, schemas, profiles))
            finally:
                schemas.drop_all()
    writes = core.end_call_writes(voice_call(0, 0), {"transcript", "end", "facts"})
    notes.append(
        f"A voice profile call is {len(writes)} writes as quotas count them ({TURNS} transcript "
        "lines, the call record, last_call, 2 extracted facts and their provenance)."
    )
    notes.append(
        f"`python bench/bench_capacity.py --seconds {args.seconds:g} --reps {args.reps} "
        f"--callers {args.callers} --voice-callers {args.voice_callers} "
        f"--big-callers {args.big_callers} --calls-per-caller {args.calls_per_caller}"
        f"{' --no-postgres' if args.no_postgres else ''}{' --no-http' if args.no_http else ''}`: "
        f"{time.perf_counter() - started:.0f} s."
    )
    text = report(part, notes)
    print(text, end="")
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
