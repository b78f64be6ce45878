"""The engine ops that export and import use: Logs, Floor and Restore, on every engine."""

from __future__ import annotations

import time

import pytest

from botwire import Memory, NamespaceNotEmpty
from botwire.engines import open_engine
from botwire.engines import base as ops
from botwire.engines.base import Entry, LogDump, Row


@pytest.fixture
def engine(engine_url):
    e = open_engine(engine_url)
    yield e
    e.close()


def _row(key: str, value: str, version: int = 3, expires_at: float | None = None) -> Row:
    return Row(key, value, version, 1000.25, 2000.5, expires_at, 0)


def _keys(memory: Memory) -> list[tuple]:
    return [
        (i.key, i.version, i.created_at, i.updated_at)
        for i in map(memory.info, memory.keys(include_internal=True))
    ]


def test_logs_lists_names_with_numbers_and_counts(memory, engine):
    memory.log("calls").extend([1, 2, 3])
    memory.log("notes").append("x")
    memory.log("notes").clear()
    memory.log("~replay").append("internal")
    found = engine.execute(ops.Logs(memory.namespace))
    assert found == [ops.LogInfo("calls", 3, 3), ops.LogInfo("notes", 1, 0)]
    with_internal = engine.execute(ops.Logs(memory.namespace, internal=True))
    assert [g.name for g in with_internal] == ["calls", "notes", "~replay"]
    assert engine.execute(ops.Logs(memory.namespace, after="calls", limit=1)) == [
        ops.LogInfo("notes", 1, 0)
    ]


def test_floor_is_the_highest_version_removed(memory, engine):
    assert engine.execute(ops.Floor(memory.namespace)) == 0
    memory.set("k", 1)
    v = memory.set("k", 2)
    memory.delete("k")
    assert engine.execute(ops.Floor(memory.namespace)) == v


def test_restore_writes_rows_exactly_as_given(memory, engine):
    ns = memory.namespace
    keys = (
        _row("a", '"x"', 7),
        _row("~fact/a", '{"key":"a"}', 2),
        _row("b", "[1,2]", 1, time.time() + 60),
    )
    logs = (LogDump("calls", 5, (Entry(4, '{"n":4}', 1500.5), Entry(5, '"five"', 1600.0))),)
    assert engine.execute(ops.Restore(ns, keys, logs, floor=9)) == "imported"
    assert memory.get("a") == "x" and memory.get("b") == [1, 2]
    info = memory.info("a")
    assert (info.version, info.created_at, info.updated_at) == (7, 1000.25, 2000.5)
    assert memory.info("b").expires_at == keys[2].expires_at
    assert [(e.seq, e.value, e.ts) for e in memory.log("calls").read()] == [
        (4, {"n": 4}, 1500.5),
        (5, "five", 1600.0),
    ]
    assert memory.log("calls").append("next") == 6  # numbering goes on after last_seq
    assert engine.execute(ops.Floor(ns)) == 9
    memory.delete("b")
    assert memory.set("b", "again") == 10  # above the restored floor
    assert memory.search("five")  # imported entries are searchable


def test_restore_is_idempotent_and_refuses_other_data(memory, engine):
    ns = memory.namespace
    op = ops.Restore(ns, (_row("a", '"x"'),), (), floor=0)
    assert engine.execute(op) == "imported"
    assert engine.execute(op) == "unchanged"
    other = op._replace(keys=(_row("a", '"y"'),))
    with pytest.raises(NamespaceNotEmpty) as err:
        engine.execute(other)
    assert err.value.namespace == ns and "--replace" in str(err.value)
    assert memory.get("a") == "x"  # nothing written
    assert engine.execute(other._replace(replace=True)) == "imported"
    assert memory.get("a") == "y"
    assert list(memory.keys()) == ["a"]


def test_restore_replace_keeps_versions_above_what_was_there(memory, engine):
    ns = memory.namespace
    for i in range(5):
        memory.set("old", i)
    high = memory.info("old").version
    op = ops.Restore(ns, (_row("a", '"x"', 1),), (), floor=0, replace=True)
    assert engine.execute(op) == "imported"
    assert memory.get("old") is None
    assert memory.set("old", "new") > high


def test_restore_skips_keys_already_expired(memory, engine):
    ns = memory.namespace
    op = ops.Restore(ns, (_row("gone", '"x"', 1, time.time() - 1), _row("kept", "1")), ())
    assert engine.execute(op) == "imported"
    assert list(memory.keys()) == ["kept"]
