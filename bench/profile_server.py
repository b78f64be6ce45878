#!/usr/bin/env python3
"""Where a call start's microseconds go in ``botwire serve``: server CPU per request, split by
layer from py-spy samples, on SQLite and PostgreSQL.

    python bench/profile_server.py                          # about 2 minutes
    PYTHONPATH=/path/to/older/checkout/src python bench/profile_server.py --json before.json
    python bench/profile_server.py --baseline before.json   # before / after, side by side

Method: ``--callers`` callers filled as ``make bench-voice`` fills them (20 facts, past calls,
notes); one server worker (``botwire serve``, quotas off); one client sends Vapi
``assistant-request`` webhooks one after the other on one keep-alive connection (so the
server's CPU per request is not mixed with queueing) for ``--seconds`` while ``py-spy record``
samples whichever thread of the worker holds the GIL (``--gil --rate 500``). CPU per request
comes from ``/proc`` (the worker process, every thread, the kernel's work for its sockets
included); a layer's samples / rate / requests give its microseconds of GIL time per request,
by the innermost frame that belongs to a known layer (``bench_server.LAYERS`` plus the voice
code and psycopg). C code that keeps the GIL (SQLite's own work, json) is charged to the
Python frame that called it; C code that lets it go (waiting on a socket) is not sampled.
Needs py-spy (``pip install py-spy``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_server  # noqa: E402
import bench_voice  # noqa: E402

RATE = 500  # py-spy samples per second
LAYERS = [
    ("voice: briefing text and variables (voice/)", "botwire/voice/"),
    ("voice webhook route (server/voice.py, platforms)", "botwire/server/voice"),
    *bench_server.LAYERS[:4],
    ("botwire memory (memory.py)", "botwire/memory.py"),
    *bench_server.LAYERS[4:],
    ("psycopg and its pool (PostgreSQL client)", "psycopg"),
]


def layer_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needle in LAYERS:
            if needle in frame:
                return name
    return "other (standard library, charged nowhere else)"


def send_all(port: int, requests: bench_voice.Requests, seconds: float) -> int:
    """Requests one after the other on one connection for ``seconds``; how many were sent."""
    sock = socket.create_connection(("127.0.0.1", port))
    stream = sock.makefile("rb")
    n, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        data, known = requests.next()
        sock.sendall(data)
        status = int(stream.readline().split()[1])
        length = 0
        while (line := stream.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = stream.read(length)
        if not requests.good(status, body, known):
            raise RuntimeError(f"bad answer {status}: {body[:300]!r}")
        n += 1
    sock.close()
    return n


def profile_one(label: str, database: str, a: argparse.Namespace, tmp: str) -> dict[str, Any]:
    bench_voice.log(f"{label}: filling {a.callers:,} callers")
    postgres = database.startswith("postgres")
    bench_voice.populate_botwire(database, a.callers, bench_voice.SEED, 8 if postgres else 1)
    if postgres:
        bench_voice.PgSchemas.analyze(None, database)  # type: ignore[arg-type]  # as autovacuum would
    server = bench_voice.Server.botwire(label, database, os.path.join(tmp, label), 1).start()
    try:
        requests = bench_voice.Requests(
            "assistant-request", "127.0.0.1", server.port, a.callers, 0.1, bench_voice.SEED
        )
        send_all(server.port, requests, 2)  # warm: connections, prepared statements, caches
        raw = os.path.join(tmp, f"{label}.txt")
        pid = server.pids()[-1]
        spy = subprocess.Popen(
            [
                a.py_spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(a.seconds)),
                "--rate",
                str(RATE),
                "--format",
                "raw",
                "--output",
                raw,
                "--nonblocking",
                "--gil",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.3)
        cpu = bench_server.cpu_seconds_of([pid])
        n = send_all(server.port, requests, a.seconds - 0.6)
        cpu = bench_server.cpu_seconds_of([pid]) - cpu
        _, err = spy.communicate(timeout=a.seconds + 60)
        if spy.returncode != 0 or not os.path.exists(raw):
            raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    finally:
        server.stop()
    total, layers, frames = bench_server.read_py_spy(raw, layer_of)
    per_request = cpu / n * 1e6
    gil = total / RATE / n * 1e6  # µs a request held the GIL
    bench_voice.log(
        f"{label}: {n:,} requests, {per_request:.0f} µs of server CPU each, "
        f"{gil:.0f} µs holding the GIL"
    )
    return {
        "requests": n,
        "cpu_us": per_request,
        "gil_us": gil,
        "samples": total,
        "layers": {k: v / RATE / n * 1e6 for k, v in layers.most_common()},
        "frames": [(k, 100 * v / total) for k, v in frames.most_common(12)],
    }


def render(now: dict[str, Any], before: dict[str, Any] | None) -> str:
    L = [
        "# Call start (Vapi assistant-request) in botwire serve: where the µs go\n",
        f"{now['when']}, src digest `{now['digest']}`"
        + (f", against `{before['digest']}` ({before['when']})" if before else "")
        + f"; {now['callers']:,} callers, one worker, one request at a time.\n",
    ]
    for label, res in now["subjects"].items():
        old = (before or {}).get("subjects", {}).get(label)
        head = (
            f"## {label}: {res['cpu_us']:.0f} µs of server CPU per call start, "
            f"{res['gil_us']:.0f} µs holding the GIL"
        )
        if old:
            head += (
                f" (before: {old['cpu_us']:.0f} / {old['gil_us']:.0f} µs, "
                f"{res['cpu_us'] / old['cpu_us']:.2f}x / {res['gil_us'] / old['gil_us']:.2f}x)"
            )
        L += [
            head + "\n",
            "| layer (self time, GIL held) | µs per request |" + (" before |" if old else ""),
            "|---|---:|" + ("---:|" if old else ""),
        ]
        names = list(res["layers"])
        names += [k for k in (old or {}).get("layers", {}) if k not in res["layers"]]
        for name in names:
            row = f"| {name} | {res['layers'].get(name, 0):.0f} |"
            if old:
                row += f" {old['layers'].get(name, 0):.0f} |"
            L.append(row)
        L += ["", "| hottest frames (self) | % of samples |", "|---|---:|"]
        L += [f"| `{frame[:110]}` | {pct:.1f} |" for frame, pct in res["frames"]]
        L.append("")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--callers", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--postgres-url", default=bench_voice.DEFAULT_PG)
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument(
        "--py-spy",
        default=shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy"),
    )
    p.add_argument("--json", help="also write the figures here (for --baseline later)")
    p.add_argument("--baseline", help="figures of an earlier run (--json) to compare with")
    p.add_argument("--output", help="write the markdown report here (default: stdout)")
    a = p.parse_args(argv)
    if not os.path.exists(a.py_spy):
        sys.exit("needs py-spy: pip install py-spy")
    import botwire

    tmp = tempfile.mkdtemp(prefix="botwire-profile-")
    pg = bench_voice.PgSchemas(a.postgres_url)
    now: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "digest": bench_voice.source_digest(os.path.dirname(botwire.__file__)),
        "callers": a.callers,
        "botwire": os.path.dirname(botwire.__file__),
        "subjects": {},
    }
    try:
        now["subjects"]["botwire-sqlite"] = profile_one(
            "botwire-sqlite", f"sqlite:///{tmp}/voice.db", a, tmp
        )
        if not a.no_postgres:
            now["subjects"]["botwire-postgres"] = profile_one("botwire-postgres", pg.new(), a, tmp)
    finally:
        pg.drop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(now, f, indent=1)
    before = json.load(open(a.baseline)) if a.baseline else None
    text = render(now, before)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
