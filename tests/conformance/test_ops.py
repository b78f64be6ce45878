"""The single-key surface: get / set / delete / exists / [] / del / count / clear / info."""

from __future__ import annotations

import dataclasses
import time

import pytest
from conformance_helpers import MISSING

import botwire
from botwire import KeyInfo, NotFound


def test_namespace_attribute(memory, ns):
    assert memory.namespace == ns


def test_set_get_overwrite(memory):
    assert memory.get("k") is None
    memory.set("k", "v1")
    assert memory.get("k") == "v1"
    memory.set("k", "v2")
    assert memory.get("k") == "v2"
    assert memory.count() == 1


def test_set_returns_an_int_version(memory):
    v = memory.set("k", 1)
    assert type(v) is int and v >= 1


def test_delete(memory):
    memory.set("k", 1)
    assert memory.delete("k") is True
    assert memory.get("k", MISSING) is MISSING
    assert memory.delete("k") is False
    assert memory.delete("never") is False
    assert memory.count() == 0


def test_exists_and_contains(memory):
    assert memory.exists("k") is False
    assert ("k" in memory) is False
    memory.set("k", False)
    assert memory.exists("k") is True
    assert ("k" in memory) is True
    memory.delete("k")
    assert "k" not in memory


def test_getitem_setitem_delitem(memory):
    with pytest.raises(NotFound) as err:
        memory["k"]
    assert isinstance(err.value, KeyError)
    memory["k"] = [1, 2]
    assert memory["k"] == [1, 2]
    assert memory.get("k") == [1, 2]
    memory["k"] = None
    assert memory["k"] is None
    del memory["k"]
    assert not memory.exists("k")
    with pytest.raises(NotFound):
        del memory["k"]
    with pytest.raises(KeyError):
        memory["k"]


def test_setitem_is_set(memory):
    memory["k"] = 1
    v1 = memory.info("k").version
    memory["k"] = 2
    assert memory.info("k").version > v1
    assert memory.info("k").expires_at is None


def test_not_found_is_catchable_as_key_error_and_botwire_error(memory):
    try:
        memory["nope"]
    except KeyError as exc:
        assert isinstance(exc, botwire.BotWireError)
    else:  # pragma: no cover
        pytest.fail("m[missing] did not raise")


def test_count_and_len(memory):
    assert memory.count() == 0
    assert len(memory) == 0
    for i in range(7):
        memory.set(f"k{i}", i)
    assert memory.count() == 7
    assert len(memory) == 7
    memory.set("k0", "again")
    assert len(memory) == 7
    memory.delete("k1")
    assert memory.count() == 6


def test_count_is_per_namespace(memory, engine_url, ns):
    memory.set("a", 1)
    with botwire.Memory(ns + "-other", url=engine_url) as other:
        other.set("a", 1)
        other.set("b", 1)
        assert other.count() == 2
    assert memory.count() == 1


def test_clear_deletes_keys_only(memory, engine_url, ns):
    for i in range(5):
        memory.set(f"k{i}", i)
    log = memory.log("history")
    log.extend(["a", "b"])
    with botwire.Memory(ns + "-other", url=engine_url) as other:
        other.set("k0", "untouched")
        assert memory.clear() == 5
        assert other.get("k0") == "untouched"
    assert memory.count() == 0
    assert list(memory.keys()) == []
    assert memory.get("k0", MISSING) is MISSING
    assert [e.value for e in log.read()] == ["a", "b"]
    assert memory.clear() == 0
    memory.set("k0", "after clear")
    assert memory.get("k0") == "after clear"


def test_info_missing_is_none(memory):
    assert memory.info("nope") is None


def test_info_fields(memory):
    before = time.time()
    v = memory.set("k", {"a": 1})
    after = time.time()
    info = memory.info("k")
    assert isinstance(info, KeyInfo)
    assert dataclasses.is_dataclass(info)
    assert info.key == "k"
    assert type(info.version) is int and info.version == v
    assert type(info.created_at) is float and type(info.updated_at) is float
    assert before - 1 <= info.created_at <= info.updated_at <= after + 1
    assert info.expires_at is None
    assert type(info.size) is int and info.size > 0


def test_info_is_frozen(memory):
    memory.set("k", 1)
    info = memory.info("k")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.version = 99  # type: ignore[misc]
    assert {f.name for f in dataclasses.fields(KeyInfo)} == {
        "key",
        "version",
        "created_at",
        "updated_at",
        "expires_at",
        "size",
    }


def test_info_timestamps_on_update(memory):
    memory.set("k", 1)
    first = memory.info("k")
    time.sleep(0.02)
    memory.set("k", 2)
    second = memory.info("k")
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert second.created_at <= second.updated_at
    assert second.version > first.version


def test_info_created_at_resets_after_delete(memory):
    memory.set("k", 1)
    first = memory.info("k")
    memory.delete("k")
    time.sleep(0.02)
    memory.set("k", 1)
    assert memory.info("k").created_at > first.created_at


def test_info_size_is_bytes_of_stored_json(memory):
    memory.set("small", "x")
    memory.set("big", "x" * 1000)
    memory.set("unicode", "€" * 1000)
    small, big, uni = memory.info("small"), memory.info("big"), memory.info("unicode")
    assert 0 < small.size < big.size
    assert big.size >= 1000
    assert uni.size >= 3000  # bytes, not characters
    memory.set("small", ["x" * 50])
    assert memory.info("small").size > small.size


def test_info_does_not_change_anything(memory):
    memory.set("k", 1, ttl=60)
    a = memory.info("k")
    memory.get("k")
    memory.exists("k")
    b = memory.info("k")
    assert a == b


def test_reads_do_not_bump_versions(memory):
    v = memory.set("k", 1)
    memory.get("k")
    memory.get_many(["k"])
    list(memory.items())
    memory.exists("k")
    memory.info("k")
    assert memory.info("k").version == v


def test_context_manager(engine_url, ns):
    with botwire.Memory(ns, url=engine_url) as m:
        assert isinstance(m, botwire.Memory)
        m.set("k", 1)
    with botwire.Memory(ns, url=engine_url) as m:
        assert m.get("k") == 1


def test_memories_on_one_url_share_the_engine_and_close_independently(engine_url, ns):
    a = botwire.Memory(ns, url=engine_url)
    b = botwire.Memory(ns, url=engine_url)
    a.set("k", 1)
    a.close()
    # b still holds the engine: closing a must not close it under b's feet
    assert b.get("k") == 1
    b.set("k", 2)
    b.close()
    c = botwire.Memory(ns, url=engine_url)  # every holder gone: a fresh engine opens
    try:
        assert c.get("k") == 2
    finally:
        c.close()


def test_close_is_idempotent(engine_url, ns):
    other = botwire.Memory(ns, url=engine_url)
    m = botwire.Memory(ns, url=engine_url)
    m.set("k", 1)
    m.close()
    m.close()  # a second close must not release someone else's hold
    try:
        assert other.get("k") == 1
    finally:
        other.close()
