"""BotWireStore / BotWireByteStore: LangChain key-value stores over botwire namespaces.

LangChain's own standard suites run unmodified over SQLite, PostgreSQL and a botwire server;
the tests after them cover what the suites do not: batching, bad input, TTL, paging, async.
"""

from __future__ import annotations

from frameworks import ENGINE_ENV, CountingEngine, need, unique_ns

need("langchain_core", "langchain")
need("langchain_tests", "test-adapters")

import base64  # noqa: E402
import datetime  # noqa: E402
from collections.abc import AsyncGenerator, Generator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from langchain_core.stores import BaseStore  # noqa: E402
from langchain_tests.integration_tests import (  # noqa: E402
    BaseStoreAsyncTests,
    BaseStoreSyncTests,
)

from botwire import (  # noqa: E402
    AsyncMemory,
    InvalidInput,
    InvalidKey,
    Memory,
    StorageUnavailable,
    UnsupportedValue,
)
from botwire.adapters.langchain import BotWireByteStore, BotWireStore  # noqa: E402

STORAGE = ["sqlite_url", "postgres_url", "http_sqlite_url"]

JSON_VALUES = (
    {"text": "Two margheritas", "qty": 2, "price": 9.5, "paid": False, "note": None},
    [0.1, -2.5e-08, 3, "three", [True, {"nested": []}]],
    "plain text with emoji 🍕 and NUL \x00",
)
BYTES_VALUES = (b"\x00\x01\x02RIFF", bytes(range(256)), b"")


@pytest.fixture(params=STORAGE)
def storage_url(request, monkeypatch) -> str:
    for name in ENGINE_ENV:
        monkeypatch.delenv(name, raising=False)
    return request.getfixturevalue(request.param)


# -- LangChain's standard suites, unmodified ---------------------------------------------------


class TestBotWireStoreSync(BaseStoreSyncTests[Any]):
    @pytest.fixture
    def kv_store(self, storage_url) -> Generator[BaseStore[str, Any], None, None]:
        store = BotWireStore(unique_ns("lc-store"), url=storage_url)
        yield store
        store.close()

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:
        return JSON_VALUES


class TestBotWireStoreAsync(BaseStoreAsyncTests[Any]):
    @pytest.fixture
    async def kv_store(self, storage_url) -> AsyncGenerator[BaseStore[str, Any], None]:
        store = BotWireStore(unique_ns("lc-store"), url=storage_url)
        yield store
        await store.aclose()

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:
        return JSON_VALUES


class TestBotWireByteStoreSync(BaseStoreSyncTests[bytes]):
    @pytest.fixture
    def kv_store(self, storage_url) -> Generator[BaseStore[str, bytes], None, None]:
        store = BotWireByteStore(unique_ns("lc-bytes"), url=storage_url)
        yield store
        store.close()

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return BYTES_VALUES


class TestBotWireByteStoreAsync(BaseStoreAsyncTests[bytes]):
    @pytest.fixture
    async def kv_store(self, storage_url) -> AsyncGenerator[BaseStore[str, bytes], None]:
        store = BotWireByteStore(unique_ns("lc-bytes"), url=storage_url)
        yield store
        await store.aclose()

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return BYTES_VALUES


# -- beyond the suites -------------------------------------------------------------------------


@pytest.fixture
def ns() -> str:
    return unique_ns("lc-store")


@pytest.fixture
async def store(engine_url, ns):
    s = BotWireStore(ns, url=engine_url)
    yield s
    await s.aclose()


def test_values_round_trip_exactly(store, engine_url, ns):
    values = {
        "int": 1, "float": 1.0, "str": "1", "bool": True, "none": None,
        "order": {"z": 1, "a": 2}, "deep": [[[{"k": [1.5e300, -0.0]}]]],
    }
    store.mset(list(values.items()))
    got = store.mget(list(values))
    assert got == list(values.values())
    assert [type(v) for v in got] == [type(v) for v in values.values()]
    assert list(dict(zip(values, got, strict=False))["order"]) == ["z", "a"]  # key order kept
    with Memory(ns, url=engine_url) as memory:  # the store's keys are the namespace's keys
        assert memory.get("order") == {"z": 1, "a": 2}


def test_mset_and_mget_are_one_engine_call_each(engine_url, ns):
    with Memory(ns, url=engine_url) as holder:
        counter = CountingEngine(holder.engine)
        with Memory(ns, engine=counter) as memory:
            store = BotWireStore(memory=memory)
            store.mset([(f"k{i}", i) for i in range(50)])
            assert counter.ops == ["Put"]
            assert store.mget([f"k{i}" for i in range(60)]) == list(range(50)) + [None] * 10
            assert counter.ops == ["Put", "Get"]
            store.mset([])
            assert counter.ops == ["Put", "Get"]


async def test_amset_and_amget_are_one_engine_call_each(engine_url, ns):
    async with AsyncMemory(ns, url=engine_url) as holder:
        counter = CountingEngine(holder.engine)
        async with AsyncMemory(ns, engine=counter) as memory:
            store = BotWireByteStore(memory=memory)
            await store.amset([(f"k{i}", b"%d" % i) for i in range(50)])
            assert counter.ops == ["async Put"]  # on the event loop, not in a thread
            assert await store.amget(["k1", "k49", "nope"]) == [b"1", b"49", None]
            assert counter.ops == ["async Put", "async Get"]
            await store.amdelete(["k1", "k2"])
            assert [k async for k in store.ayield_keys(prefix="k4")] == ["k4"] + [
                f"k4{i}" for i in range(10)
            ]
            assert counter.ops[2:] == ["async Delete", "async Delete", "async Scan"]


BAD_VALUES = [
    (datetime.date(2024, 1, 1), UnsupportedValue, "date"),
    ((1, 2), UnsupportedValue, "tuple"),
    ({1: "a"}, UnsupportedValue, "int"),
    (b"bytes", UnsupportedValue, "bytes"),
    ({"x": {"y"}}, UnsupportedValue, "not a JSON value"),
    (float("nan"), InvalidInput, "JSON"),
    ("\ud800", InvalidInput, "surrogate"),
]


async def test_bad_values_store_nothing(store):
    store.mset([("kept", 1)])
    for bad, error, match in BAD_VALUES:
        with pytest.raises(error, match=match):
            store.mset([("a", 1), ("b", bad)])
        with pytest.raises(error, match=match):
            await store.amset([("a", 1), ("b", bad)])
    assert store.mget(["kept", "a", "b"]) == [1, None, None]


BAD_PAIRS = [
    ([("ok", 1), ("", 2)], InvalidKey, "empty"),
    ([("ok", 1), ("a\x00b", 2)], InvalidKey, "NUL"),
    ([("ok", 1), ("x" * 513, 2)], InvalidKey, "513"),
    ([("ok", 1), (7, 2)], InvalidKey, "int"),
    ([("ok", 1), ("only-a-key",)], InvalidInput, "pairs"),
    ([("ok", 1), "ab"], InvalidInput, "pairs"),
    ({"ok": 1}, InvalidInput, "not a dict"),
]


async def test_bad_pairs_store_nothing(store):
    for pairs, error, match in BAD_PAIRS:
        with pytest.raises(error, match=match):
            store.mset(pairs)
        with pytest.raises(error, match=match):
            await store.amset(pairs)
    assert [k async for k in store.ayield_keys()] == []


async def test_bad_keys_in_mget_and_mdelete(store):
    store.mset([("a", 1), ("b", 2)])
    for call in (store.mget, store.mdelete):
        with pytest.raises(InvalidKey):
            call(["a", ""])
        with pytest.raises(InvalidKey, match="single str"):
            call("ab")
    with pytest.raises(InvalidKey):
        await store.amdelete(["b", "\x00"])
    with pytest.raises(InvalidKey):
        await store.amget(["b", 3])
    assert store.mget(["a", "b"]) == [1, 2]  # the bad batches deleted nothing


async def test_mdelete_and_duplicates(store):
    await store.amset([("a", 1), ("a", 2), ("b", 3)])  # the last value of a key wins
    assert await store.amget(["a", "b", "a"]) == [2, 3, 2]
    await store.amdelete(["a", "a", "missing"])
    assert await store.amget(["a", "b"]) == [None, 3]
    store.mdelete(["b"])
    assert store.mget(["b"]) == [None]


async def test_yield_keys_order_prefix_and_paging(engine_url, ns):
    keys = [f"doc:{i:05d}" for i in range(1203)] + ["doc", "doc;", "dob", "é", "z"]
    async with AsyncMemory(ns, url=engine_url) as memory:
        store = BotWireStore(memory=memory)
        store.mset([(k, 0) for k in keys])
        listed = store.yield_keys(prefix="doc:")
        assert isinstance(listed, Generator)
        assert list(listed) == sorted(k for k in keys if k.startswith("doc:"))
        assert list(store.yield_keys()) == sorted(keys)  # code-point order, over two pages
        assert list(store.yield_keys(prefix="")) == sorted(keys)
        alisted = store.ayield_keys(prefix="doc")
        assert isinstance(alisted, AsyncGenerator)
        assert [k async for k in alisted] == sorted(k for k in keys if k.startswith("doc"))
        assert [k async for k in store.ayield_keys(prefix="nothing")] == []


async def test_namespaces_are_separate_stores(engine_url):
    a_ns, b_ns = unique_ns("acme"), unique_ns("globex")
    async with BotWireStore(a_ns, url=engine_url) as a, BotWireStore(b_ns, url=engine_url) as b:
        a.mset([("greeting", "hello from acme")])
        await b.amset([("greeting", "hello from globex")])
        assert a.mget(["greeting"]) == ["hello from acme"]
        assert await b.amget(["greeting"]) == ["hello from globex"]
        a.mdelete(["greeting"])
        assert await b.amget(["greeting"]) == ["hello from globex"]
        assert list(a.yield_keys()) == []


def test_ttl(sqlite_url, ns):
    import time

    with BotWireStore(ns, url=sqlite_url, ttl=0.3) as store:
        store.mset([("short", 1)])
        with Memory(ns, url=sqlite_url) as memory:
            info = memory.info("short")
            assert info is not None and info.expires_at is not None
            assert info.expires_at - info.updated_at == pytest.approx(0.3, abs=0.01)
        time.sleep(0.4)
        assert store.mget(["short"]) == [None]
    for bad in (0, -1, "10", float("inf")):
        with pytest.raises(InvalidInput, match="ttl"):
            BotWireStore(ns, url=sqlite_url, ttl=bad)


def test_default_namespace_and_memory_argument(tmp_path, monkeypatch):
    monkeypatch.setenv("BOTWIRE_HOME", str(tmp_path))
    for name in ENGINE_ENV:
        monkeypatch.delenv(name, raising=False)
    with BotWireStore() as store:
        assert store.namespace == "langchain"
        store.mset([("k", "v")])
    with Memory("langchain") as memory:
        assert memory.get("k") == "v"
        store = BotWireByteStore(memory=memory)
        assert store.namespace == "langchain"
        store.close()  # the caller's Memory stays open
        assert memory.get("k") == "v"
        with pytest.raises(InvalidInput, match="not both"):
            BotWireStore("other", memory=memory)
    with pytest.raises(InvalidKey, match="namespace"):
        BotWireStore("a\x00b")


async def test_byte_store_format_and_bad_input(engine_url, ns):
    async with BotWireByteStore(ns, url=engine_url) as store:
        data = bytes(range(256)) * 3
        store.mset([("blob", data), ("view", memoryview(b"mv")), ("array", bytearray(b"ba"))])
        assert store.mget(["blob", "view", "array"]) == [data, b"mv", b"ba"]
        assert all(type(v) is bytes for v in store.mget(["blob", "view", "array"]))
        assert store.memory.get("blob") == base64.b64encode(data).decode()
        for bad in ("text", 1, None, [1]):
            with pytest.raises(UnsupportedValue, match="stores bytes"):
                await store.amset([("ok", b"1"), ("bad", bad)])
        assert await store.amget(["ok", "bad"]) == [None, None]
        store.memory.set("not-base64", "*** not base64 ***")
        store.memory.set("not-a-str", [1, 2])
        for key in ("not-base64", "not-a-str"):
            with pytest.raises(UnsupportedValue, match=f"key '{key}' .* does not hold base64"):
                store.mget([key])


def test_repr(http_sqlite_url, ns, monkeypatch):
    monkeypatch.delenv("BOTWIRE_API_KEY", raising=False)
    key = http_sqlite_url.split("//", 1)[1].split("@", 1)[0]
    with BotWireStore(ns, url=http_sqlite_url, ttl=60) as store:
        text = repr(store)
    assert key not in text
    assert text.startswith(f"BotWireStore({ns!r}, ttl=60.0, url='http://127.0.0.1:")


async def test_close_releases_the_engine(sqlite_url, ns):
    store = BotWireStore(ns, url=sqlite_url)
    store.mset([("k", 1)])
    store.close()
    with pytest.raises(StorageUnavailable, match="closed"):
        store.mget(["k"])
    async with BotWireByteStore(ns, url=sqlite_url) as blobs:
        await blobs.amset([("b", b"1")])
    with pytest.raises(StorageUnavailable, match="closed"):
        await blobs.amget(["b"])
