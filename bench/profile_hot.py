#!/usr/bin/env python3
"""Where does the time of one botwire call go? A profiling helper for the get/set hot path.

Usage (from the repo root):

    python bench/profile_hot.py get                     # cProfile of 50k Memory.get calls
    python bench/profile_hot.py set --calls 20000 --url postgresql://...
    py-spy record -r 5000 -f raw -o /tmp/get.txt -- python bench/profile_hot.py get --no-cprofile
    python bench/profile_hot.py --lines /tmp/get.txt    # py-spy samples -> per-line table

The ``--lines`` mode reads py-spy's raw (collapsed-stack) output and prints, for every line of
``src/botwire`` that is on the stack, the share of samples spent at or below it (inclusive) and
at it (self), plus the share spent in sqlite3 / psycopg / json underneath.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import linecache
import os
import pstats
import random
import re
import sys
import tempfile
import time

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
OPS = ("get", "set", "incr", "set_many", "append", "read")


def run(op: str, calls: int, url: str | None, keys: int, cprofile: bool) -> None:
    from botwire import Memory

    tmp = None
    if url is None:
        tmp = tempfile.mkdtemp(prefix="botwire-prof-")
        url = f"sqlite:///{tmp}/prof.db"
    ns = f"prof-{os.getpid()}"
    m = Memory(ns, url=url)
    for b in range(0, keys, 1000):
        m.set_many({f"caller:{i:07d}": {"order": "ORDER-789", "n": i} for i in range(b, b + 1000)})
    lg = m.log("calls")
    lg.extend([{"role": "user", "text": "hi", "turn": i} for i in range(1000)])
    rng = random.Random(1)
    ks = [f"caller:{rng.randrange(keys):07d}" for _ in range(calls)]
    val = {"order": "ORDER-789", "n": 1, "status": "shipped"}
    batches = [{k: val for k in ks[i : i + 100]} for i in range(0, min(calls, 200) * 100, 100)]

    def loop() -> None:
        if op == "get":
            for k in ks:
                m.get(k)
        elif op == "set":
            for k in ks:
                m.set(k, val)
        elif op == "incr":
            for k in ks:
                m.incr("counter:" + k[-2:])
        elif op == "set_many":
            for b in batches:
                m.set_many(b)
        elif op == "append":
            for _ in ks:
                lg.append(val)
        elif op == "read":
            for _ in ks:
                lg.read(last=20)

    t0 = time.perf_counter()
    if cprofile:
        prof = cProfile.Profile()
        prof.runcall(loop)
        n = len(batches) if op == "set_many" else calls
        print(
            f"{op}: {n} calls in {time.perf_counter() - t0:.2f}s under cProfile "
            f"({(time.perf_counter() - t0) / n * 1e6:.1f} us/call incl. profiler overhead)"
        )
        st = pstats.Stats(prof)
        st.sort_stats("tottime").print_stats(25)
        st.sort_stats("cumulative").print_stats(30)
    else:
        loop()
        n = len(batches) if op == "set_many" else calls
        print(f"{op}: {(time.perf_counter() - t0) / n * 1e6:.1f} us/call", file=sys.stderr)
    import botwire

    m.close()
    if url.startswith("postgres"):
        botwire.forget(ns, url=url)
    if tmp:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+):(?P<line>\d+)\)$")


def lines(path: str, top: int) -> None:
    """Aggregate py-spy raw output (``frame;frame;... count``) per botwire source line."""
    incl: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    leaf_kind: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as f:
        for raw in f:
            raw = raw.rstrip("\n")
            if not raw:
                continue
            stack, _, count = raw.rpartition(" ")
            c = int(count)
            frames = stack.split(";")
            # only samples taken inside the timed loop
            if not any("loop (" in fr and "profile_hot" in fr for fr in frames):
                continue
            total += c
            seen = set()
            last_bw = None
            for fr in frames:
                mt = _FRAME.match(fr.strip())
                if not mt:
                    continue
                fn = mt["file"]
                if "botwire" in fn and "profile_hot" not in fn:
                    rel = fn.split("src/")[-1]
                    src = linecache.getline(os.path.join(SRC, rel), int(mt["line"])).strip()
                    label = f"{rel}:{mt['line']} {mt['func']}: {src[:80]}"
                    if label not in seen:
                        incl[label] += c
                        seen.add(label)
                    last_bw = label
            leaf = frames[-1]
            if last_bw:
                mt = _FRAME.match(leaf.strip())
                if mt and "botwire" in mt["file"]:
                    self_[last_bw] += c
                else:
                    kind = (
                        "sqlite3"
                        if "sqlite" in leaf and "botwire" not in leaf
                        else "psycopg"
                        if "psycopg" in leaf
                        else "json"
                        if "json" in leaf
                        else "other"
                    )
                    leaf_kind[f"{last_bw} -> {kind}: {leaf.strip()[:70]}"] += c
    print(f"{total} samples in the timed loop")
    print("\ninclusive (at or below this botwire line):")
    for label, c in incl.most_common(top):
        print(f"  {100 * c / total:5.1f}%  {label}")
    print(
        "\nself (this line itself, including C calls it makes: sqlite3, json, psycopg's C parts):"
    )
    for label, c in self_.most_common(top):
        print(f"  {100 * c / total:5.1f}%  {label}")
    print("\nleaf outside botwire, by calling botwire line:")
    for label, c in leaf_kind.most_common(top):
        print(f"  {100 * c / total:5.1f}%  {label}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("op", nargs="?", choices=OPS)
    p.add_argument("--calls", type=int, default=50_000)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--url", help="default: a SQLite file in a temporary directory")
    p.add_argument("--no-cprofile", action="store_true", help="plain loop (for py-spy)")
    p.add_argument("--lines", metavar="PYSPY_RAW", help="summarise py-spy raw output instead")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    if a.lines:
        lines(a.lines, a.top)
    elif a.op:
        run(a.op, a.calls, a.url, a.keys, not a.no_cprofile)
    else:
        p.error("an op or --lines")


if __name__ == "__main__":
    main()
