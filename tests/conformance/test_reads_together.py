"""Reads answered together (``Batch``): the call-start reads in one op, on every engine."""

from __future__ import annotations

import pytest

from botwire.engines import base as ops


def _fill(memory) -> None:
    memory.set_many({"name": "Ana", "pizza": "margherita", "~call/x": "claim"})
    memory.log("calls").extend([{"n": i} for i in range(5)])
    memory.log("notes").append("allergic to peanuts")


def test_reads_together_answer_as_each_read_alone(memory):
    _fill(memory)
    calls, notes, empty = memory.log("calls"), memory.log("notes"), memory.log("none")
    together = memory._together(
        memory._items_page(200), calls._read_last(3), notes._read_last(20), empty._read_last(5)
    )
    assert together == [
        list(memory.items(limit=200)),
        calls.read(last=3),
        notes.read(last=20),
        [],
    ]
    assert together[0] == [("name", "Ana"), ("pizza", "margherita")]  # no internal keys
    assert [e.value for e in together[1]] == [{"n": 2}, {"n": 3}, {"n": 4}]


def test_any_reads_together(memory):
    """Reads PostgreSQL does not join into one statement are answered one after another."""
    _fill(memory)
    ns = memory.namespace
    got = memory.engine.execute(
        ops.Batch((ops.Get(ns, ("name",)), ops.Count(ns), ops.Read(ns, "calls", after=3, limit=1)))
    )
    assert got[0] == ['"Ana"'] and got[1] == 2
    assert [(e.seq, e.value) for e in got[2]] == [(4, '{"n":3}')]
    assert memory.engine.execute(ops.Batch(())) == []


async def test_reads_together_async(amemory):
    await amemory.set("k", 1)
    await amemory.log("l").append("e")
    items, entries = await amemory._together(
        amemory._items_page(10), amemory.log("l")._read_last(1)
    )
    assert items == [("k", 1)]
    assert [e.value for e in entries] == ["e"]


def test_a_batch_holds_reads_only_and_writes_nothing(memory):
    put = ops.Put(memory.namespace, (("k", '"v"'),), None, None)
    with pytest.raises(TypeError, match="reads only, not Put"):
        memory.engine.execute(ops.Batch((ops.Get(memory.namespace, ("k",)), put)))
    assert memory.get("k") is None
    search = ops.Search(memory.namespace, ("v",), 10)
    with pytest.raises(TypeError, match="reads only, not Search"):
        memory.engine.execute(ops.Batch((search,)))


def test_the_reads_a_batch_may_hold_are_the_ops_that_only_read():
    from botwire.engines import sql

    reads = {t for t, (_, mode) in sql._HANDLERS.items() if mode == sql.READ}
    assert set(ops.READS) == reads - {ops.Batch, ops.Search}
