"""Error bodies say what failed in the server's words, with the request id; the log has more."""

from __future__ import annotations

import sqlite3

import httpx

from botwire.server.errors import STORAGE_MESSAGE
from servers import ServerProcess


def test_a_database_it_cannot_use_is_503_in_the_servers_words(tmp_path):
    db = tmp_path / "held.db"
    server = ServerProcess(f"sqlite:///{db}?timeout=0.3", tmp_path / "home").start()
    try:
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process keeps the write lock
        try:
            answer = httpx.put(
                f"{server.base}/v1/namespaces/n/keys/k",
                json={"v": 1},
                headers={"Authorization": f"Bearer {server.admin_key}"},
                timeout=30,
            )
        finally:
            holder.rollback()
            holder.close()
    finally:
        server.stop()
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    request_id = answer.headers["x-request-id"]
    error = {"code": "storage_unavailable", "message": STORAGE_MESSAGE, "request_id": request_id}
    assert answer.json() == {"error": error}
    assert "SQLite" not in answer.text and "locked" not in answer.text
    logged = [line for line in server.log().splitlines() if request_id in line]
    assert any("WARNING" in line and "database is locked" in line for line in logged), logged


async def test_every_error_body_carries_the_request_id(api):
    answer = await api.call("DELETE", "/v1/namespaces/n/keys/missing")
    assert answer.status_code == 404
    assert answer.json()["error"]["request_id"] == answer.headers["x-request-id"]
    chosen = await api.call("GET", "/v1/keys", key="bw_wrong", headers={"X-Request-Id": "abc-1"})
    assert chosen.status_code == 401
    assert chosen.json()["error"]["request_id"] == "abc-1"
