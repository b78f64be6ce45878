"""What only the HTTP engine promises: retries, backoff, and which operations it retries."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from botwire import AsyncMemory, AuthenticationFailed, Memory, StorageUnavailable
from servers import ServerProcess


@pytest.fixture
def server(tmp_path):
    s = ServerProcess(
        f"sqlite:///{tmp_path}/h.db?timeout=0.2", tmp_path / "home", writes_per_day=0
    ).start()
    yield s
    s.stop()


def test_reads_and_writes_ride_out_a_server_restart(server):
    url = server.url() + "?retries=8"
    with Memory("r", url=url) as m:
        m.set("k", 1)
        server.stop()
        restart = threading.Timer(0.5, server.start, kwargs={"port": server.port})
        restart.start()
        try:
            assert m.get("k") == 1  # connection refused, retried until the server is back
            assert m.incr("n") == 1  # refused connections were never sent: safe to retry
        finally:
            restart.join()


def test_unreachable_server_is_storage_unavailable(server):
    url = server.url() + "?retries=1"
    server.stop()
    with Memory("r", url=url) as m:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="127.0.0.1"):
            m.get("k")
        assert time.monotonic() - started < 5
        assert server.admin_key not in repr(m)


def _lock_database(path: str, seconds: float) -> threading.Thread:
    ready = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        ready.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    t = threading.Thread(target=hold)
    t.start()
    ready.wait(5)
    return t


def test_503_is_retried_for_idempotent_writes_only(server, tmp_path):
    db = str(tmp_path / "h.db")
    with Memory("r", url=server.url() + "?retries=6") as m:
        m.set("n", 1)
        holder = _lock_database(db, 0.6)
        try:
            m.set("k", "written once the lock is gone")  # 503s, retried with backoff
        finally:
            holder.join()
        assert m.get("k") == "written once the lock is gone"
        holder = _lock_database(db, 0.6)
        try:
            with pytest.raises(StorageUnavailable, match="not available"):
                m.incr("n")  # not idempotent: one attempt, the error surfaces
        finally:
            holder.join()
        assert m.get("n") == 1


def test_wrong_key_is_authentication_failed(server):
    with Memory("r", url=server.url("bw_wrong")) as m:
        with pytest.raises(AuthenticationFailed):
            m.get("k")


async def test_async_memory_over_http(server):
    async with AsyncMemory("a", url=server.url()) as m:
        await m.set("k", {"v": 1})
        assert await m.get("k") == {"v": 1}
        assert await m.log("l").extend([1, 2, 3]) == [1, 2, 3]
