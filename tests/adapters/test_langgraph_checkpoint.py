"""BotWireSaver: LangGraph checkpoints in botwire, over embedded engines and the server."""

from __future__ import annotations

from frameworks import need

need("langgraph", "langgraph")

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from frameworks import ENGINE_ENV, unique_ns  # noqa: E402
from langgraph.checkpoint.base import CheckpointTuple, empty_checkpoint  # noqa: E402
from langgraph.checkpoint.conformance import checkpointer_test, validate  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT  # noqa: E402

import botwire  # noqa: E402
from botwire import InvalidKey, Memory, ValueTooLarge  # noqa: E402
from botwire.adapters.langgraph import BotWireSaver  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def saver(url):
    with BotWireSaver(unique_ns("lgt"), url=url) as s:
        yield s


# -- LangGraph's conformance suite -------------------------------------------------------------


async def test_langgraph_checkpoint_conformance(url):
    @checkpointer_test(name="botwire")
    async def botwire_saver():
        async with BotWireSaver(unique_ns("lgt"), url=url) as s:  # fresh per capability
            yield s

    report = await validate(botwire_saver)
    if not report.passed_all_base():
        report.print_report()
    assert report.passed_all_base(), report.to_dict()
    assert report.passed_all(), report.to_dict()  # copy_thread too, the one extension we have
    assert report.results["copy_thread"].passed is True


# -- the sync methods, against InMemorySaver ---------------------------------------------------


def _shape(tup: CheckpointTuple | None) -> Any:
    if tup is None:
        return None
    conf = tup.config["configurable"]
    parent = tup.parent_config["configurable"]["checkpoint_id"] if tup.parent_config else None
    cp = tup.checkpoint
    return (
        (str(conf["thread_id"]), conf["checkpoint_ns"], conf["checkpoint_id"]),
        (cp["id"], cp["channel_values"], cp["channel_versions"], cp["versions_seen"]),
        tup.metadata,
        parent,
        tup.pending_writes,
    )


def _checkpoint(values: dict[str, Any], versions: dict[str, int]) -> dict[str, Any]:
    cp = empty_checkpoint()
    cp["channel_values"], cp["channel_versions"] = values, versions
    cp["versions_seen"] = {"node": dict(versions)}
    return cp


def _history() -> list[tuple[Any, ...]]:
    """Calls to replay on any saver: two threads, a child namespace, writes of every kind."""
    calls: list[tuple[Any, ...]] = []
    steps = [  # channel values, channel versions, versions new in this checkpoint
        ({"a": "x", "b": [1, 2]}, {"a": 1, "b": 1}, {"a": 1, "b": 1}),
        ({"a": "y", "b": [1, 2]}, {"a": 2, "b": 1}, {"a": 2}),  # b from the first one
        ({"a": "y"}, {"a": 2}, {}),  # b gone
        ({"a": "z"}, {"a": 3, "b": 2}, {"a": 3, "b": 2}),  # b new, without a value
    ]
    for thread in ("t1", "t2"):
        parent: str | None = None
        for step, (values, versions, new) in enumerate(steps):
            cp = _checkpoint(values, versions)
            conf = {"thread_id": thread, "checkpoint_ns": ""}
            if parent:
                conf["checkpoint_id"] = parent
            metadata = {"source": "loop" if step else "input", "step": step, "user": thread}
            calls.append(("put", {"configurable": conf}, cp, metadata, new))
            parent = cp["id"]
        at = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": parent}}
        calls += [
            ("put_writes", at, [("a", "w1"), ("b", {"n": 1})], "task-2", "~a"),
            ("put_writes", at, [("a", "again"), (ERROR, "boom")], "task-2", "~a"),  # a kept
            ("put_writes", at, [(ERROR, "boom 2"), (INTERRUPT, {"q": 1})], "task-1", "~z"),
        ]
    child = {"configurable": {"thread_id": "t1", "checkpoint_ns": "sub:1|x/y%"}}
    calls.append(("put", child, _checkpoint({"c": 3}, {"c": 1}), {"step": 0}, {"c": 1}))
    return calls


def test_sync_methods_answer_like_in_memory_saver(saver):
    ref, calls = InMemorySaver(), _history()
    for name, *args in calls:
        assert getattr(saver, name)(*args) == getattr(ref, name)(*args)
    ids = [call[2]["id"] for call in calls if call[0] == "put"]
    t1 = {"thread_id": "t1", "checkpoint_ns": ""}
    configs = [{"configurable": {"thread_id": t, "checkpoint_ns": "", "checkpoint_id": i}}
               for t in ("t1", "t2") for i in ids] + [
        {"configurable": {"thread_id": "t1"}},
        {"configurable": {"thread_id": "t2", "checkpoint_ns": ""}},
        {"configurable": {"thread_id": "t1", "checkpoint_ns": "sub:1|x/y%"}},
        {"configurable": {"thread_id": "nobody"}},
    ]
    for config in configs:
        assert _shape(saver.get_tuple(config)) == _shape(ref.get_tuple(config)), config
    listings: list[tuple[Any, dict[str, Any]]] = [
        ({"configurable": t1}, {}),
        ({"configurable": t1}, {"limit": 2}),
        ({"configurable": t1}, {"limit": 0}),
        ({"configurable": t1}, {"filter": {"step": 1}}),
        ({"configurable": t1}, {"filter": {"source": "loop", "user": "t1"}}),
        ({"configurable": t1}, {"filter": {"user": "t2"}}),
        ({"configurable": t1}, {"before": {"configurable": {**t1, "checkpoint_id": ids[2]}}}),
        ({"configurable": {**t1, "checkpoint_id": ids[1]}}, {}),
        ({"configurable": {"thread_id": "t1", "checkpoint_ns": "sub:1|x/y%"}}, {}),
        ({"configurable": {"thread_id": "nobody"}}, {}),
    ]
    for config, options in listings:
        ours = [_shape(t) for t in saver.list(config, **options)]
        assert ours == [_shape(t) for t in ref.list(config, **options)], (config, options)
    for config in (None, {"configurable": {"thread_id": "t1"}}):  # same set, other order
        ours = sorted(map(repr, map(_shape, saver.list(config))))
        assert ours == sorted(map(repr, map(_shape, ref.list(config)))) and ours
    saver.delete_thread("t1")
    ref.delete_thread("t1")
    assert [_shape(t) for t in saver.list(None)] == [_shape(t) for t in ref.list(None)]
    assert len(list(saver.list(None))) == 4


# -- storage layout, atomicity, bad input ------------------------------------------------------


def test_a_thread_is_one_namespace_laid_out_as_documented(saver, url):
    config = {"configurable": {"thread_id": "call/1", "checkpoint_ns": "sub:1|a/b"}}
    cp = _checkpoint({"msgs": ["hi"]}, {"msgs": 1})
    stored = saver.put(config, cp, {"step": 0}, {"msgs": 1})
    saver.put_writes(stored, [("msgs", "w")], "task/1")
    name = saver.thread_namespace("call/1")
    assert name == f"{saver.prefix}/call/1"
    with Memory(name, url=url) as raw:
        assert sorted(raw.keys()) == sorted([
            f"checkpoint/sub:1|a%2Fb/{cp['id']}",
            "blob/sub:1|a%2Fb/msgs/1",
            f"write/sub:1|a%2Fb/{cp['id']}/task%2F1/0",
            "latest/sub:1|a%2Fb",
        ])
        kind, data = raw.get("blob/sub:1|a%2Fb/msgs/1")
        assert isinstance(kind, str) and isinstance(data, str)  # [type, base64]
        assert raw.get("latest/sub:1|a%2Fb") == cp["id"]
    assert saver.get_tuple(stored).pending_writes == [("task/1", "msgs", "w")]
    saver.delete_thread("call/1")  # one forget: the namespace is gone
    assert name not in list(botwire.namespaces(saver.prefix + "/", url=url))


def test_a_checkpoint_too_large_stores_nothing(url, monkeypatch):
    monkeypatch.setenv("BOTWIRE_MAX_VALUE_BYTES", "2000")
    with BotWireSaver(unique_ns("lgt"), url=url) as saver:
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        first = saver.put(config, _checkpoint({"a": "small"}, {"a": 1}), {"step": 0}, {"a": 1})
        big = _checkpoint({"a": "small", "b": "x" * 5000}, {"a": 1, "b": 1})
        config["configurable"]["checkpoint_id"] = first["configurable"]["checkpoint_id"]
        with pytest.raises(ValueTooLarge):
            saver.put(config, big, {"step": 1}, {"b": 1})
        with Memory(saver.thread_namespace("t"), url=url) as raw:
            assert not [k for k in raw.keys() if big["id"] in k or k.startswith("blob//b/")]
        latest = saver.get_tuple({"configurable": {"thread_id": "t"}})
        assert latest.checkpoint["id"] == first["configurable"]["checkpoint_id"]


def test_a_thread_id_botwire_cannot_hold_raises_and_stores_nothing(saver, url):
    for thread_id in ("bad\x00id", "x" * 600):
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        with pytest.raises(InvalidKey):
            saver.put(config, _checkpoint({}, {}), {"step": 0}, {})
    assert list(botwire.namespaces(saver.prefix + "/", url=url)) == []


# -- graphs that resume ------------------------------------------------------------------------

GRAPH = '''
import operator
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class Call(TypedDict):
    turns: Annotated[list[str], operator.add]


def ask_name(state: Call) -> dict:
    return {"turns": [f"hello {interrupt('name?')}"]}


def goodbye(state: Call) -> dict:
    return {"turns": ["bye"]}


builder = StateGraph(Call)
builder.add_node("ask_name", ask_name)
builder.add_node("goodbye", goodbye)
builder.add_edge(START, "ask_name")
builder.add_edge("ask_name", "goodbye")
builder.add_edge("goodbye", END)
'''

RESUME = '''
import json, sys
from langgraph.types import Command
from botwire.adapters.langgraph import BotWireSaver

prefix, url, thread = sys.argv[1:4]
with BotWireSaver(prefix, url=url) as saver:
    graph = builder.compile(checkpointer=saver)
    print(json.dumps(graph.invoke(Command(resume="Ada"), {"configurable": {"thread_id": thread}})))
'''


def _builder() -> Any:
    scope: dict[str, Any] = {}
    exec(compile(GRAPH, "graph", "exec", dont_inherit=True), scope)
    return scope["builder"]


@pytest.mark.parametrize("engine", ["sqlite_url", "http_sqlite_url"])
def test_a_thread_resumes_in_another_process(request, monkeypatch, engine):
    for name in ENGINE_ENV:
        monkeypatch.delenv(name, raising=False)
    url = request.getfixturevalue(engine)
    prefix, config = unique_ns("lgt"), {"configurable": {"thread_id": f"call-{uuid.uuid4()}"}}
    with BotWireSaver(prefix, url=url) as saver:
        paused = _builder().compile(checkpointer=saver).invoke({"turns": ["ring"]}, config)
    assert paused["turns"] == ["ring"] and "__interrupt__" in paused
    env = {k: v for k, v in os.environ.items() if k not in ENGINE_ENV}
    env["PYTHONPATH"] = str(ROOT / "src")
    thread = config["configurable"]["thread_id"]
    child = subprocess.run(
        [sys.executable, "-c", GRAPH + RESUME, prefix, url, thread],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.splitlines()[-1]) == {"turns": ["ring", "hello Ada", "bye"]}
    with BotWireSaver(prefix, url=url) as saver:  # and a third saver sees the finished thread
        state = _builder().compile(checkpointer=saver).get_state(config)
        assert state.values == {"turns": ["ring", "hello Ada", "bye"]} and state.next == ()
        assert len(list(saver.list(config))) >= 4


async def test_an_async_graph_resumes_with_a_new_saver(url):
    from langgraph.types import Command

    prefix, config = unique_ns("lgt"), {"configurable": {"thread_id": "call-1"}}
    async with BotWireSaver(prefix, url=url) as saver:
        paused = await _builder().compile(checkpointer=saver).ainvoke({"turns": ["ring"]}, config)
    assert "__interrupt__" in paused
    async with BotWireSaver(prefix, url=url) as saver:
        saver._io._call = None  # async all the way: the sync path is unused
        graph = _builder().compile(checkpointer=saver)
        assert (await graph.aget_state(config)).next == ("ask_name",)
        done = await graph.ainvoke(Command(resume="Grace"), config)
        assert done["turns"] == ["ring", "hello Grace", "bye"]
        history = [s async for s in graph.aget_state_history(config)]
        assert history[0].values == done and len(history) >= 4
        await saver.adelete_thread("call-1")
        assert (await graph.aget_state(config)).values == {}
