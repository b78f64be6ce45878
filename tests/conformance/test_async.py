"""AsyncMemory / AsyncLog: the same surface, awaited."""

from __future__ import annotations

import asyncio
import collections.abc
import time

import pytest
from conformance_helpers import MISSING, assert_same

import botwire
from botwire import (
    AsyncLog,
    InvalidInput,
    InvalidKey,
    KeyInfo,
    LogEntry,
    UnsupportedValue,
    ValueTooLarge,
    VersionConflict,
)


async def test_namespace_attribute(amemory, ns):
    assert amemory.namespace == ns


async def test_get_set_delete_exists(amemory):
    assert await amemory.get("k") is None
    assert await amemory.get("k", MISSING) is MISSING
    v = await amemory.set("k", {"b": 1, "a": [1.0, True, "1", None]})
    assert type(v) is int
    assert_same(await amemory.get("k"), {"b": 1, "a": [1.0, True, "1", None]})
    assert await amemory.exists("k") is True
    assert await amemory.delete("k") is True
    assert await amemory.delete("k") is False
    assert await amemory.exists("k") is False
    await amemory.set("n", None)
    assert await amemory.get("n", MISSING) is None


async def test_get_many_set_many(amemory):
    versions = await amemory.set_many({"a": 1, "b": "2", "c": [3]})
    assert set(versions) == {"a", "b", "c"}
    assert await amemory.get_many(["a", "b", "missing", "c"]) == {"a": 1, "b": "2", "c": [3]}
    with pytest.raises(UnsupportedValue):
        await amemory.set_many({"d": 1, "e": {1, 2}})
    assert await amemory.get_many(["d", "e"]) == {}
    assert await amemory.count() == 3


async def test_set_many_ttl(amemory):
    await amemory.set_many({"a": 1, "b": 2}, ttl=0.3)
    assert await amemory.count() == 2
    await asyncio.sleep(0.45)
    assert await amemory.count() == 0
    assert await amemory.get_many(["a", "b"]) == {}


async def test_incr(amemory):
    assert await amemory.incr("c") == 1
    assert await amemory.incr("c", 10) == 11
    assert await amemory.incr("c", by=-20) == -9
    await amemory.set("s", "text")
    with pytest.raises(UnsupportedValue):
        await amemory.incr("s")
    assert await amemory.get("s") == "text"


async def test_concurrent_incr_with_gather(amemory):
    results = await asyncio.gather(*(amemory.incr("c") for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert await amemory.get("c") == 50


async def test_concurrent_mixed_operations(amemory):
    await asyncio.gather(*(amemory.set(f"k{i:02d}", i) for i in range(40)))
    got = await asyncio.gather(*(amemory.get(f"k{i:02d}") for i in range(40)))
    assert got == list(range(40))
    assert await amemory.count() == 40


async def test_keys_and_items(amemory):
    data = {f"k{i:05d}": i for i in range(2500)}
    await amemory.set_many(data)
    await amemory.set_many({"other": 1, "k_": 2})
    keys = amemory.keys()
    assert isinstance(keys, collections.abc.AsyncIterator)
    assert [k async for k in keys] == sorted([*data, "other", "k_"])
    assert [k async for k in amemory.keys(prefix="k0000")] == [f"k{i:05d}" for i in range(10)]
    assert [k async for k in amemory.keys("k_")] == ["k_"]
    items = [(k, v) async for k, v in amemory.items(prefix="k0")]
    assert items == sorted(data.items())


async def test_count_clear_info(amemory):
    assert await amemory.count() == 0
    await amemory.set_many({"a": 1, "b": 2})
    before = time.time()
    await amemory.set("c", "x" * 10, ttl=60)
    assert await amemory.count() == 3
    info = await amemory.info("c")
    assert isinstance(info, KeyInfo)
    assert info.key == "c"
    assert info.created_at <= info.updated_at
    assert info.expires_at == pytest.approx(before + 60, abs=2)
    assert info.size > 0
    assert await amemory.info("missing") is None
    assert await amemory.clear() == 3
    assert await amemory.count() == 0


async def test_versions_and_conflicts(amemory):
    v1 = await amemory.set("k", "a", if_version=0)
    v2 = await amemory.set("k", "b", if_version=v1)
    assert v2 > v1
    with pytest.raises(VersionConflict) as err:
        await amemory.set("k", "c", if_version=v1)
    assert err.value.current_version == v2
    with pytest.raises(VersionConflict) as err:
        await amemory.set("fresh", "c", if_version=3)
    assert err.value.current_version == 0
    assert await amemory.get("k") == "b"
    assert (await amemory.info("k")).version == v2


async def test_ttl(amemory):
    await amemory.set("k", 1, ttl=0.3)
    assert await amemory.exists("k")
    await asyncio.sleep(0.45)
    assert not await amemory.exists("k")
    assert await amemory.get("k", MISSING) is MISSING
    with pytest.raises(InvalidInput):
        await amemory.set("k", 1, ttl=0)


async def test_validation(amemory, ns, engine_url):
    with pytest.raises(InvalidKey):
        await amemory.set("", 1)
    with pytest.raises(InvalidKey):
        await amemory.get("a\x00")
    with pytest.raises(UnsupportedValue):
        await amemory.set("k", b"bytes")
    with pytest.raises(InvalidInput):
        await amemory.set("k", float("nan"))
    assert await amemory.count() == 0
    m = botwire.AsyncMemory(ns, url=engine_url, max_value_bytes=50)
    try:
        with pytest.raises(ValueTooLarge):
            await m.set("k", "x" * 100)
    finally:
        await m.aclose()
    assert not await amemory.exists("k")


async def test_log_operations(amemory):
    log = amemory.log("history")
    assert isinstance(log, AsyncLog)
    assert log.name == "history"
    assert await log.append("a") == 1
    assert await log.extend(["b", "c", "d"]) == [2, 3, 4]
    entries = await log.read()
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert all(isinstance(e, LogEntry) and type(e.ts) is float for e in entries)
    assert [e.value for e in await log.read(last=2)] == ["c", "d"]
    assert [e.seq for e in await log.read(after=1, limit=2)] == [2, 3]
    assert await log.read(after=1, limit=0) == []
    assert await log.read(last=0) == []
    with pytest.raises(InvalidInput):
        await log.read(last=1, after=1)
    assert await log.count() == 4
    with pytest.raises(UnsupportedValue):
        await log.extend(["ok", {1, 2}])
    assert await log.count() == 4
    assert await log.clear() == 4
    assert await log.append("e") == 5
    assert await log.count() == 1


async def test_log_async_iteration_over_pages(amemory):
    log = amemory.log("big")
    await log.extend(list(range(2500)))
    seen = [e async for e in log]
    assert [e.seq for e in seen] == list(range(1, 2501))
    assert [e.value for e in seen] == list(range(2500))


async def test_concurrent_appends_with_gather(amemory):
    log = amemory.log("l")
    seqs = await asyncio.gather(*(log.append(i) for i in range(40)))
    assert sorted(seqs) == list(range(1, 41))
    assert [e.seq for e in await log.read()] == list(range(1, 41))


async def test_async_with(engine_url, ns):
    async with botwire.AsyncMemory(ns, url=engine_url) as m:
        assert isinstance(m, botwire.AsyncMemory)
        await m.set("k", 1)
    async with botwire.AsyncMemory(ns, url=engine_url) as m:
        assert await m.get("k") == 1


async def test_async_and_sync_share_data(amemory, engine_url, ns):
    await amemory.set("k", "from async")
    with botwire.Memory(ns, url=engine_url) as m:
        assert m.get("k") == "from async"
        m.set("k2", "from sync")
        m.log("l").append("sync entry")
    assert await amemory.get("k2") == "from sync"
    assert [e.value for e in await amemory.log("l").read()] == ["sync entry"]


async def test_anamespaces_and_aforget(amemory, engine_url, ns):
    await amemory.set("k", 1)
    await amemory.log("l").append(1)
    other = botwire.AsyncMemory(ns + "-b", url=engine_url)
    try:
        await other.log("l").append(1)
        it = botwire.anamespaces(prefix=ns, url=engine_url)
        assert isinstance(it, collections.abc.AsyncIterator)
        assert [n async for n in it] == [ns, ns + "-b"]
        assert await botwire.aforget(ns, url=engine_url) is True
        assert await botwire.aforget(ns, url=engine_url) is False
        assert [n async for n in botwire.anamespaces(prefix=ns, url=engine_url)] == [ns + "-b"]
        assert await amemory.count() == 0
        assert await amemory.log("l").count() == 0
        assert await other.log("l").count() == 1
    finally:
        await other.aclose()


async def test_async_namespaces_use_the_environment_by_default(monkeypatch, tmp_path, ns):
    for name in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTWIRE_HOME", str(tmp_path))
    async with botwire.AsyncMemory(ns) as m:
        await m.set("k", 1)
    assert [n async for n in botwire.anamespaces(prefix=ns)] == [ns]
    assert await botwire.aforget(ns) is True
    assert (tmp_path / "botwire.db").exists()


@pytest.mark.parametrize(
    "action, method",
    [
        pytest.param(lambda m: len(m), "count", id="len"),
        pytest.param(lambda m: "k" in m, "exists", id="in"),
        pytest.param(lambda m: m["k"], "get", id="getitem"),
        pytest.param(lambda m: m.__setitem__("k", 1), "set", id="setitem"),
        pytest.param(lambda m: m.__delitem__("k"), "delete", id="delitem"),
    ],
)
async def test_sync_dunders_raise_type_error_naming_the_method(amemory, action, method):
    await amemory.set("k", "v")
    with pytest.raises(TypeError) as err:
        action(amemory)
    assert method in str(err.value)
    assert await amemory.get("k") == "v"


async def test_sync_dunders_on_async_log_raise_type_error(amemory):
    log = amemory.log("l")
    await log.append(1)
    with pytest.raises(TypeError) as err:
        len(log)
    assert "count" in str(err.value)
    with pytest.raises(TypeError):
        iter(log)
    assert await log.count() == 1


async def test_sync_iteration_of_async_memory_is_refused(amemory):
    await amemory.set("k", 1)
    with pytest.raises(TypeError):
        for _ in amemory.keys():  # an async iterator, not a sync one
            pass


def test_async_memory_in_successive_event_loops(memory, engine_url, ns):
    # `memory` keeps the shared engine open while each loop comes and goes
    async def use(value):
        async with botwire.AsyncMemory(ns, url=engine_url) as am:
            await am.set("k", value)
            await am.log("l").append(value)
            return await am.get("k")

    assert asyncio.run(use(1)) == 1
    assert asyncio.run(use(2)) == 2
    assert memory.get("k") == 2
    assert [e.value for e in memory.log("l").read()] == [1, 2]


def test_async_memory_in_two_threads_with_their_own_loops(memory, engine_url, ns):
    import threading

    results, errors = {}, []

    async def use(t):
        am = botwire.AsyncMemory(ns, url=engine_url)
        try:
            for _ in range(20):
                await am.incr("c")
            results[t] = await am.get("c")
        finally:
            await am.aclose()

    def run(t):
        try:
            asyncio.run(use(t))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert memory.get("c") == 60


async def test_delete_if_version(amemory):
    v = await amemory.set("k", "a")
    with pytest.raises(VersionConflict):
        await amemory.delete("k", if_version=v + 1)
    assert await amemory.delete("k", if_version=v) is True
    assert await amemory.get("k", MISSING) is MISSING
