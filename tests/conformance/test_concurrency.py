"""Concurrency across real processes and threads.

Worker functions are top-level so the "spawn" start method can pickle them; each worker opens
its own Memory from (url, namespace), as a separate program would.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import sys
import threading
import time

import pytest

import botwire
from botwire import VersionConflict

SPAWN = multiprocessing.get_context("spawn")
PROCS = 4
JOIN_TIMEOUT = 120


# --- workers (run in child processes) ------------------------------------------------------------


def _incr_worker(url, ns, key, n, start):
    start.wait(JOIN_TIMEOUT)
    with botwire.Memory(ns, url=url) as m:
        for _ in range(n):
            m.incr(key)


def _append_worker(url, ns, log_name, worker, n, start, results):
    start.wait(JOIN_TIMEOUT)
    seqs = []
    with botwire.Memory(ns, url=url) as m:
        log = m.log(log_name)
        for i in range(n):
            seqs.append(log.append({"worker": worker, "i": i}))
    results.put((worker, seqs))


def _cas_worker(url, ns, key, worker, ready, results):
    with botwire.Memory(ns, url=url) as m:
        version = m.info(key).version
        ready.wait(JOIN_TIMEOUT)  # everyone has read the same version before anyone writes
        try:
            m.set(key, f"winner {worker}", if_version=version)
            results.put((worker, "won", version))
        except VersionConflict as exc:
            results.put((worker, "conflict", exc.current_version))


def _read_worker(url, ns, key, results):
    with botwire.Memory(ns, url=url) as m:
        results.put(m.get(key, "<missing>"))


def _write_worker(url, ns, key, value):
    with botwire.Memory(ns, url=url) as m:
        m.set(key, value)
        m.log("handoff").append(value)


def _first_use_worker(url, ns, worker, ready, results):
    try:
        ready.wait(JOIN_TIMEOUT)  # all processes touch the brand-new database together
        with botwire.Memory(ns, url=url) as m:
            m.set(f"w{worker}", worker)
            m.incr("c")
            m.log("l").append(worker)
        results.put((worker, "ok"))
    except BaseException as exc:
        results.put((worker, repr(exc)))


def _fork_child(memory, key, results):
    try:
        before = memory.get(key)
        memory.set(key + "-child", {"pid": os.getpid(), "saw": before})
        memory.incr("counter")
        memory.log("forked").append("from child")
        results.put(("ok", before))
    except BaseException as exc:  # report, do not hang the parent
        results.put(("error", repr(exc)))


# --- helpers -------------------------------------------------------------------------------------


def _run_all(procs):
    for p in procs:
        p.start()
    return procs


def _join_all(procs):
    deadline = time.monotonic() + JOIN_TIMEOUT
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
        p.join()
    assert not alive, f"{len(alive)} worker process(es) hung"
    assert [p.exitcode for p in procs] == [0] * len(procs)


def _drain(q, n):
    return [q.get(timeout=JOIN_TIMEOUT) for _ in range(n)]


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.processes
def test_incr_from_processes_is_atomic(memory, engine_url, ns):
    memory.set("warm", 1)  # the database exists before the race starts
    start = SPAWN.Event()
    procs = _run_all(
        [
            SPAWN.Process(target=_incr_worker, args=(engine_url, ns, "c", 500, start))
            for _ in range(PROCS)
        ]
    )
    start.set()
    _join_all(procs)
    assert memory.get("c") == PROCS * 500


@pytest.mark.processes
def test_appends_from_processes_are_gap_free(memory, engine_url, ns):
    memory.set("warm", 1)
    start = SPAWN.Event()
    results = SPAWN.Queue()
    per = 250
    procs = _run_all(
        [
            SPAWN.Process(
                target=_append_worker, args=(engine_url, ns, "calls", w, per, start, results)
            )
            for w in range(PROCS)
        ]
    )
    start.set()
    got = dict(_drain(results, PROCS))
    _join_all(procs)
    total = PROCS * per
    all_seqs = [s for seqs in got.values() for s in seqs]
    assert sorted(all_seqs) == list(range(1, total + 1))
    for seqs in got.values():
        assert seqs == sorted(seqs)  # each writer sees its own appends in order
    entries = memory.log("calls").read()
    assert len(entries) == total
    assert [e.seq for e in entries] == list(range(1, total + 1))
    assert memory.log("calls").count() == total
    # every entry is where its writer was told it was
    by_seq = {e.seq: e.value for e in entries}
    for worker, seqs in got.items():
        assert [by_seq[s] for s in seqs] == [{"worker": worker, "i": i} for i in range(per)]


@pytest.mark.processes
@pytest.mark.parametrize("n", [PROCS])
def test_compare_and_set_race_between_processes(memory, engine_url, ns, n):
    v = memory.set("k", "initial")
    ready = SPAWN.Barrier(n)
    results = SPAWN.Queue()
    procs = _run_all(
        [
            SPAWN.Process(target=_cas_worker, args=(engine_url, ns, "k", w, ready, results))
            for w in range(n)
        ]
    )
    outcomes = _drain(results, n)
    _join_all(procs)
    winners = [o for o in outcomes if o[1] == "won"]
    losers = [o for o in outcomes if o[1] == "conflict"]
    assert len(winners) == 1, outcomes
    assert len(losers) == n - 1
    assert all(w[2] == v for w in winners)
    final = memory.info("k")
    assert final.version > v
    assert memory.get("k") == f"winner {winners[0][0]}"
    for loser in losers:
        assert loser[2] == final.version  # the conflict reports the winner's version


def test_compare_and_set_race_between_threads(memory):
    n = 8
    v = memory.set("k", "initial")
    ready = threading.Barrier(n)
    outcomes: queue_module.Queue = queue_module.Queue()

    def work(worker):
        version = memory.info("k").version
        ready.wait(30)
        try:
            memory.set("k", f"winner {worker}", if_version=version)
            outcomes.put((worker, "won", version))
        except VersionConflict as exc:
            outcomes.put((worker, "conflict", exc.current_version))
        except Exception as exc:  # pragma: no cover - fails the test below
            outcomes.put((worker, "error", repr(exc)))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    got = [outcomes.get_nowait() for _ in range(n)]
    winners = [o for o in got if o[1] == "won"]
    assert len(winners) == 1, got
    assert sum(1 for o in got if o[1] == "conflict") == n - 1, got
    assert memory.get("k") == f"winner {winners[0][0]}"
    assert memory.info("k").version > v


def test_if_version_zero_race_between_threads(memory):
    n = 8
    ready = threading.Barrier(n)
    won, lost, errors = [], [], []

    def work(worker):
        ready.wait(30)
        try:
            memory.set("lock", worker, if_version=0)
            won.append(worker)
        except VersionConflict:
            lost.append(worker)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(won) == 1 and len(lost) == n - 1
    assert memory.get("lock") == won[0]


@pytest.mark.processes
def test_write_in_one_process_is_read_by_another_at_once(memory, engine_url, ns):
    memory.set("from-parent", {"hello": "child"})
    results = SPAWN.Queue()
    reader = SPAWN.Process(target=_read_worker, args=(engine_url, ns, "from-parent", results))
    reader.start()
    assert results.get(timeout=JOIN_TIMEOUT) == {"hello": "child"}
    _join_all([reader])

    writer = SPAWN.Process(target=_write_worker, args=(engine_url, ns, "from-child", [1, "two"]))
    writer.start()
    _join_all([writer])
    # the parent's Memory was open (and had read) before the child wrote
    assert memory.get("from-child") == [1, "two"]
    assert [e.value for e in memory.log("handoff").read()] == [[1, "two"]]


def test_threads_share_one_memory(memory):
    errors = []

    def work(t):
        try:
            for i in range(50):
                memory.set(f"t{t}-{i}", i)
                assert memory.get(f"t{t}-{i}") == i
            memory.log("shared").extend([t] * 10)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert memory.count() == 300
    entries = memory.log("shared").read()
    assert [e.seq for e in entries] == list(range(1, 61))
    # extend is all-or-nothing and consecutive: each thread's batch is contiguous
    values = [e.value for e in entries]
    for start in range(0, 60, 10):
        assert len(set(values[start : start + 10])) == 1


def test_first_use_by_several_processes_at_once(fresh_engine_url, ns):
    # nobody has created the tables yet: the processes race to do it
    ready = SPAWN.Barrier(PROCS)
    results = SPAWN.Queue()
    procs = _run_all(
        [
            SPAWN.Process(target=_first_use_worker, args=(fresh_engine_url, ns, w, ready, results))
            for w in range(PROCS)
        ]
    )
    outcomes = sorted(_drain(results, PROCS))
    _join_all(procs)
    assert outcomes == [(w, "ok") for w in range(PROCS)]
    with botwire.Memory(ns, url=fresh_engine_url) as m:
        assert m.get("c") == PROCS
        assert m.get_many([f"w{w}" for w in range(PROCS)]) == {f"w{w}": w for w in range(PROCS)}
        assert sorted(e.value for e in m.log("l").read()) == list(range(PROCS))


def test_first_use_by_several_threads_at_once(fresh_engine_url, ns):
    n = 6
    ready = threading.Barrier(n)
    errors = []
    m = botwire.Memory(ns, url=fresh_engine_url)

    def work(t):
        try:
            ready.wait(30)
            m.set(f"w{t}", t)
            m.incr("c")
            m.log("l").append(t)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert m.get("c") == n
        assert m.log("l").count() == n
    finally:
        m.close()


@pytest.mark.processes
@pytest.mark.skipif(sys.platform == "win32" or not hasattr(os, "fork"), reason="needs os.fork")
def test_memory_keeps_working_in_a_forked_child(memory):
    memory.set("k", "set before fork")
    assert memory.get("k") == "set before fork"  # connections are open and in use
    memory.incr("counter")
    memory.log("forked").append("from parent")
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    child = fork.Process(target=_fork_child, args=(memory, "k", results))
    child.start()
    outcome = results.get(timeout=JOIN_TIMEOUT)
    _join_all([child])
    assert outcome == ("ok", "set before fork")
    # the child's writes landed, and the parent's own connections still work after the child exited
    assert memory.get("k-child")["saw"] == "set before fork"
    assert memory.get("k-child")["pid"] != os.getpid()
    assert memory.incr("counter") == 3
    assert [e.value for e in memory.log("forked").read()] == ["from parent", "from child"]
    memory.set("after", 1)
    assert memory.get("after") == 1


@pytest.mark.processes
@pytest.mark.skipif(sys.platform == "win32" or not hasattr(os, "fork"), reason="needs os.fork")
def test_several_forked_children_increment(memory):
    memory.incr("counter")
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    children = [fork.Process(target=_fork_child, args=(memory, "k", results)) for _ in range(3)]
    for c in children:
        c.start()
    outcomes = _drain(results, 3)
    _join_all(children)
    assert [o[0] for o in outcomes] == ["ok"] * 3, outcomes
    assert memory.get("counter") == 4
    assert memory.log("forked").count() == 3
