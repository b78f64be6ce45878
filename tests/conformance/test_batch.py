"""get_many / set_many: batch reads leave out missing keys; batch writes are all or nothing."""

from __future__ import annotations

import time

import pytest
from conformance_helpers import MISSING, assert_same

from botwire import InvalidInput, InvalidKey, UnsupportedValue


def test_get_many_leaves_out_missing_keys(memory):
    memory.set("a", 1)
    memory.set("b", None)
    memory.set("c", [3])
    got = memory.get_many(["c", "missing", "a", "b"])
    assert got == {"c": [3], "a": 1, "b": None}
    assert "missing" not in got


def test_get_many_empty_and_all_missing(memory):
    assert memory.get_many([]) == {}
    assert memory.get_many(["x", "y"]) == {}


def test_get_many_accepts_any_iterable_and_duplicates(memory):
    memory.set("a", 1)
    memory.set("b", 2)
    assert memory.get_many(("a", "b")) == {"a": 1, "b": 2}
    assert memory.get_many(k for k in ["b"]) == {"b": 2}
    assert memory.get_many(["a", "a", "b"]) == {"a": 1, "b": 2}


def test_get_many_many_keys(memory):
    data = {f"key-{i:05d}": i for i in range(1500)}
    memory.set_many(data)
    wanted = list(data) + [f"absent-{i}" for i in range(300)]
    got = memory.get_many(wanted)
    assert got == data


def test_get_many_values_are_exact(memory):
    memory.set_many({"i": 1, "s": "1", "b": True, "f": 1.0, "n": None})
    got = memory.get_many(["i", "s", "b", "f", "n"])
    for k, v in {"i": 1, "s": "1", "b": True, "f": 1.0, "n": None}.items():
        assert_same(got[k], v)


def test_set_many_returns_versions(memory):
    versions = memory.set_many({"a": 1, "b": 2, "c": 3})
    assert set(versions) == {"a", "b", "c"}
    for k, v in versions.items():
        assert type(v) is int
        assert memory.info(k).version == v
    again = memory.set_many({"a": 10})
    assert again["a"] > versions["a"]
    assert memory.get_many(["a", "b", "c"]) == {"a": 10, "b": 2, "c": 3}


def test_set_many_empty(memory):
    assert memory.set_many({}) == {}
    assert memory.count() == 0


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"x"}, id="set"),
        pytest.param(b"raw", id="bytes"),
        pytest.param(float("nan"), id="nan"),
        pytest.param({1: 2}, id="int-dict-key"),
    ],
)
def test_set_many_all_or_nothing(memory, bad):
    memory.set("existing", "old")
    v = memory.info("existing").version
    batch = {f"new{i}": i for i in range(50)}
    batch["existing"] = "new"
    batch["zzz-bad"] = bad
    batch["zzz-after"] = "after the bad one"
    with pytest.raises((UnsupportedValue, InvalidInput)):
        memory.set_many(batch)
    assert memory.count() == 1
    assert memory.get("existing") == "old"
    assert memory.info("existing").version == v
    assert memory.get_many(list(batch)) == {"existing": "old"}


def test_set_many_bad_key_stores_nothing(memory):
    with pytest.raises(InvalidKey):
        memory.set_many({"good": 1, "": 2})
    with pytest.raises(InvalidKey):
        memory.set_many({"good": 1, "k" * 513: 2})
    assert memory.count() == 0


def test_set_many_ttl_applies_to_all(memory):
    memory.set("keep", "no ttl")
    before = time.time()
    memory.set_many({"a": 1, "b": 2, "c": 3}, ttl=0.3)
    for k in "abc":
        info = memory.info(k)
        assert info.expires_at is not None
        assert before + 0.3 - 1 <= info.expires_at <= time.time() + 0.3 + 1
    assert memory.count() == 4
    time.sleep(0.45)
    assert memory.get_many(["a", "b", "c", "keep"]) == {"keep": "no ttl"}
    assert memory.count() == 1


def test_set_many_without_ttl_clears_earlier_ttls(memory):
    memory.set("a", 1, ttl=0.3)
    memory.set_many({"a": 2, "b": 3})
    assert memory.info("a").expires_at is None
    time.sleep(0.4)
    assert memory.get_many(["a", "b"]) == {"a": 2, "b": 3}


def test_set_many_bad_ttl_stores_nothing(memory):
    for ttl in (0, -1, "1", True, float("nan")):
        with pytest.raises(InvalidInput):
            memory.set_many({"a": 1, "b": 2}, ttl=ttl)
    assert memory.count() == 0


def test_set_many_large_batch(memory):
    data = {f"k{i:04d}": {"i": i, "s": "x" * (i % 50)} for i in range(2000)}
    versions = memory.set_many(data)
    assert len(versions) == 2000
    assert memory.count() == 2000
    assert memory.get_many(list(data)) == data


def test_set_many_accepts_a_mapping_and_keeps_value_order(memory):
    memory.set_many({"k": {"z": 1, "a": 2}})
    assert list(memory.get("k")) == ["z", "a"]
    assert memory.get("k2", MISSING) is MISSING
