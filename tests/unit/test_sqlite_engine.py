"""What only the SQLite engine promises: WAL, purging, locking, threads."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time

import pytest

from botwire.engines.sqlite import SCHEMA_VERSION
from botwire import ConfigurationError, Memory, StorageUnavailable
from botwire.engines.sqlite import SQLiteEngine


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/botwire.db"


def assert_index_matches_the_rows(path) -> None:
    """Once the queued documents are forgotten, the FTS5 indexes hold exactly what the rows say
    they hold: each key with a doc (under its text, or under ``stale`` if it changed since),
    each entry up to its log's ``indexed_seq`` -- every (term, document, column, offset) equal
    to what indexing those afresh gives."""
    from botwire.engines.sql import ENTRY_DOC

    engine = SQLiteEngine(str(path))
    engine._index_pending()  # forgets the queue (no namespace was searched by this engine)
    engine.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM botwire_fts_queue").fetchone()[0] == 0
    docs = {
        "botwire_kv_fts": "SELECT doc, ns, COALESCE(stale, key || ' ' || value) FROM botwire_kv "
        "WHERE doc IS NOT NULL",
        "botwire_entries_fts": f"SELECT e.log_id * {ENTRY_DOC} + e.seq, l.ns, e.value "
        "FROM botwire_entries e JOIN botwire_logs l ON l.id = e.log_id "
        "WHERE e.seq <= l.indexed_seq",
    }
    for table, rows in docs.items():
        conn.execute(f"INSERT INTO {table} ({table}) VALUES ('integrity-check')")
        conn.execute(
            "CREATE VIRTUAL TABLE temp.fresh USING fts5(ns, body, content='', "
            "tokenize='porter unicode61')"
        )
        conn.execute(f"INSERT INTO temp.fresh (rowid, ns, body) {rows}")
        conn.execute(f"CREATE VIRTUAL TABLE temp.v_live USING fts5vocab(main, {table}, instance)")
        conn.execute("CREATE VIRTUAL TABLE temp.v_fresh USING fts5vocab(temp, fresh, instance)")
        live = conn.execute("SELECT * FROM temp.v_live").fetchall()
        assert sorted(live) == sorted(conn.execute("SELECT * FROM temp.v_fresh").fetchall())
        for name in ("v_live", "v_fresh", "fresh"):
            conn.execute(f"DROP TABLE temp.{name}")
    conn.close()


# What the index lacks or holds in excess: documents to forget, changed keys queued, keys never
# indexed (or changed before this schema), entries not indexed.
LACKING = (
    "SELECT (SELECT count(*) FROM botwire_fts_queue WHERE key IS NULL OR doc IS NOT NULL) "
    "+ (SELECT count(*) "
    "FROM botwire_kv WHERE doc IS NULL OR stale IS NOT NULL) + (SELECT count(*) "
    "FROM botwire_entries e JOIN botwire_logs l ON l.id = e.log_id WHERE e.seq > l.indexed_seq)"
)


def lacking(conn) -> int:
    return conn.execute(LACKING).fetchone()[0]


def test_database_is_in_wal_mode_with_current_schema(url, tmp_path):
    with Memory("ns", url=url) as m:
        m.set("k", 1)
    conn = sqlite3.connect(tmp_path / "botwire.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"botwire_kv", "botwire_logs", "botwire_entries"} <= tables


def test_a_database_from_a_newer_botwire_is_refused(url, tmp_path):
    with Memory("ns", url=url) as m:
        m.set("k", "kept")
    conn = sqlite3.connect(tmp_path / "botwire.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConfigurationError) as err:
        Memory("ns", url=url).get("k")
    message = str(err.value)
    newer = f"version {SCHEMA_VERSION + 1}, newer than this botwire knows ({SCHEMA_VERSION})"
    assert newer in message
    assert "Upgrade botwire" in message
    conn = sqlite3.connect(tmp_path / "botwire.db")  # nothing was changed
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    conn.close()


def test_upgrading_a_version_2_file_indexes_what_it_already_holds(tmp_path):
    from botwire.engines import sqlite as engine_module

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statements in engine_module._MIGRATIONS[:2]:
        for statement in statements:
            conn.execute(statement)
    conn.execute("PRAGMA user_version=2")
    conn.execute(
        "INSERT INTO botwire_kv VALUES ('ns', 'fruit', '\"banana bread\"', 1, 0, 0, NULL, 15), "
        "('ns', 'veg', '\"carrot\"', 1, 0, 0, NULL, 8), ('other', 'fruit', '\"banana\"', 1, 0, 0, "
        "NULL, 8)"
    )
    conn.execute("INSERT INTO botwire_logs VALUES (7, 'ns', 'calls', 1, 1)")
    conn.execute("INSERT INTO botwire_entries VALUES (7, 1, '\"banana split\"', 0, 14)")
    conn.close()
    with Memory("ns", url=f"sqlite:///{path}") as m:
        m.engine.search_direct_max = 0  # every search goes through the index
        assert {(h.key, h.log) for h in m.search("banana")} == {("fruit", None), (None, "calls")}
        m.set("fruit", "apple")  # the old document is forgotten exactly
        m.delete("veg")
        assert [h.log for h in m.search("banana")] == ["calls"]
        assert m.search("carrot") == []
        m.set("new", "banana")
        assert {h.key for h in m.search("banana")} == {"new", None}
    assert_index_matches_the_rows(path)


def test_upgrading_a_version_5_file_keeps_its_index_and_what_its_queue_said(tmp_path):
    """A file whose writers queued a row per change (schema 5), part of the queue applied:
    after the upgrade every search through the index finds what the rows hold, and the index
    holds exactly what the rows say it does."""
    from botwire.engines import sqlite as engine_module

    path = tmp_path / "v5.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statements in engine_module._MIGRATIONS[:5]:
        for statement in statements:
            conn.execute(statement)
    conn.execute("PRAGMA user_version=5")
    row = "INSERT INTO botwire_kv VALUES ('ns', ?, ?, 1, 0, 0, NULL, 8, NULL)"
    for key, text in [("a", "almond"), ("b", "brazil"), ("c", "cashew"), ("d", "date")]:
        conn.execute(row, (key, f'"{text}"'))
    conn.execute("INSERT INTO botwire_logs VALUES (7, 'ns', 'calls', 2, 2)")
    conn.execute("INSERT INTO botwire_entries VALUES (7, 1, '\"elder\"', 0, 7)")
    conn.execute("INSERT INTO botwire_entries VALUES (7, 2, '\"fig\"', 0, 5)")
    # the queue applied for a, b, c and entry 1, as schema 5's slices did
    for doc, key in enumerate(["a", "b", "c"], 1):
        conn.execute("UPDATE botwire_kv SET doc = ? WHERE key = ?", (doc, key))
        conn.execute(
            "INSERT INTO botwire_kv_fts (rowid, ns, body) SELECT doc, ns, key || ' ' || value "
            "FROM botwire_kv WHERE key = ?",
            (key,),
        )
    conn.execute(
        f"INSERT INTO botwire_entries_fts (rowid, ns, body) VALUES ({7 << 32 | 1}, 'ns', "
        "'\"elder\"')"
    )
    conn.execute("UPDATE botwire_fts_next SET doc = 3")
    conn.execute(
        "DELETE FROM botwire_fts_queue WHERE key IN ('a', 'b', 'c') OR (log_id = 7 AND seq = 1)"
    )
    conn.execute("UPDATE botwire_kv SET value = '\"acorn\"' WHERE key = 'a'")  # forget + index
    conn.execute("DELETE FROM botwire_kv WHERE key = 'b'")  # forget
    conn.execute("UPDATE botwire_kv SET value = '\"chestnut\"' WHERE key = 'c'")
    conn.execute(  # c's forget row applied by a slice, its index row not yet
        "INSERT INTO botwire_kv_fts (botwire_kv_fts, rowid, ns, body) "
        "SELECT 'delete', doc, ns, body FROM botwire_fts_queue WHERE doc = 3"
    )
    conn.execute("DELETE FROM botwire_fts_queue WHERE doc = 3")
    conn.close()
    with Memory("ns", url=f"sqlite:///{path}") as m:
        m.engine.search_direct_max = 0  # every search goes through the index
        assert [h.key for h in m.search("acorn")] == ["a"]
        assert m.search("almond") == [] and m.search("brazil") == [] and m.search("cashew") == []
        assert [h.key for h in m.search("chestnut")] == ["c"]
        assert [h.key for h in m.search("date")] == ["d"]
        assert [(h.log, h.seq) for h in m.search("elder fig")] in (
            [("calls", 1), ("calls", 2)],
            [("calls", 2), ("calls", 1)],
        )
    assert_index_matches_the_rows(path)


def test_search_indexes_stay_consistent_through_every_write(url, tmp_path):
    with Memory("ns", url=url) as m:
        m.engine.search_direct_max = 0  # every search goes through the index
        m.set_many({f"k{i}": f"word{i % 7} shared" for i in range(200)})
        assert len(m.search("shared", limit=500)) == 200  # indexed: later writes change it
        for i in range(0, 200, 3):
            m.set(f"k{i}", {"changed": f"word{i % 5}"})
        for i in range(0, 200, 7):
            m.delete(f"k{i}")
        m.incr("n")
        m.set("t", "short lived", ttl=0.01)
        log = m.log("l")
        log.extend([f"entry word{i}" for i in range(50)])
        assert len(m.search("entry", limit=500)) == 50
        log.clear()
        log.extend(["after clear"])
        m.clear()
        m.set("again", "shared")
        assert [h.key for h in m.search("shared")] == ["again"]
        assert [h.log for h in m.search("clear")] == ["l"]
    assert_index_matches_the_rows(tmp_path / "botwire.db")


def test_expired_keys_are_purged_by_later_writes(url, tmp_path):
    engine = SQLiteEngine(str(tmp_path / "botwire.db"))
    engine._purger.every_writes = 10
    m = Memory("ns", engine=engine)
    m.set_many({f"old{i}": i for i in range(20)}, ttl=0.05)
    time.sleep(0.1)
    for i in range(10):
        m.set(f"new{i}", i)
    raw = sqlite3.connect(tmp_path / "botwire.db")
    left = raw.execute("SELECT count(*) FROM botwire_kv WHERE key LIKE 'old%'").fetchone()[0]
    assert left == 0
    assert m.count() == 10
    engine.close()


def test_a_writer_holding_the_lock_past_the_timeout_gives_storage_unavailable(tmp_path):
    path = tmp_path / "botwire.db"
    m = Memory("ns", url=f"sqlite:///{path}?timeout=0.2")
    m.set("k", 1)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageUnavailable, match="locked"):
            m.set("k", 2)
    finally:
        blocker.execute("ROLLBACK")
    assert m.get("k") == 1  # readers were never blocked, and nothing half-written
    assert m.set("k", 3) == 2
    m.close()


def test_each_thread_gets_its_own_connection(url):
    m = Memory("ns", url=url)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                m.set(f"t{n}-{i}", i)
                m.incr("shared")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert m.get("shared") == 200
    assert m.count() == 201
    assert len(m.engine._conns) >= 2
    m.close()


def test_threads_racing_to_create_a_fresh_file_all_succeed(tmp_path):
    # Creating the file and switching it to WAL does not wait on the busy timeout by
    # itself: the engine must serialize its threads and retry, round after round.
    for round_ in range(25):
        m = Memory("ns", url=f"sqlite:///{tmp_path}/r{round_}.db")
        ready, errors = threading.Barrier(4), []

        def work(n: int, m: Memory = m, ready: threading.Barrier = ready, errors=errors) -> None:
            try:
                ready.wait(10)
                m.set(f"k{n}", n)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        assert m.count() == 4
        m.close()


def _open_fresh_files(paths, ready, results):
    try:
        for path in paths:
            ready.wait(30)
            with Memory("ns", url=f"sqlite:///{path}") as m:
                m.incr("c")
        results.put("ok")
    except BaseException as exc:
        results.put(repr(exc))


def test_processes_racing_to_create_fresh_files_all_succeed(tmp_path):
    spawn = multiprocessing.get_context("spawn")
    paths = [str(tmp_path / f"p{i}.db") for i in range(15)]
    ready, results = spawn.Barrier(3), spawn.Queue()
    procs = [
        spawn.Process(target=_open_fresh_files, args=(paths, ready, results)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert outcomes == ["ok"] * 3
    for path in paths:
        with Memory("ns", url=f"sqlite:///{path}") as m:
            assert m.get("c") == 3


def test_closed_engine_refuses_work(tmp_path):
    engine = SQLiteEngine(str(tmp_path / "x.db"))
    m = Memory("ns", engine=engine)
    m.set("k", 1)
    engine.close()
    with pytest.raises(StorageUnavailable, match="closed"):
        Memory("ns", engine=engine).set("k", 2)


def test_not_a_database_file_is_storage_unavailable(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageUnavailable):
        Memory("ns", url=f"sqlite:///{path}").set("k", 1)


def test_synchronous_option_applies(tmp_path):
    engine = SQLiteEngine(str(tmp_path / "x.db"), synchronous="full")
    Memory("ns", engine=engine).set("k", 1)
    assert engine._connection().execute("PRAGMA synchronous").fetchone()[0] == 2
    engine.close()


def test_wal_is_checkpointed_in_the_background(tmp_path):
    # connections never checkpoint on their own (wal_autocheckpoint=0): without the background
    # checkpoint the data would stay in the WAL and the database file would not grow
    path = tmp_path / "botwire.db"
    m = Memory("ns", url=f"sqlite:///{path}")
    m.set("first", 1)
    before = path.stat().st_size
    value = "x" * 500
    for i in range(2500):
        m.set(f"k{i}", value)
    deadline = time.monotonic() + 10
    while path.stat().st_size <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size > before + 500_000
    m.close()


async def test_an_async_write_waits_off_the_event_loop_while_another_writer_holds_the_gate(
    tmp_path,
):
    import asyncio

    from botwire import AsyncMemory

    m = AsyncMemory("ns", url=f"sqlite:///{tmp_path}/botwire.db")
    await m.set("warm", 1)
    gate = m.engine._gate
    held, release = threading.Event(), threading.Event()

    def hold_gate() -> None:
        with gate(5):
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold_gate)
    holder.start()
    held.wait(5)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    write = asyncio.create_task(m.set("k", "after the other writer"))
    await asyncio.sleep(0.3)
    assert not write.done()  # queued behind the gate ...
    assert ticks >= 10  # ... while the event loop kept running
    release.set()
    assert await asyncio.wait_for(write, 5) == 1
    tick_task.cancel()
    holder.join()
    assert await m.get("k") == "after the other writer"
    await m.aclose()


def test_engines_leave_no_file_descriptors_behind(tmp_path):
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    with Memory("ns", url=f"sqlite:///{tmp_path}/warm.db") as m:
        m.set("k", 1)
    before = open_fds()
    for i in range(30):
        engine = SQLiteEngine(str(tmp_path / f"e{i % 3}.db"))
        Memory("ns", engine=engine).set("k", i)
        engine.close()
    assert open_fds() <= before + 2


async def test_queued_async_writes_commit_together_and_fail_alone(tmp_path):
    import asyncio

    from botwire import AsyncMemory, UnsupportedValue, VersionConflict

    m = AsyncMemory("ns", url=f"sqlite:///{tmp_path}/botwire.db")
    await m.set("text", "not a number")
    version = await m.set("cas", 1)
    held, release = threading.Event(), threading.Event()

    def hold_gate() -> None:
        with m.engine._gate(5):
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold_gate)
    holder.start()
    held.wait(5)
    writes = [asyncio.ensure_future(m.set(f"k{i}", i)) for i in range(50)]
    writes += [asyncio.ensure_future(m.incr("n")) for _ in range(20)]
    bad_incr = asyncio.ensure_future(m.incr("text"))
    cas_ok = asyncio.ensure_future(m.set("cas", 2, if_version=version))
    cas_stale = asyncio.ensure_future(m.set("cas", 3, if_version=version + 5))
    await asyncio.sleep(0.2)
    assert not any(w.done() for w in writes)  # all queued behind the gate
    release.set()
    await asyncio.wait_for(asyncio.gather(*writes), 10)
    with pytest.raises(UnsupportedValue):
        await bad_incr
    assert await cas_ok == version + 1
    with pytest.raises(VersionConflict):
        await cas_stale
    holder.join()
    assert await m.get_many([f"k{i}" for i in range(50)]) == {f"k{i}": i for i in range(50)}
    assert await m.get("n") == 20 and await m.get("text") == "not a number"
    assert await m.get("cas") == 2
    await m.aclose()


def _write_in_child(engine, results):
    try:
        Memory("ns", engine=engine).set("from-child", True)
        results.put("ok")
    except BaseException as exc:  # pragma: no cover - reported by the parent
        results.put(repr(exc))


def test_fork_while_another_thread_holds_the_engine_lock(tmp_path):
    fork = multiprocessing.get_context("fork")
    engine = SQLiteEngine(str(tmp_path / "botwire.db"))
    Memory("ns", engine=engine).set("warm", 1)
    results = fork.Queue()
    with engine._lock:  # as if another thread were opening a connection at the fork
        child = fork.Process(target=_write_in_child, args=(engine, results))
        child.start()
        child.join(20)
        alive = child.is_alive()
        if alive:
            child.kill()
    assert not alive, "the child deadlocked on a lock held by the parent's thread"
    assert results.get(timeout=5) == "ok"
    assert Memory("ns", engine=engine).get("from-child") is True
    engine.close()


@pytest.mark.parametrize("path", ["direct", "index"])
def test_search_matches_a_model_through_random_writes_and_searches(path, tmp_path):
    """Random writes, searches, and index slices applied between writes (as the background
    does): every search finds exactly what the model holds, and the index stays sound."""
    import random

    from botwire.engines import sql

    engine = SQLiteEngine(str(tmp_path / "botwire.db"))
    engine.index_slice = 3
    engine.search_direct_max = 0 if path == "index" else 1000
    rng = random.Random(7)
    words = [f"w{i}" for i in range(30)]
    model: dict[str, set[str]] = {}
    entries: dict[int, str] = {}
    with Memory("ns", engine=engine) as m:
        log = m.log("l")
        for step in range(800):
            key = f"k{rng.randrange(40)}"
            action = rng.random()
            if action < 0.5:
                chosen = set(rng.sample(words, 3))
                m.set(key, " ".join(sorted(chosen)))
                model[key] = chosen
            elif action < 0.65:
                m.delete(key)
                model.pop(key, None)
            elif action < 0.7:
                m.incr(f"n{rng.randrange(3)}")
            elif action < 0.8:
                word = rng.choice(words)
                entries[log.append(word)] = word
            elif action < 0.82:
                log.clear()
                entries.clear()
            elif action < 0.9:  # one slice of indexing, as a search or the background does
                engine._drive(sql.sqlite_index_namespace("ns", engine.index_slice), sql.TXN)
            elif action < 0.95:  # one slice of forgetting, as the background does
                engine._drive(sql.sqlite_forget_queued(engine.index_slice), sql.TXN)
            if rng.random() < 0.1 or step == 799:
                word = rng.choice(words)
                hits = m.search(word, limit=1000)
                got = {h.key for h in hits if h.key} - {"n0", "n1", "n2"}
                assert got == {k for k, ws in model.items() if word in ws}, (step, word)
                assert {h.seq for h in hits if h.log} == {
                    s for s, w in entries.items() if w == word
                }, (step, word)
    assert_index_matches_the_rows(tmp_path / "botwire.db")


def test_a_small_namespace_is_searched_without_the_index(url, tmp_path):
    conn = sqlite3.connect(tmp_path / "botwire.db")
    with Memory("ns", url=url) as m:
        m.set("k", "first")
        m.set("k", "second")
        m.log("l").append("third")
        assert lacking(conn) == 2  # a key and an entry, never indexed
        assert [h.key for h in m.search("second")] == ["k"]
        assert [h.log for h in m.search("third")] == ["l"]
        assert m.search("first") == []
        # the search read the namespace's own rows: nothing was indexed, nothing queued
        assert lacking(conn) == 2
        assert conn.execute("SELECT count(*) FROM botwire_fts_queue").fetchone()[0] == 0


def test_a_callers_writes_queue_nothing_and_a_search_through_the_index_serves_its_namespace(
    url, tmp_path
):
    conn = sqlite3.connect(tmp_path / "botwire.db")
    forget = "SELECT count(*) FROM botwire_fts_queue WHERE key IS NULL"
    named = "SELECT ns, key, body FROM botwire_fts_queue WHERE key IS NOT NULL ORDER BY id"
    stale = "SELECT stale FROM botwire_kv WHERE key = 'k'"
    with Memory("ns", url=url) as m, Memory("other", url=url) as other:
        m.engine.search_direct_max = 0
        m.set("k", "first")
        m.set("k", "second")  # never indexed: nothing kept of "first"
        m.log("l").append("third")
        other.set("o", "second")
        assert conn.execute("SELECT count(*) FROM botwire_fts_queue").fetchone() == (0,)
        assert conn.execute(stale).fetchone() == (None,)
        assert [h.key for h in m.search("second")] == ["k"]
        # this namespace is served and indexed whole; the other one is not touched
        indexed = "SELECT ns, doc IS NOT NULL FROM botwire_kv ORDER BY ns"
        assert conn.execute(indexed).fetchall() == [("ns", 1), ("other", 0)]
        assert conn.execute("SELECT ns, cursor FROM botwire_fts_ns").fetchall() == [("ns", None)]
        m.set("k", "fourth")  # indexed: queued with the text the index holds
        m.set("k", "fourth!")  # again: that row holds a text the index never had
        m.set("new", "fifth")  # a new key of a served namespace is queued too
        other.set("o2", "sixth")  # the other namespace's writes still queue nothing
        assert conn.execute(named).fetchall() == [
            ("ns", "k", 'k "second"'),
            ("ns", "k", 'k "fourth"'),
            ("ns", "new", None),
        ]
        assert m.search("second") == [] and [h.key for h in m.search("fourth")] == ["k"]
        assert [h.key for h in m.search("fifth")] == ["new"]
        assert conn.execute(stale).fetchone() == (None,)  # a served key never keeps it
        assert conn.execute(named).fetchall() == []
        m.set("k", "seventh")
        m.delete("k")  # deleted while queued: forgotten by the text the index holds, once
        assert conn.execute(forget).fetchone()[0] == 1
        assert m.search("fourth") == [] and m.search("seventh") == []
        assert conn.execute(forget).fetchone()[0] == 0  # the search applied its namespace's queue
        m.log("l").clear()  # an indexed entry too
        assert conn.execute(forget).fetchone()[0] == 1
        assert m.search("third") == []
    assert_index_matches_the_rows(tmp_path / "botwire.db")


def test_the_first_pass_over_a_large_namespace_reads_each_key_once(tmp_path):
    """Slices go on from a cursor: indexing n keys reads about n rows, not n^2 / slice."""
    path = tmp_path / "botwire.db"
    engine = SQLiteEngine(str(path))
    engine.index_slice = 10
    with Memory("ns", engine=engine) as m:
        m.set_many({f"k{i:04d}": f"oak {i}" for i in range(3000)})
        conn = engine._connection()
        steps = []
        conn.set_progress_handler(lambda: steps.append(1), 1000)
        engine._catch_up("ns")
        conn.set_progress_handler(None, 0)
        few = len(steps)
        m.set_many({f"j{i:04d}": f"elm {i}" for i in range(1000)})  # queued: ns is served
        m.engine.search_direct_max = 0
        assert len(m.search("oak", limit=1000)) == 1000  # (the limit)
        assert len(m.search("elm", limit=1000)) == 1000
    # 3000 keys take ~350 steps of 1000 instructions; reading the namespace from its start in
    # each of the 300 slices would take ~20x that
    assert few < 1200, few
    assert_index_matches_the_rows(path)


def test_a_namespace_above_the_limit_is_searched_through_the_index(tmp_path):
    engine = SQLiteEngine(str(tmp_path / "botwire.db"))
    engine.search_direct_max = 10
    indexed = "SELECT ns, count(doc) FROM botwire_kv GROUP BY ns ORDER BY ns"
    with Memory("ns", engine=engine) as m, Memory("other", engine=engine) as other:
        other.set_many({f"o{i}": "walnut" for i in range(50)})
        m.set_many({f"k{i}": f"walnut {i}" for i in range(8)})
        m.log("l").extend(["walnut cake", "walnut tart"])  # 10 documents: ranked directly
        direct = m.search("walnut", limit=100)
        assert len(direct) == 10
        assert engine._connection().execute(indexed).fetchall() == [("ns", 0), ("other", 0)]
        m.set("k8", "walnut bread")  # 11: through the index, which indexes the namespace first
        hits = m.search("walnut", limit=100)
        assert {(h.key, h.log, h.seq) for h in hits} == {(h.key, h.log, h.seq) for h in direct} | {
            ("k8", None, None)
        }
        assert engine._connection().execute(indexed).fetchall() == [("ns", 9), ("other", 0)]
        assert [h.key for h in m.search("walnut", limit=3)] == [h.key for h in hits[:3]]


def test_a_namespace_lacking_many_rows_is_ranked_directly_and_indexed_in_the_background(
    tmp_path,
):
    from botwire.engines.sqlite import INDEX_INLINE

    path = tmp_path / "botwire.db"
    engine = SQLiteEngine(str(path))
    engine.search_direct_max, engine.index_slice = 10, 5
    conn = sqlite3.connect(path)
    many = INDEX_INLINE * 5 + 20
    with Memory("ns", engine=engine) as m:
        m.set_many({f"k{i}": f"hazel {i}" for i in range(many)})  # say, imported
        assert len(m.search("hazel", limit=1000)) == many  # answered at once, in full
        deadline = time.monotonic() + 20
        while lacking(conn) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lacking(conn) == 0  # the background indexed the rest
        m.set("k0", "chestnut")
        assert [h.key for h in m.search("chestnut")] == ["k0"]
        assert len(m.search("hazel", limit=1000)) == many - 1
    assert_index_matches_the_rows(path)


class _RecordingGate:
    """The engine's write gate, recording how much index work (rows indexed, documents
    forgotten) each hold did."""

    def __init__(self, gate, path) -> None:
        self.gate, self.removed = gate, []
        self.conn = sqlite3.connect(path)

    def queued(self) -> int:
        return lacking(self.conn)

    def __call__(self, timeout):
        from contextlib import contextmanager

        @contextmanager
        def hold():
            with self.gate(timeout):
                before = self.queued()
                yield
                self.removed.append(before - self.queued())

        return hold()

    def __getattr__(self, name):
        return getattr(self.gate, name)


def test_background_indexing_holds_the_gate_for_one_slice_at_a_time(tmp_path):
    path = tmp_path / "botwire.db"
    engine = SQLiteEngine(str(path))
    engine.index_slice = 50
    with Memory("ns", engine=engine) as m:
        m.set_many({f"k{i}": f"apple {i}" for i in range(400)})
        engine._catch_up("ns")  # as a search through the index does: the background keeps it
        m.log("l").extend([f"pear {i}" for i in range(300)])
        m.set_many({f"k{i}": f"plum {i}" for i in range(0, 400, 4)})
        m.set_many({f"n{i}": f"apple {i}" for i in range(100)})
        for i in range(1, 400, 40):
            m.delete(f"k{i}")
        gate = engine._gate = _RecordingGate(engine._gate, path)
        queued = gate.queued()
        assert queued == 300 + 100 + 100 + 10
        engine._checkpoint()  # what the background thread runs every CHECKPOINT_EVERY writes
        assert gate.queued() == 0
        assert sum(gate.removed) == queued
        assert max(gate.removed) <= 50  # the gate was let go after every slice
        assert len(gate.removed) >= queued // 50
        engine.search_direct_max = 0
        assert len(m.search("apple", limit=1000)) == 390
        assert len(m.search("plum", limit=1000)) == 100
        assert len(m.search("pear", limit=1000)) == 300
    assert_index_matches_the_rows(path)


def test_index_segments_are_merged_in_small_steps_by_the_background(tmp_path):
    path = tmp_path / "botwire.db"
    engine = SQLiteEngine(str(path))
    engine.index_slice = 40  # every slice writes a new FTS5 segment (10 here: no crisis merge)

    def segments() -> int:
        return conn.execute("SELECT count(DISTINCT segid) FROM botwire_kv_fts_idx").fetchone()[0]

    with Memory("ns", engine=engine) as m:
        m.set_many({f"k{i}": " ".join(f"w{i}x{j}" for j in range(30)) + " end" for i in range(400)})
        conn = sqlite3.connect(path)
        config = "SELECT v FROM botwire_kv_fts_config WHERE k = 'automerge'"
        assert conn.execute(config).fetchone() == (0,)  # FTS5 never merges inside a write
        engine._catch_up("ns")
        before = segments()
        assert before == 10
        gate = engine._gate = _RecordingGate(engine._gate, path)
        engine._merge_index()
        assert segments() <= 3
        assert len(gate.removed) > 2  # several short holds, not one long one
        engine.search_direct_max = 0
        assert len(m.search("end", limit=1000)) == 400
    assert_index_matches_the_rows(path)


def test_a_long_queue_left_behind_is_applied_in_the_background_when_an_engine_opens(tmp_path):
    from botwire.engines.sqlite import CHECKPOINT_EVERY

    path = tmp_path / "botwire.db"
    with Memory("ns", url=f"sqlite:///{path}") as m:
        m.set_many({f"k{i}": f"fig {i}" for i in range(CHECKPOINT_EVERY + 10)})  # one write
        m.engine._catch_up("ns")
        m.clear()  # indexed keys deleted: each document is queued to be forgotten
    conn = sqlite3.connect(path)
    queue = "SELECT count(*) FROM botwire_fts_queue"
    assert conn.execute(queue).fetchone()[0] == CHECKPOINT_EVERY + 10
    with Memory("ns", url=f"sqlite:///{path}") as m:
        assert m.get("k0") is None
        deadline = time.monotonic() + 20
        while conn.execute(queue).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert conn.execute(queue).fetchone()[0] == 0
    assert_index_matches_the_rows(path)
