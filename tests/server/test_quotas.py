"""Quotas are enforced by the database, so they hold across server processes."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from botwire import Memory, QuotaExceeded
from botwire._wire import seconds_to_utc_midnight
from servers import ServerProcess


async def test_write_quota_counts_each_value_and_answers_429(make_api):
    api = await make_api(writes_per_day=5)
    for i in range(3):
        assert (
            await api.call("PUT", f"/v1/namespaces/q/keys/k{i}", content=b"1")
        ).status_code == 200
    r = await api.call(
        "POST", "/v1/namespaces/q/batch/set", json={"items": {"a": 1, "b": 2, "c": 3}}
    )
    assert r.status_code == 429  # 3 more would make 6: refused whole, nothing written
    err = r.json()["error"]
    assert err["code"] == "write_quota_exceeded"
    retry = int(r.headers["retry-after"])
    assert abs(retry - seconds_to_utc_midnight()) <= 2
    keys = (await api.call("GET", "/v1/namespaces/q/keys")).json()["keys"]
    assert [k["key"] for k in keys] == ["k0", "k1", "k2"]
    r = await api.call("POST", "/v1/namespaces/q/batch/set", json={"items": {"a": 1, "b": 2}})
    assert r.status_code == 200
    six = {f"s{i}": i for i in range(6)}  # more than a whole day's quota: never fits
    r = await api.call("POST", "/v1/namespaces/fresh/batch/set", json={"items": six})
    assert r.status_code == 400 and "retry-after" not in r.headers
    assert (
        await api.call("POST", "/v1/namespaces/q/logs/l", json={"entries": [1]})
    ).status_code == 429
    assert (
        await api.call("DELETE", "/v1/namespaces/q/keys/k0")
    ).status_code == 200  # never refused
    assert (await api.call("PUT", "/v1/namespaces/other/keys/k", content=b"1")).status_code == 200
    metrics = (await api.call("GET", "/metrics")).text
    assert 'botwire_quota_rejections_total{kind="write"} 2.0' in metrics
    stats = (await api.call("GET", "/v1/namespaces/q")).json()
    assert stats["writes_today"] == 5
    assert stats["quotas"] == {"writes_per_day": 5, "max_bytes": 50 * 1024 * 1024}  # the default
    assert (await api.call("GET", "/v1/namespaces/never-written")).json()["writes_today"] == 0


async def test_failed_write_is_refunded(make_api):
    api = await make_api(writes_per_day=2)
    assert (await api.call("PUT", "/v1/namespaces/q/keys/k", content=b"1")).status_code == 200
    r = await api.call("PUT", "/v1/namespaces/q/keys/k", content=b"2", headers={"If-Match": '"9"'})
    assert r.status_code == 412
    assert (await api.call("PUT", "/v1/namespaces/q/keys/k2", content=b"1")).status_code == 200
    assert (await api.call("PUT", "/v1/namespaces/q/keys/k3", content=b"1")).status_code == 429


async def test_storage_quota_answers_413_and_counts_logs(make_api):
    api = await make_api(max_bytes=1000, writes_per_day=0)
    big = json.dumps("x" * 600)
    assert (await api.call("PUT", "/v1/namespaces/s/keys/a", content=big)).status_code == 200
    r = await api.call("PUT", "/v1/namespaces/s/keys/b", content=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "storage_quota_exceeded"
    r = await api.call("POST", "/v1/namespaces/s/logs/l", json={"entries": ["y" * 500]})
    assert r.status_code == 413
    assert (await api.call("GET", "/v1/namespaces/s/keys/b")).status_code == 404
    await api.call("DELETE", "/v1/namespaces/s/keys/a")
    assert (await api.call("PUT", "/v1/namespaces/s/keys/b", content=big)).status_code == 200


async def test_per_key_overrides_and_zero_is_unlimited(make_api):
    api = await make_api(writes_per_day=1)
    generous = api.make_key(["g:"], "write", writes_per_day=0)
    strict = api.make_key(["s:"], "write", writes_per_day=2)
    for i in range(5):
        r = await api.call("PUT", f"/v1/namespaces/g:1/keys/k{i}", key=generous, content=b"1")
        assert r.status_code == 200
    codes = [
        (
            await api.call("PUT", f"/v1/namespaces/s:1/keys/k{i}", key=strict, content=b"1")
        ).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429]


def test_client_gets_quota_exceeded_with_retry_after(tmp_path):
    server = ServerProcess(
        f"sqlite:///{tmp_path}/q.db", tmp_path / "home", writes_per_day=2
    ).start()
    try:
        with Memory("q", url=server.url()) as m:
            m.set("a", 1)
            m.set("b", 2)
            with pytest.raises(QuotaExceeded) as caught:
                m.set("c", 3)
            assert 0 < caught.value.retry_after <= 86400
            assert m.get("c") is None and m.get("a") == 1
    finally:
        server.stop()


def _two_servers(database: str, tmp_path, **settings) -> list[ServerProcess]:
    first = ServerProcess(database, tmp_path / "one", **settings).start()
    second = ServerProcess(database, tmp_path / "two", **settings)
    second.admin_key = first.admin_key  # the key lives in the shared database
    return [first, second.start()]


async def _race(servers: list[ServerProcess], ns: str, attempts: int) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i: int) -> int:
            s = servers[i % len(servers)]
            r = await client.put(
                f"{s.base}/v1/namespaces/{ns}/keys/k{i}",
                content=b"1",
                headers={"Authorization": f"Bearer {s.admin_key}"},
            )
            return r.status_code

        return await asyncio.gather(*(one(i) for i in range(attempts)))


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
async def test_quota_is_exact_across_two_server_processes(db, tmp_path, request):
    if db == "sqlite":
        database = f"sqlite:///{tmp_path}/shared.db"
    else:
        database = request.getfixturevalue("fresh_postgres_url")
    servers = _two_servers(database, tmp_path, writes_per_day=25)
    try:
        codes = await _race(servers, "shared", 60)
    finally:
        for s in servers:
            s.stop()
    assert sorted(set(codes)) == [200, 429]
    assert codes.count(200) == 25
    servers[0].start()
    try:
        with Memory("shared", url=servers[0].url()) as m:
            assert len(m) == 25
    finally:
        servers[0].stop()
