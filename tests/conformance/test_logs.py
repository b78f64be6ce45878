"""Append-only logs."""

from __future__ import annotations

import collections.abc
import dataclasses
import time

import pytest
from conformance_helpers import assert_same

import botwire
from botwire import InvalidInput, LogEntry, UnsupportedValue


@pytest.fixture
def log(memory):
    return memory.log("history")


def test_log_name(memory):
    assert memory.log("calls").name == "calls"


def test_append_returns_sequence_numbers(log):
    assert log.append("a") == 1
    assert log.append("b") == 2
    assert log.append("c") == 3
    assert type(log.append("d")) is int


def test_extend_returns_consecutive_numbers(log):
    log.append("first")
    assert log.extend(["a", "b", "c"]) == [2, 3, 4]
    assert log.append("z") == 5
    assert log.extend([]) == []
    assert log.extend(["only"]) == [6]
    assert [e.seq for e in log.read()] == [1, 2, 3, 4, 5, 6]


def test_extend_accepts_any_iterable(log):
    assert log.extend(x for x in ("a", "b")) == [1, 2]
    assert log.extend(("c",)) == [3]
    assert [e.value for e in log.read()] == ["a", "b", "c"]


def test_read_all_oldest_first(log):
    log.extend([{"turn": i} for i in range(10)])
    entries = log.read()
    assert [e.seq for e in entries] == list(range(1, 11))
    assert [e.value for e in entries] == [{"turn": i} for i in range(10)]
    assert isinstance(entries, list)
    assert all(isinstance(e, LogEntry) for e in entries)


def test_read_last(log):
    log.extend(list("abcdefghij"))
    assert [e.value for e in log.read(last=3)] == ["h", "i", "j"]
    assert [e.seq for e in log.read(last=3)] == [8, 9, 10]
    assert [e.value for e in log.read(last=1)] == ["j"]
    assert log.read(last=0) == []
    assert [e.value for e in log.read(last=10)] == list("abcdefghij")
    assert [e.value for e in log.read(last=1000)] == list("abcdefghij")


def test_read_after_and_limit(log):
    log.extend(list("abcdefghij"))
    assert [e.seq for e in log.read(after=7)] == [8, 9, 10]
    assert [e.seq for e in log.read(after=0)] == list(range(1, 11))
    assert [e.seq for e in log.read(after=2, limit=3)] == [3, 4, 5]
    assert [e.seq for e in log.read(limit=2)] == [1, 2]
    assert [e.seq for e in log.read(after=3, limit=None)] == list(range(4, 11))
    assert log.read(after=10) == []
    assert log.read(after=100) == []
    assert log.read(after=2, limit=0) == []


def test_paging_with_after(log):
    log.extend(list(range(95)))
    seen, after = [], 0
    while True:
        page = log.read(after=after, limit=20)
        if not page:
            break
        seen.extend(e.value for e in page)
        after = page[-1].seq
    assert seen == list(range(95))


def test_read_empty_and_missing_log(memory):
    log = memory.log("never-written")
    assert log.read() == []
    assert log.read(last=5) == []
    assert log.read(after=0, limit=5) == []
    assert log.count() == 0
    assert len(log) == 0
    assert list(log) == []


def test_last_and_after_together_raise(log):
    log.append(1)
    with pytest.raises(InvalidInput) as err:
        log.read(last=1, after=0)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"last": -1}, id="negative-last"),
        pytest.param({"limit": -1}, id="negative-limit"),
        pytest.param({"after": 0, "limit": -5}, id="negative-limit-with-after"),
        pytest.param({"last": "3"}, id="str-last"),
        pytest.param({"limit": 1.5}, id="float-limit"),
        pytest.param({"after": "0"}, id="str-after"),
    ],
)
def test_bad_read_arguments(log, kwargs):
    log.append(1)
    with pytest.raises(InvalidInput):
        log.read(**kwargs)


def test_count_and_len(log):
    assert log.count() == 0 and len(log) == 0
    log.extend([1, 2, 3])
    assert log.count() == 3 and len(log) == 3
    log.append(4)
    assert len(log) == 4


def test_clear_returns_count_and_numbers_are_never_reused(log):
    log.extend(["a", "b", "c"])
    assert log.clear() == 3
    assert log.count() == 0
    assert log.read() == []
    assert log.read(last=5) == []
    assert log.append("d") == 4
    assert log.extend(["e", "f"]) == [5, 6]
    assert [e.seq for e in log.read()] == [4, 5, 6]
    assert [e.value for e in log.read(last=2)] == ["e", "f"]
    assert log.count() == 3
    assert log.clear() == 3
    assert log.clear() == 0
    assert log.append("g") == 7


def test_clear_of_a_log_that_never_existed(memory):
    assert memory.log("nothing").clear() == 0
    assert memory.log("nothing").append(1) == 1


def test_clear_does_not_touch_keys_or_other_logs(memory):
    memory.set("k", 1)
    a, b = memory.log("a"), memory.log("b")
    a.extend([1, 2])
    b.extend([1, 2, 3])
    assert a.clear() == 2
    assert b.count() == 3
    assert memory.get("k") == 1


def test_entries_carry_timestamps(log):
    before = time.time()
    log.append("x")
    time.sleep(0.01)
    log.append("y")
    after = time.time()
    entries = log.read()
    for e in entries:
        assert type(e.ts) is float
        assert before - 1 <= e.ts <= after + 1
    assert entries[0].ts <= entries[1].ts


def test_log_entry_is_a_frozen_dataclass(log):
    log.append({"a": 1})
    entry = log.read()[0]
    assert dataclasses.is_dataclass(entry)
    assert {f.name for f in dataclasses.fields(LogEntry)} == {"seq", "value", "ts"}
    assert entry.seq == 1 and entry.value == {"a": 1}
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.seq = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, 2**70, -1.5, -0.0, "", "text", '{"x": 1}', [], {}, [1, "1", None],
     {"b": 1, "a": {"z": [True]}}, "a\x00b", "日本語 🎉"],
)  # fmt: skip
def test_any_json_value_as_entry(log, value):
    log.append(value)
    log.extend([value, value])
    for entry in log.read():
        assert_same(entry.value, value)
    for entry in log:
        assert_same(entry.value, value)


@pytest.mark.parametrize(
    "bad, error",
    [
        pytest.param({1, 2}, UnsupportedValue, id="set"),
        pytest.param(b"x", UnsupportedValue, id="bytes"),
        pytest.param((1,), UnsupportedValue, id="tuple"),
        pytest.param({1: "a"}, UnsupportedValue, id="int-dict-key"),
        pytest.param(object(), UnsupportedValue, id="object"),
        pytest.param(float("nan"), InvalidInput, id="nan"),
        pytest.param(float("inf"), InvalidInput, id="inf"),
        pytest.param("\ud800", InvalidInput, id="surrogate"),
    ],
)
def test_invalid_entry_stores_nothing(log, bad, error):
    log.append("before")
    with pytest.raises(error):
        log.append(bad)
    with pytest.raises(error):
        log.extend(["ok", bad, "ok too"])
    assert log.count() == 1
    assert [e.value for e in log.read()] == ["before"]
    # gap-free: the failed writes did not use up sequence numbers
    assert log.append("after") == 2


def test_iter_log_over_more_than_one_page(log):
    log.extend([{"i": i} for i in range(2500)])
    it = iter(log)
    assert isinstance(it, collections.abc.Iterator)
    entries = list(it)
    assert [e.seq for e in entries] == list(range(1, 2501))
    assert [e.value["i"] for e in entries] == list(range(2500))
    assert log.count() == 2500
    assert len(log.read()) == 2500
    assert [e.seq for e in log.read(last=3)] == [2498, 2499, 2500]
    assert [e.seq for e in log.read(last=1500)] == list(range(1001, 2501))
    assert [e.seq for e in log.read(after=0, limit=1500)] == list(range(1, 1501))
    assert [e.seq for e in log.read(after=1200, limit=1300)] == list(range(1201, 2501))
    assert [e.seq for e in log.read(after=1000)] == list(range(1001, 2501))


def test_logs_are_independent(memory, engine_url, ns):
    a, b = memory.log("a"), memory.log("b")
    assert a.append("a1") == 1
    assert b.append("b1") == 1
    assert a.append("a2") == 2
    with botwire.Memory(ns + "-2", url=engine_url) as other:
        assert other.log("a").append("other") == 1
        assert other.log("a").count() == 1
    assert [e.value for e in a.read()] == ["a1", "a2"]
    assert [e.value for e in b.read()] == ["b1"]


def test_log_objects_for_one_name_see_the_same_log(memory, engine_url, ns):
    memory.log("x").append(1)
    assert memory.log("x").append(2) == 2
    with botwire.Memory(ns, url=engine_url) as again:
        assert again.log("x").append(3) == 3
        assert [e.value for e in again.log("x").read()] == [1, 2, 3]


def test_log_and_key_with_the_same_name_are_separate(memory):
    memory.set("history", "a key")
    memory.log("history").append("an entry")
    assert memory.get("history") == "a key"
    assert memory.count() == 1
    memory.delete("history")
    assert memory.log("history").count() == 1
