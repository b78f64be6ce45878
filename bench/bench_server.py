#!/usr/bin/env python3
"""Server benchmark: the botwire server under HTTP load, next to ``redis-benchmark``.

Run with ``make bench-server`` (or ``python bench/bench_server.py [--quick] [...]``); see
``--help``. It prints a markdown report and writes it to ``bench/results/server.md`` (raw numbers
of every repetition in ``server.md.json``). Progress goes to stderr.

What it does, in one run:

* Starts the server the way users do, once per database and worker count:
  ``python -m botwire serve --host 127.0.0.1 --port P --database URL --workers N`` with
  ``BOTWIRE_HOME=<tempdir>`` and ``BOTWIRE_WRITES_PER_DAY=0 BOTWIRE_MAX_BYTES=0`` (quotas
  off), waits for ``GET /readyz`` and reads the admin key from ``$BOTWIRE_HOME/admin.key``.
  Databases: SQLite (``sqlite:///<tempdir>/bench.db``) and PostgreSQL in a private schema
  ``botwire_bench_<random>`` per server (``?options=-csearch_path%3D<schema>``), dropped at
  the end. Every server is started up front (idle servers cost nothing) so that the
  measurements of all of them can be interleaved.
* Fills one namespace with ``--keys`` keys (default 10k) of a ~100-byte JSON object through
  ``POST /v1/namespaces/{ns}/batch/set``, 1000 keys per request.
* Load: ``wrk`` with a Lua script that sends ``GET`` or ``PUT /v1/namespaces/{ns}/keys/{key}``
  to uniformly random keys of that set, at 1 connection (``-t1 -c1``) and 32 connections
  (``-t2 -c32``). Throughput counts only 2xx answers; the non-2xx count (wrk's
  "Non-2xx or 3xx responses") and socket errors are reported. Latency p50/p99 come from wrk's
  own histogram (``latency:percentile`` in a Lua ``done()``). Without ``wrk`` on the PATH the
  script tries ``apt-get install -y wrk`` (when root; ``--no-install`` to skip), else falls back
  to a built-in asyncio load generator (raw HTTP/1.1 keep-alive over asyncio streams) and says
  so in the report.
* ``redis-benchmark -t set,get -c 1|32 -n N -r <keys> -d <value size> --csv`` against the local
  Redis, in database ``--redis-db`` (default 13); its keys (``key:<12 digits>``) are deleted
  afterwards, the database is never flushed.
* The HTTP engine's round trip: ``Memory(ns, url="http://KEY@127.0.0.1:PORT")``, 2000
  sequential ``m.get(k)`` and 2000 ``m.set(k, v)`` after a warm-up, p50/p99 in microseconds.

Each repetition (``--reps``, default 3) runs every measurement of every server once, servers in
rotating order, then redis-benchmark; the report gives the median of each statistic over the
repetitions. ``--quick``: one repetition of 2 s per measurement, 2 workers only, 500 round
trips (about 30 s with PostgreSQL). The default run (3 repetitions of 5 s, 2 and 1 workers,
SQLite and PostgreSQL) takes about 6 minutes on a 2-core machine; ``--profile 10`` adds 15 s.

``--goals``: only what the Goals table at the end of the report needs: ``GET`` at 32
connections on the 2-worker servers (SQLite and PostgreSQL), redis-benchmark at 32
connections (``-t set,get``, so that GET finds values), and the HTTP engine's round trip; with
``--quick`` under a minute (``make bench-server BENCH_ARGS="--goals --quick"``).

The report ends with a Goals table computed from that run's medians: the SQLite server's
``GET`` req/s over redis-server's (goal >= 0.25x), the PostgreSQL server's ``GET`` req/s over
the SQLite server's (>= 0.5x), and the HTTP engine's round trip p50 on each (<= 1 ms; next to
the floor of a plain keep-alive ``GET /healthz`` to the same server with ``http.client``).

Optional ``--profile SECONDS``: after the measurements, record the SQLite server at 1 worker
with ``py-spy`` (``pip install py-spy``) while wrk sends GETs at 32 connections, and add the
hottest frames and a per-layer split to the report. See bench/SERVER_RESULTS.md for a reading.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_PG = os.environ.get(
    "BOTWIRE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
NS = "bench"
POPULATE_BATCH = 1000
SEED = 20240611
# ~100 bytes of JSON: what a voice agent keeps about a caller
VALUE = {
    "caller": "+15551234567",
    "name": "Ada Lovelace",
    "orders": ["A-1", "B-22"],
    "last_seen": 1718000000.5,
    "vip": True,
}
VALUE_TEXT = json.dumps(VALUE, separators=(",", ":"))
REDIS_KEY = re.compile(rb"^key:\d{12}$")

# targets evaluated in the report
TARGET_GET_RATIO = 0.25
TARGET_PG_GET_RATIO = 0.5  # PostgreSQL server GET req/s over the SQLite server's
GOAL_WORKERS = 2  # the worker count the Goals table reads
TARGET_RT_P50_US = 1000.0
TARGET_P99_MS_32 = 10.0
TARGET_WRITES = 5000.0


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def key_name(i: int) -> str:
    return f"k{i:05d}"


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, token: str = "",
         timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def cpu_seconds_of(pids: Iterable[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


class ChildServer:
    """A server in a child process on ``port``: its base URL and a clean stop."""

    port: int
    proc: subprocess.Popen[bytes] | None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


class Server(ChildServer):
    """``python -m botwire serve`` in a child process with its own ``BOTWIRE_HOME``."""

    def __init__(self, db: str, database: str, workers: int, home: str) -> None:
        self.db, self.database, self.workers, self.home = db, database, workers, home
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""

    @property
    def label(self) -> str:
        return f"{self.db} w{self.workers}"

    def start(self) -> Server:
        os.makedirs(self.home, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
        env.update(BOTWIRE_HOME=self.home, BOTWIRE_WRITES_PER_DAY="0", BOTWIRE_MAX_BYTES="0")
        self.port = free_port()
        with open(os.path.join(self.home, "server.log"), "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "botwire", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--database", self.database,
                 "--workers", str(self.workers)],
                env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.label} exited {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                if http("GET", self.base + "/readyz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server {self.label} not ready:\n{self.log_tail()}")
            time.sleep(0.05)
        with open(os.path.join(self.home, "admin.key")) as f:
            self.key = f.read().strip()
        return self

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.home, "server.log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def worker_pids(self) -> list[int]:
        """The processes that answer requests: the children with workers > 1, else itself."""
        assert self.proc is not None
        if self.workers == 1:
            return [self.proc.pid]
        kids: list[int] = []
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{self.proc.pid}/task"):
                with open(f"/proc/{self.proc.pid}/task/{task}/children") as f:
                    kids += [int(p) for p in f.read().split()]
        return kids or [self.proc.pid]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process and its workers so far."""
        return cpu_seconds_of({*self.worker_pids(), self.proc.pid if self.proc else 0} - {0})

    def populate(self, n: int) -> float:
        start = time.perf_counter()
        for lo in range(0, n, POPULATE_BATCH):
            items = {key_name(i): VALUE for i in range(lo, min(n, lo + POPULATE_BATCH))}
            status, body = http("POST", f"{self.base}/v1/namespaces/{NS}/batch/set",
                                json.dumps({"items": items}).encode(), self.key)
            if status != 200:
                raise RuntimeError(f"populate {self.label}: {status} {body[:300]!r}")
        return time.perf_counter() - start



class PgSchemas:
    """Private schemas ``botwire_bench_<random>``, dropped at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[str] = []

    def check(self) -> str | None:
        try:
            import psycopg

            with psycopg.connect(self.url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure means: skip PostgreSQL
            return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        return None

    def new(self) -> str:
        import psycopg

        schema = f"botwire_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        self.made.append(schema)
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}options=-csearch_path%3D{schema}"

    def drop_all(self) -> None:
        if not self.made:
            return
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            for schema in self.made:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self.made = []


# -- load generators ---------------------------------------------------------------------------

WRK_LUA = r"""
-- botwire bench: GET or PUT /v1/namespaces/NS/keys/kNNNNN on uniformly random keys
local reqs, n = {}, 0
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  local method, ns, nkeys, token, body = args[1], args[2], tonumber(args[3]), args[4], args[5]
  wrk.headers["Authorization"] = "Bearer " .. token
  if method == "PUT" then
    wrk.headers["Content-Type"] = "application/json"
  else
    body = nil
  end
  for i = 0, nkeys - 1 do
    reqs[i + 1] = wrk.format(method, string.format("/v1/namespaces/%s/keys/k%05d", ns, i),
                             nil, body)
  end
  n = nkeys
  math.randomseed(os.time() * 1000 + (tid or 0))
end
function request()
  return reqs[math.random(n)]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d,\"p90_us\":%d," ..
    "\"p99_us\":%d,\"mean_us\":%.1f,\"max_us\":%d,\"connect\":%d,\"read\":%d,\"write\":%d," ..
    "\"status\":%d,\"timeout\":%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status,
    e.timeout))
end
"""


@dataclass
class Load:
    """One load measurement."""

    rps: float  # 2xx answers per second
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    errors: int  # socket errors and timeouts
    seconds: float
    cpu_us: float = float("nan")  # server CPU time (all its processes) per request


class Wrk:
    name = "wrk"

    def __init__(self, tmp: str) -> None:
        self.script = os.path.join(tmp, "botwire.lua")
        with open(self.script, "w") as f:
            f.write(WRK_LUA)
        banner = subprocess.run(["wrk", "-v"], capture_output=True, text=True,
                                check=False).stdout.split()
        self.version = banner[1:2]  # "wrk debian/4.1.0-3+b2 [epoll] ..." -> the version

    def run(self, server: Server, method: str, conns: int, seconds: float, nkeys: int) -> Load:
        threads = 1 if conns == 1 else 2
        cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(seconds))}s",
               "--timeout", "10s", "--latency", "-s", self.script, server.base,
               "--", method, NS, str(nkeys), server.key, VALUE_TEXT]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False,
                             timeout=seconds + 60)
        found = re.search(r"^BENCH_JSON (\{.*\})$", out.stdout, re.M)
        if out.returncode != 0 or not found:
            raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
        d = json.loads(found.group(1))
        non2xx = d["status"]
        m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out.stdout)
        if m:  # the same number, as wrk prints it
            non2xx = max(non2xx, int(m.group(1)))
        errors = d["connect"] + d["read"] + d["write"] + d["timeout"]
        secs = d["duration_us"] / 1e6
        ok = d["requests"] - non2xx
        return Load(ok / secs, d["p50_us"] / 1000, d["p99_us"] / 1000, d["requests"], non2xx,
                    errors, secs)


class AsyncLoad:
    """Fallback when wrk is missing: raw HTTP/1.1 keep-alive connections on asyncio streams."""

    name = "asyncio (built-in; wrk was not available)"
    version: list[str] = []

    def run(self, server: Server, method: str, conns: int, seconds: float, nkeys: int) -> Load:
        with contextlib.suppress(ImportError):
            import uvloop

            return uvloop.run(self._run(server, method, conns, seconds, nkeys))
        return asyncio.run(self._run(server, method, conns, seconds, nkeys))

    async def _run(self, server: Server, method: str, conns: int, seconds: float,
                   nkeys: int) -> Load:
        body = VALUE_TEXT.encode() if method == "PUT" else b""
        head = (f"Host: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {server.key}\r\n"
                + (f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                   if method == "PUT" else "") + "\r\n").encode()
        reqs = [f"{method} /v1/namespaces/{NS}/keys/{key_name(i)} HTTP/1.1\r\n".encode()
                + head + body for i in range(nkeys)]
        lat: list[float] = []
        codes: Counter[int] = Counter()
        errors = [0]
        stop = time.perf_counter() + seconds

        async def one() -> None:
            rnd = random.Random()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            except OSError:
                errors[0] += 1
                return
            try:
                while time.perf_counter() < stop:
                    t0 = time.perf_counter()
                    writer.write(reqs[rnd.randrange(nkeys)])
                    status_line = await reader.readline()
                    length = 0
                    while True:
                        line = await reader.readline()
                        if line in (b"\r\n", b""):
                            break
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    if length:
                        await reader.readexactly(length)
                    lat.append(time.perf_counter() - t0)
                    codes[int(status_line.split()[1])] += 1
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                errors[0] += 1
            finally:
                writer.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(conns)))
        secs = time.perf_counter() - t0
        lat.sort()
        ok = sum(c for s, c in codes.items() if 200 <= s < 300)
        total = sum(codes.values())

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000 if lat else math_nan

        return Load(ok / secs, pct(50), pct(99), total, total - ok, errors[0], secs)


math_nan = float("nan")


def find_wrk(install: bool) -> bool:
    if shutil.which("wrk"):
        return True
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    log("wrk not found: apt-get install -y wrk ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "-q", "wrk"],
                ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "wrk"]):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(cmd, env=env, capture_output=True, timeout=180, check=False)
        if shutil.which("wrk"):
            return True
    return False


# -- redis-benchmark ---------------------------------------------------------------------------


def redis_benchmark(host: str, port: int, db: int, conns: int, n: int, nkeys: int) -> dict[str,
                                                                                        Load]:
    cmd = ["redis-benchmark", "-h", host, "-p", str(port), "--dbnum", str(db), "-t", "set,get",
           "-c", str(conns), "-n", str(n), "-r", str(nkeys), "-d", str(len(VALUE_TEXT)), "--csv"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    secs = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {out.stdout}\n{out.stderr}")
    rows = [line.replace('"', "").split(",") for line in out.stdout.splitlines() if line]
    head = rows[0]
    res = {}
    for row in rows[1:]:
        d = dict(zip(head, row, strict=False))
        p50 = float(d["p50_latency_ms"]) if "p50_latency_ms" in d else math_nan
        p99 = float(d["p99_latency_ms"]) if "p99_latency_ms" in d else math_nan
        res[d["test"]] = Load(float(d["rps"]), p50, p99, n, 0, 0, secs / 2)
    return res


def redis_cleanup(host: str, port: int, db: int) -> int:
    """Delete the keys redis-benchmark wrote (``key:<12 digits>``) in its database."""
    try:
        import redis
    except ImportError:
        return -1
    r = redis.Redis(host=host, port=port, db=db)
    gone = 0
    batch: list[bytes] = []
    for k in r.scan_iter(match="key:*", count=1000):
        if REDIS_KEY.match(k):
            batch.append(k)
        if len(batch) >= 1000:
            gone += r.unlink(*batch)
            batch = []
    if batch:
        gone += r.unlink(*batch)
    r.close()
    return gone


# -- the HTTP engine round trip ----------------------------------------------------------------


def engine_round_trip(server: Server, calls: int, nkeys: int) -> dict[str, tuple[float, float]]:
    """p50/p99 in microseconds of sequential ``m.get`` and ``m.set`` through the HTTP engine."""
    from botwire import Memory

    rnd = random.Random(SEED)
    out = {}
    with Memory(NS, url=f"http://{server.key}@127.0.0.1:{server.port}") as m:
        for _ in range(min(200, calls)):  # warm-up: the connection, both code paths
            m.get(key_name(rnd.randrange(nkeys)))
            m.set(key_name(rnd.randrange(nkeys)), VALUE)
        for op in ("get", "set"):
            keys = [key_name(rnd.randrange(nkeys)) for _ in range(calls)]
            lat = []
            clock = time.perf_counter_ns
            if op == "get":
                for k in keys:
                    t0 = clock()
                    m.get(k)
                    lat.append(clock() - t0)
            else:
                for k in keys:
                    t0 = clock()
                    m.set(k, VALUE)
                    lat.append(clock() - t0)
            lat.sort()
            out[op] = (lat[len(lat) // 2] / 1000, lat[min(len(lat) - 1, int(0.99 * len(lat)))]
                       / 1000)
    out["healthz"] = http_floor(server, calls)
    return out


def http_floor(server: Server, calls: int) -> tuple[float, float]:
    """p50/p99 (µs) of sequential keep-alive ``GET /healthz`` with ``http.client``: one HTTP
    round trip to the same server without the engine or storage."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    clock = time.perf_counter_ns
    lat = []
    try:
        for i in range(min(200, calls) + calls):
            t0 = clock()
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET /healthz on {server.label}: {resp.status}")
            if i >= min(200, calls):
                lat.append(clock() - t0)
    finally:
        conn.close()
    lat.sort()
    return lat[len(lat) // 2] / 1000, lat[min(len(lat) - 1, int(0.99 * len(lat)))] / 1000


# -- profiling (optional) ----------------------------------------------------------------------

LAYERS = [  # (layer, substring of a frame's file); a frame of none of these (the standard
    # library: contextlib, typing, inspect, os.environ ...) is charged to its nearest caller that is
    ("botwire Edge middleware (app.py)", "botwire/server/app.py"),
    ("botwire auth (auth.py)", "botwire/server/auth.py"),
    ("botwire v1 handlers (v1.py)", "botwire/server/v1.py"),
    ("botwire other server code", "botwire/server/"),
    ("botwire engine (sqlite.py, sql.py)", "botwire/engines/"),
    ("botwire codec", "botwire/_"),
    ("prometheus_client", "prometheus_client/"),
    ("FastAPI (routing, DI, its middlewares)", "fastapi/"),
    ("Starlette", "starlette/"),
    ("uvicorn (httptools protocol)", "uvicorn/"),
    ("pydantic", "pydantic"),
    ("json", "json/"),
    ("sqlite3 module", "sqlite3/"),
    ("thread pool (concurrent.futures, threading)", "concurrent/"),
    ("thread pool (concurrent.futures, threading)", "threading.py"),
    ("asyncio (to_thread, futures, event loop)", "asyncio/"),
]


def layer_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needle in LAYERS:
            if needle in frame:
                return name
    return "other"


def read_py_spy(
    raw: str, layer: Callable[[list[str]], str]
) -> tuple[int, Counter[str], Counter[str]]:
    """py-spy's raw output: samples, self samples by ``layer(stack)``, and by innermost frame."""
    layers: Counter[str] = Counter()
    frames: Counter[str] = Counter()
    total = 0
    with open(raw) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n, parts = int(count), stack.split(";")
            total += n
            frames[re.sub(r":\d+\)$", ")", parts[-1])] += n
            layers[layer(parts)] += n
    return total, layers, frames


def profile(server: Server, seconds: float, nkeys: int, tmp: str) -> dict[str, Any] | None:
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy) or not shutil.which("wrk"):
        log("profile skipped: needs py-spy (pip install py-spy) and wrk")
        return None
    pid = server.worker_pids()[0]
    raw = os.path.join(tmp, "profile.txt")
    spy_proc = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250",
         "--format", "raw", "--output", raw, "--gil", "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    load = Wrk(tmp).run(server, "GET", 32, seconds, nkeys)
    _, err = spy_proc.communicate(timeout=seconds + 60)
    if spy_proc.returncode != 0 or not os.path.exists(raw):
        log(f"profile failed: {err.decode(errors='replace')[-500:]}")
        return None
    total, self_layers, self_frames = read_py_spy(raw, layer_of)
    return {"samples": total, "rate": 250, "seconds": seconds, "load": vars(load),
            "self_frames": self_frames.most_common(25), "self_layers": self_layers.most_common()}


# -- the run -----------------------------------------------------------------------------------

TESTS = [("GET", 1), ("GET", 32), ("PUT", 1), ("PUT", 32)]


@dataclass
class Results:
    load: dict[tuple[str, str, int], list[Load]] = field(default_factory=lambda: defaultdict(list))
    rt: dict[tuple[str, str], list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list))
    redis: dict[tuple[str, int], list[Load]] = field(default_factory=lambda: defaultdict(list))
    populate: dict[str, float] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    loadavg: list[float] = field(default_factory=list)  # 1-minute load, at start and end


def med(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else math_nan


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="one repetition of 2 s per measurement, 500 round trips")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds per load measurement (default 5; 2 with --quick)")
    p.add_argument("--reps", type=int, default=None,
                   help="repetitions of every measurement (default 3; 1 with --quick)")
    p.add_argument("--workers", default=None,
                   help="server worker counts, comma-separated (default 2,1; 2 with --quick)")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--postgres-url", default=DEFAULT_PG)
    p.add_argument("--keys", type=int, default=10_000, help="keys populated (default 10000)")
    p.add_argument("--calls", type=int, default=None,
                   help="HTTP-engine round trips per op (default 2000; 500 with --quick)")
    p.add_argument("--redis", default="127.0.0.1:6379", help="host:port of the local Redis")
    p.add_argument("--redis-db", type=int, default=13,
                   help="database redis-benchmark writes in (default 13; never flushed)")
    p.add_argument("--no-redis", action="store_true")
    p.add_argument("--no-install", action="store_true",
                   help="do not try apt-get install wrk when it is missing")
    p.add_argument("--goals", action="store_true",
                   help="only what the Goals table needs: GET at 32 connections, 2 workers, "
                        "SQLite and PostgreSQL, redis-benchmark at 32, engine round trip")
    p.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                   help="also py-spy the SQLite server (1 worker) under GET at 32 connections")
    p.add_argument("--output", default=os.path.join(HERE, "results", "server.md"))
    a = p.parse_args(argv)
    duration = a.duration or (2.0 if a.quick else 5.0)
    reps = a.reps or (1 if a.quick else 3)
    calls = a.calls or (500 if a.quick else 2000)
    workers = [int(w) for w in (a.workers or ("2" if a.quick or a.goals else "2,1")).split(",")
               if w]
    tests = [("GET", 32)] if a.goals else TESTS
    redis_conns = (32,) if a.goals else (1, 32)
    rhost, _, rport = a.redis.rpartition(":")
    started = time.monotonic()

    res = Results(loadavg=[os.getloadavg()[0]])
    tmp = tempfile.mkdtemp(prefix="botwire-bench-server-")
    loadgen: Wrk | AsyncLoad = Wrk(tmp) if find_wrk(not a.no_install) else AsyncLoad()
    if isinstance(loadgen, AsyncLoad):
        res.notes.append("wrk was not available: the built-in asyncio load generator was used "
                         "(it is slower than wrk and competes harder for the 2 cores).")
    dbs = ["sqlite"]
    pg = PgSchemas(a.postgres_url)
    if not a.no_postgres:
        why = pg.check()
        if why:
            res.notes.append(f"PostgreSQL skipped: cannot connect to {a.postgres_url} ({why}).")
            log(res.notes[-1])
        else:
            dbs.append("postgres")
    have_redis = not a.no_redis and shutil.which("redis-benchmark") is not None
    if not a.no_redis and not have_redis:
        res.notes.append("redis-benchmark not found: no Redis comparison.")

    servers: list[Server] = []
    try:
        for db in dbs:
            for w in workers:
                home = os.path.join(tmp, f"{db}-w{w}")
                url = (f"sqlite:///{home}/bench.db" if db == "sqlite" else pg.new())
                s = Server(db, url, w, home)
                log(f"starting {s.label} ...")
                s.start()
                res.populate[s.label] = s.populate(a.keys)
                log(f"  {s.label} on :{s.port}, {a.keys} keys in {res.populate[s.label]:.1f} s")
                loadgen.run(s, "GET", 32, 1, a.keys)  # warm-up
                if any(m == "PUT" for m, _ in tests):
                    loadgen.run(s, "PUT", 32, 1, a.keys)
                servers.append(s)
        for rep in range(reps):
            order = servers[rep % len(servers):] + servers[:rep % len(servers)]
            for s in order:
                for method, conns in tests:
                    cpu0 = s.cpu_seconds()
                    load = loadgen.run(s, method, conns, duration, a.keys)
                    if load.requests:
                        load.cpu_us = (s.cpu_seconds() - cpu0) / load.requests * 1e6
                    res.load[(s.label, method, conns)].append(load)
                    log(f"rep {rep + 1}/{reps} {s.label:12} {method} c{conns:<2}: "
                        f"{load.rps:8.0f} req/s  p50 {load.p50_ms:6.2f} ms  "
                        f"p99 {load.p99_ms:6.2f} ms  non-2xx {load.non2xx}")
                rt = engine_round_trip(s, calls, a.keys)
                for op, v in rt.items():
                    res.rt[(s.label, op)].append(v)
                log(f"rep {rep + 1}/{reps} {s.label:12} engine get p50 {rt['get'][0]:.0f} us, "
                    f"set p50 {rt['set'][0]:.0f} us, GET /healthz p50 {rt['healthz'][0]:.0f} us")
            if have_redis:
                for conns in redis_conns:
                    n = int(max(10_000, duration * (5_000 if conns == 1 else 40_000)))
                    for test, load in redis_benchmark(rhost, int(rport), a.redis_db, conns, n,
                                                      a.keys).items():
                        res.redis[(test, conns)].append(load)
                        log(f"rep {rep + 1}/{reps} redis {test} c{conns:<2}: {load.rps:8.0f} "
                            f"req/s  p50 {load.p50_ms:.3f} ms  p99 {load.p99_ms:.3f} ms")
        if a.profile:
            target = next((s for s in servers if s.db == "sqlite" and s.workers == 1), None)
            if target is None:
                home = os.path.join(tmp, "sqlite-w1-profile")
                target = Server("sqlite", f"sqlite:///{home}/bench.db", 1, home).start()
                target.populate(a.keys)
                servers.append(target)
            log(f"profiling {target.label} for {a.profile:.0f} s ...")
            res.profile = profile(target, a.profile, a.keys, tmp)
    finally:
        for s in servers:
            s.stop()
        with contextlib.suppress(Exception):
            pg.drop_all()
        if have_redis:
            with contextlib.suppress(Exception):
                redis_cleanup(rhost, int(rport), a.redis_db)
        shutil.rmtree(tmp, ignore_errors=True)

    elapsed = time.monotonic() - started
    res.loadavg.append(os.getloadavg()[0])
    report = render(res, servers, loadgen, duration, reps, calls, a.keys, elapsed)
    print(report)
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        f.write(report)
    with open(a.output + ".json", "w") as f:
        json.dump(raw_json(res), f, indent=1, default=str)
    log(f"wrote {a.output} (+ .json) in {elapsed:.0f} s")
    return 0


def raw_json(res: Results) -> dict[str, Any]:
    return {
        "load": {"|".join(map(str, k)): [vars(x) for x in v] for k, v in res.load.items()},
        "engine_round_trip_us": {"|".join(k): v for k, v in res.rt.items()},
        "redis": {"|".join(map(str, k)): [vars(x) for x in v] for k, v in res.redis.items()},
        "populate_seconds": res.populate,
        "goals": goals(res),
        "loadavg": res.loadavg,
        "profile": res.profile,
        "notes": res.notes,
    }


def versions() -> str:
    out = []
    for mod in ("botwire", "uvicorn", "fastapi", "starlette", "httptools", "uvloop", "h11",
                "httpx", "psycopg"):
        try:
            from importlib.metadata import version

            out.append(f"{mod} {version(mod)}")
        except Exception:  # noqa: BLE001
            out.append(f"{mod} (not installed)")
    return ", ".join(out)


def fmt(x: float, digits: int = 0) -> str:
    return "n/a" if x != x else f"{x:,.{digits}f}"


def render(res: Results, servers: list[Server], loadgen: Any, duration: float, reps: int,
           calls: int, nkeys: int, elapsed: float) -> str:
    L: list[str] = []
    L.append("# botwire server benchmark\n")
    L.append(f"Medians of {reps} repetition(s); {duration:g} s per load measurement; {nkeys:,} "
             f"keys of a {len(VALUE_TEXT)}-byte JSON value; quotas off. Load generator: "
             f"{loadgen.name} {' '.join(loadgen.version)}. Run took {elapsed:.0f} s.\n")
    L.append(f"Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python "
             f"{platform.python_version()}. {versions()}. 1-minute load average at the start "
             f"and the end of the run: {' / '.join(f'{x:.1f}' for x in res.loadavg)}.\n")
    for note in res.notes:
        L.append(f"* {note}")
    if res.notes:
        L.append("")

    redis_rps = {k: med([x.rps for x in v]) for k, v in res.redis.items()}
    L.append("## Throughput and latency\n")
    L.append("| subject | op | conns | req/s (2xx) | p50 ms | p99 ms | non-2xx | errors | "
             "vs redis | server CPU µs/req |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    labels = [s.label for s in servers if any(k[0] == s.label for k in res.load)]
    for label in labels:
        for method, conns in TESTS:
            runs = res.load.get((label, method, conns))
            if not runs:
                continue
            rps = med([x.rps for x in runs])
            peer = redis_rps.get(("GET" if method == "GET" else "SET", conns))
            ratio = f"{rps / peer:.3f}x" if peer else ""
            L.append(f"| botwire {label} | {method} | {conns} | {fmt(rps)} | "
                     f"{fmt(med([x.p50_ms for x in runs]), 2)} | "
                     f"{fmt(med([x.p99_ms for x in runs]), 2)} | "
                     f"{sum(x.non2xx for x in runs)} | {sum(x.errors for x in runs)} | {ratio} | "
                     f"{fmt(med([x.cpu_us for x in runs]))} |")
    for (test, conns), runs in sorted(res.redis.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        L.append(f"| redis-server (redis-benchmark) | {test} | {conns} | "
                 f"{fmt(med([x.rps for x in runs]))} | {fmt(med([x.p50_ms for x in runs]), 3)} | "
                 f"{fmt(med([x.p99_ms for x in runs]), 3)} | | | 1x | |")
    L.append("")
    L.append("non-2xx and errors are totals over all repetitions; req/s counts 2xx answers only. "
             "\"vs redis\": botwire's req/s over redis-benchmark's for the same op (PUT vs SET) "
             "and connection count. Server CPU: user+system time of all server processes over the "
             "requests answered (the machine has 2 cores, shared with the load generator).\n")

    L.append("## HTTP engine round trip (`Memory(url=\"http://KEY@...\")`, sequential)\n")
    L.append("| server | op | calls | p50 µs | p99 µs |")
    L.append("|---|---|---:|---:|---:|")
    for label in labels:
        for op in ("get", "set", "healthz"):
            runs = res.rt.get((label, op))
            if runs:
                name = "GET /healthz (http.client, floor)" if op == "healthz" else f"m.{op}"
                L.append(f"| {label} | {name} | {calls} | {fmt(med([r[0] for r in runs]))} | "
                         f"{fmt(med([r[1] for r in runs]))} |")
    L.append("")

    L.append("## Targets\n")
    for label in labels:
        L.append(f"**{label}**\n")
        get32 = res.load.get((label, "GET", 32), [])
        put32 = res.load.get((label, "PUT", 32), [])
        rget = redis_rps.get(("GET", 32))
        if get32 and rget:
            ratio = med([x.rps for x in get32]) / rget
            L.append(f"* GET throughput at 32 conns >= {TARGET_GET_RATIO}x redis-server: "
                     f"{ratio:.3f}x ({fmt(med([x.rps for x in get32]))} vs {fmt(rget)} req/s) "
                     f"-> **{'met' if ratio >= TARGET_GET_RATIO else 'not met'}**")
        for op in ("get", "set"):
            rt = res.rt.get((label, op))
            if rt:
                p50 = med([r[0] for r in rt])
                L.append(f"* HTTP-engine round trip p50 < 1 ms, m.{op}: {fmt(p50)} µs "
                         f"-> **{'met' if p50 < TARGET_RT_P50_US else 'not met'}**")
        for method, runs in (("GET", get32), ("PUT", put32)):
            if runs:
                p99 = med([x.p99_ms for x in runs])
                L.append(f"* p99 < {TARGET_P99_MS_32:g} ms at 32 conns, {method}: {p99:.2f} ms "
                         f"-> **{'met' if p99 < TARGET_P99_MS_32 else 'not met'}**")
        if put32:
            w = med([x.rps for x in put32])
            bad = sum(x.non2xx + x.errors for x in put32)
            L.append(f"* >= {TARGET_WRITES:,.0f} acknowledged writes/s (PUT, 32 conns, 200s "
                     f"only): {fmt(w)}/s, {bad} non-2xx/errors "
                     f"-> **{'met' if w >= TARGET_WRITES else 'not met'}**")
        L.append("")

    if res.populate:
        L.append("Populate (batch/set, 1000 keys per request): " + ", ".join(
            f"{k} {v:.1f} s" for k, v in res.populate.items()) + ".\n")

    if res.profile:
        pr = res.profile
        busy = pr["samples"] / (pr["rate"] * pr["seconds"])
        per_req = busy / pr["load"]["rps"] * 1e6 if pr["load"]["rps"] else math_nan
        L.append("## Profile: SQLite, 1 worker, GET at 32 connections (py-spy record --gil)\n")
        L.append(f"{pr['samples']} samples of whichever thread held the GIL ({busy:.0%} of the "
                 f"time) while wrk drove {fmt(pr['load']['rps'])} req/s: about "
                 f"{fmt(per_req)} µs of GIL time per request. A frame of the standard library "
                 "is charged to the nearest caller in one of the layers.\n")
        L.append("| layer (self time) | % of GIL time | ≈ µs per request |")
        L.append("|---|---:|---:|")
        for layer, n in pr["self_layers"]:
            L.append(f"| {layer} | {100 * n / pr['samples']:.1f} | "
                     f"{fmt(per_req * n / pr['samples'])} |")
        L.append("")
        L.append("| hottest functions (self) | % |")
        L.append("|---|---:|")
        for frame, n in pr["self_frames"][:15]:
            L.append(f"| `{frame[:110]}` | {100 * n / pr['samples']:.1f} |")
        L.append("")
    L += render_goals(res, reps)
    return "\n".join(L)


def goals(res: Results) -> list[dict[str, str]]:
    """The Goals rows, from this run's medians (``n/a`` where a measurement is missing)."""
    w = GOAL_WORKERS

    def rps(label: str) -> float:
        return med([x.rps for x in res.load.get((label, "GET", 32), [])])

    def rt(label: str, op: str) -> float:
        return med([r[0] for r in res.rt.get((label, op), [])])

    def over(a: float, b: float) -> float:
        return a / b if b else math_nan

    def verdict(value: float, ok: bool, note: str = "") -> str:
        if value != value:
            return "n/a (not measured)"
        return f"**{'met' if ok else 'not met'}**{note}"

    rows = []
    sq, pg, redis = rps(f"sqlite w{w}"), rps(f"postgres w{w}"), med(
        [x.rps for x in res.redis.get(("GET", 32), [])])
    r = over(sq, redis)
    rows.append({"row": f"server `GET` req/s, 32 conns, {w} workers, SQLite",
                 "botwire": fmt(sq), "peer": f"redis-server (redis-benchmark GET) {fmt(redis)}",
                 "ratio": fmt(r, 3) + "x" if r == r else "n/a",
                 "goal": f">= {TARGET_GET_RATIO:g}x",
                 "verdict": verdict(r, r >= TARGET_GET_RATIO)})
    r = over(pg, sq)
    rows.append({"row": f"server `GET` req/s, 32 conns, {w} workers, PostgreSQL vs SQLite",
                 "botwire": fmt(pg), "peer": f"botwire server on SQLite {fmt(sq)}",
                 "ratio": fmt(r, 2) + "x" if r == r else "n/a",
                 "goal": f">= {TARGET_PG_GET_RATIO:g}x",
                 "verdict": verdict(r, r >= TARGET_PG_GET_RATIO)})
    for db, note in (("postgres", ""), ("sqlite", " (reference)")):
        label = f"{db} w{w}"
        floor = rt(label, "healthz")
        for op in ("get", "set"):
            p50 = rt(label, op)
            r = over(p50, floor)
            rows.append({
                "row": f"HTTP engine round trip p50, `m.{op}`, {label} server{note}",
                "botwire": f"{fmt(p50)} µs", "peer": f"`GET /healthz` floor {fmt(floor)} µs",
                "ratio": fmt(r, 2) + "x" if r == r else "n/a",
                "goal": f"<= {TARGET_RT_P50_US / 1000:g} ms",
                "verdict": verdict(p50, p50 <= TARGET_RT_P50_US)})
    return rows


def render_goals(res: Results, reps: int) -> list[str]:
    L = ["## Goals\n",
         f"From this run's medians over {reps} repetition(s). req/s: 2xx answers per second "
         "under the load generator named above (`GET` of random keys); the peer is "
         "redis-benchmark `GET` at 32 connections in the same run. Round trip: sequential "
         "calls through `Memory(url=\"http://...\")`; its floor is a sequential keep-alive "
         "`GET /healthz` to the same server with `http.client` (ratio = round trip / floor; "
         "the goal is on the round trip itself).\n",
         "| row | botwire | floor or peer | ratio | goal | verdict |",
         "|---|---:|---|---:|---:|---|"]
    for g in goals(res):
        L.append(f"| {g['row']} | {g['botwire']} | {g['peer']} | {g['ratio']} | {g['goal']} | "
                 f"{g['verdict']} |")
    L.append("")
    return L


if __name__ == "__main__":
    sys.exit(main())
