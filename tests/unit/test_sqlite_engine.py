"""What only the SQLite engine promises: WAL, purging, locking, threads."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time

import pytest

from botwire import Memory, StorageUnavailable
from botwire.engines.sqlite import SQLiteEngine


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/botwire.db"


def test_database_is_in_wal_mode_with_current_schema(url, tmp_path):
    with Memory("ns", url=url) as m:
        m.set("k", 1)
    conn = sqlite3.connect(tmp_path / "botwire.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"botwire_kv", "botwire_logs", "botwire_entries"} <= tables


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
        m = Memory("ns", url=f"sqlite:///{tmp_path}/r{round_}/botwire.db")
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
    paths = [str(tmp_path / f"p{i}" / "botwire.db") for i in range(15)]
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
