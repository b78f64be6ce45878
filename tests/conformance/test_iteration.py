"""keys() / items(): every key, code-point order, prefix filtering, paged underneath."""

from __future__ import annotations

import collections.abc

import pytest
from conformance_helpers import assert_same

import botwire

MANY = 2500  # more than one page of any sensible page size


def test_keys_returns_an_iterator_of_str(memory):
    memory.set("a", 1)
    it = memory.keys()
    assert isinstance(it, collections.abc.Iterator)
    assert next(it) == "a"
    with pytest.raises(StopIteration):
        next(it)


def test_empty_namespace(memory):
    assert list(memory.keys()) == []
    assert list(memory.items()) == []
    assert list(memory.keys(prefix="x")) == []


def test_keys_beyond_one_page_all_in_order(memory):
    data = {f"key:{i:05d}": i for i in range(MANY)}
    memory.set_many(data)
    keys = list(memory.keys())
    assert len(keys) == MANY
    assert keys == sorted(data)
    assert len(set(keys)) == MANY


def test_items_beyond_one_page_all_in_order(memory):
    data = {f"item/{(i * 7919) % MANY:05d}": {"i": i} for i in range(MANY)}
    memory.set_many(data)
    items = list(memory.items())
    assert [k for k, _ in items] == sorted(data)
    assert dict(items) == data


@pytest.mark.parametrize("n", [999, 1000, 1001, 2000])
def test_keys_and_items_at_page_boundaries(memory, n):
    data = {f"{i:05d}": i for i in range(n)}
    memory.set_many(data)
    assert list(memory.keys()) == list(data)
    assert list(memory.items()) == list(data.items())
    assert list(memory.keys(prefix="0")) == list(data)


def test_items_values_are_exact(memory):
    memory.set_many({"a": 1, "b": 1.0, "c": True, "d": "1", "e": None, "f": {"z": 1, "a": 0}})
    items = list(memory.items())
    expected = [("a", 1), ("b", 1.0), ("c", True), ("d", "1"), ("e", None), ("f", {"z": 1, "a": 0})]
    assert [k for k, _ in items] == [k for k, _ in expected]
    for (_, got), (_, want) in zip(items, expected, strict=True):
        assert_same(got, want)


def test_prefix_beyond_one_page(memory):
    memory.set_many({f"a:{i:05d}": i for i in range(MANY)})
    memory.set_many({f"b:{i:05d}": i for i in range(50)})
    memory.set_many({f"a{i}": i for i in range(10)})
    assert list(memory.keys(prefix="a:")) == [f"a:{i:05d}" for i in range(MANY)]
    assert list(memory.keys(prefix="b:")) == [f"b:{i:05d}" for i in range(50)]
    assert [k for k, _ in memory.items(prefix="a:001")] == [f"a:{i:05d}" for i in range(100, 200)]
    assert [k for k, _ in memory.items(prefix="a:0001")] == [f"a:{i:05d}" for i in range(10, 20)]
    assert len(list(memory.keys(prefix="a"))) == MANY + 10


def test_code_point_order(memory):
    keys = [
        "a",
        "B",
        "_",
        "~",
        " ",
        "aa",
        "a b",
        "ab",
        "é",
        "e",
        "z",
        "Z",
        "10",
        "9",
        "ÿ",
        "ā",
        "\u00a0",
        "\u2603",
        "\ue000",
        "\uffff",
        "\U0001f600",
        "\U0010ffff",
        "\x01",
        "\x7f",
    ]
    memory.set_many({k: i for i, k in enumerate(keys)})
    assert list(memory.keys(include_internal=True)) == sorted(keys)
    assert [k for k, _ in memory.items(include_internal=True)] == sorted(keys)


def test_astral_characters_sort_after_bmp_private_use(memory):
    # UTF-16 order would put U+1F600 before U+E000; code-point order puts it after
    memory.set_many({"\U0001f600": 1, "\ue000": 2, "\uffff": 3})
    assert list(memory.keys()) == ["\ue000", "\uffff", "\U0001f600"]


@pytest.mark.parametrize(
    "prefix, expected",
    [
        pytest.param("a_", ["a_", "a_x"], id="underscore-is-not-a-wildcard"),
        pytest.param("a%", ["a%", "a%x"], id="percent-is-not-a-wildcard"),
        pytest.param("a\\", ["a\\", "a\\x"], id="backslash"),
        pytest.param("a[", ["a["], id="bracket"),
        pytest.param("a*", ["a*"], id="star"),
        pytest.param("A", ["A"], id="case-sensitive"),
        pytest.param("é", ["é", "éa"], id="unicode"),
        pytest.param("e", ["e"], id="no-accent-folding"),
        pytest.param("🎉", ["🎉", "🎉🎉"], id="emoji"),
        pytest.param("\uffff", ["\uffff", "\uffffz"], id="max-bmp"),
        pytest.param("\U0010ffff", ["\U0010ffff", "\U0010ffff\U0010ffff"], id="max-code-point"),
        pytest.param("a\U0010ffff", ["a\U0010ffff"], id="ends-with-max-code-point"),
        pytest.param("'", ["'"], id="quote"),
        pytest.param("ab", ["ab", "abc"], id="plain"),
        pytest.param("abcd", [], id="longer-than-any"),
        pytest.param("", None, id="empty-means-all"),
    ],
)
def test_prefix_filtering(memory, prefix, expected):
    keys = [
        "a_", "a_x", "ab", "abc", "aXb", "a%", "a%x", "aZ", "a\\", "a\\x", "a[", "a*", "a",
        "A", "é", "éa", "e", "🎉", "🎉🎉", "\uffff", "\uffffz", "\U0010ffff",
        "\U0010ffff\U0010ffff", "a\U0010ffff", "'", "b",
    ]  # fmt: skip
    memory.set_many({k: k for k in keys})
    if expected is None:
        expected = sorted(keys)
    assert list(memory.keys(prefix=prefix)) == expected
    assert list(memory.items(prefix=prefix)) == [(k, k) for k in expected]


def test_prefix_is_positional_argument(memory):
    memory.set_many({"x1": 1, "y1": 2})
    assert list(memory.keys("x")) == ["x1"]
    assert list(memory.items("y")) == [("y1", 2)]


def test_keys_are_scoped_to_the_namespace(memory, engine_url, ns):
    memory.set("mine", 1)
    with botwire.Memory(ns + "-neighbour", url=engine_url) as other:
        other.set("theirs", 1)
        other.set("mine2", 1)
    with botwire.Memory(ns[:-1], url=engine_url) as other:
        other.set("prefix-ns", 1)
    assert list(memory.keys()) == ["mine"]
    assert list(memory.items()) == [("mine", 1)]


def test_iteration_sees_later_pages_after_concurrent_deletes(memory):
    # paging must continue after the last key seen, not at an offset
    data = {f"k{i:05d}": i for i in range(MANY)}
    memory.set_many(data)
    seen = []
    for i, key in enumerate(memory.keys()):
        seen.append(key)
        if i == 10:
            for j in range(11):  # delete everything already seen
                memory.delete(f"k{j:05d}")
    assert seen == sorted(data)


@pytest.mark.parametrize("limit", [0, 1, 3, 999, 1000, 1001, 1500])
def test_limit_gives_the_first_keys(memory, limit):
    data = {f"{i:05d}": i for i in range(1200)}
    memory.set_many(data)
    assert list(memory.keys(limit=limit)) == list(data)[:limit]
    assert list(memory.items(limit=limit)) == list(data.items())[:limit]
    assert list(memory.keys("001", limit=limit)) == [k for k in data if k.startswith("001")][:limit]


async def test_limit_async(amemory):
    await amemory.set_many({"a": 1, "b": 2, "c": 3})
    assert [k async for k in amemory.keys(limit=2)] == ["a", "b"]
    assert [kv async for kv in amemory.items(limit=1)] == [("a", 1)]
    assert [k async for k in amemory.keys(limit=0)] == []
    assert [k async for k in amemory.keys(limit=None)] == ["a", "b", "c"]


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_bad_limit_is_refused(memory, bad):
    with pytest.raises(botwire.InvalidInput):
        memory.keys(limit=bad)
    with pytest.raises(botwire.InvalidInput):
        memory.items(limit=bad)
