"""BotWireStore: LangGraph's BaseStore in botwire, checked against LangGraph's InMemoryStore."""

from __future__ import annotations

from frameworks import need

need("langgraph", "langgraph")

import datetime  # noqa: E402
import importlib  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from frameworks import ENGINE_ENV, unique_ns  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from langchain_core.runnables import RunnableConfig  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.store.base import (  # noqa: E402
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    PutOp,
    SearchItem,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore  # noqa: E402
from typing_extensions import TypedDict  # noqa: E402

import botwire  # noqa: E402
from botwire import InvalidInput, InvalidKey, Memory, MissingDependency  # noqa: E402
from botwire.adapters.langgraph import (  # noqa: E402
    BotWireStore,
    namespace_labels,
    namespace_name,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "langgraph.md"


@pytest.fixture
def store(url):
    with BotWireStore(unique_ns("lg"), url=url) as s:
        yield s


@pytest.fixture
async def astore(url):
    async with BotWireStore(unique_ns("lg"), url=url) as s:  # aclose: async resources too
        yield s


# -- the same operations on InMemoryStore and on BotWireStore ----------------------------------


def _row(item: Item | None) -> tuple | None:
    return None if item is None else (item.namespace, item.key, item.value)


def _prune(ref: InMemoryStore) -> None:
    """Drop namespaces with no items: InMemoryStore keeps listing those (botwire does not)."""
    for ns in [ns for ns, items in ref._data.items() if not items]:
        del ref._data[ns]


def apply(ours: BaseStore, ref: InMemoryStore, op: tuple) -> tuple[Any, Any]:
    """Run one operation on both stores; the two answers, shaped to compare."""
    kind, *args = op
    if kind == "put":
        ns, key, value = args
        return ours.put(ns, key, value), ref.put(ns, key, value)
    if kind == "delete":
        return ours.delete(*args), ref.delete(*args)
    if kind == "get":
        return _row(ours.get(*args)), _row(ref.get(*args))
    if kind == "search":
        prefix, filter, limit, offset = args
        got = [_row(i) for i in ours.search(prefix, filter=filter, limit=limit, offset=offset)]
        every = [_row(i) for i in ref.search(prefix, filter=filter, limit=10**6)]
        return got, sorted(every, key=lambda r: (r[0], r[1]))[offset : offset + limit]
    prefix, suffix, max_depth, limit, offset = args
    _prune(ref)
    options = dict(prefix=prefix, suffix=suffix, max_depth=max_depth, limit=limit, offset=offset)
    return ours.list_namespaces(**options), ref.list_namespaces(**options)


LABELS = ["a", "b", "a/b", "%", "%2F", "é", "a-b", "x y", "ab"]
KEYS = ["k", "K", "k/1", "ü", "%"]

labels = st.sampled_from(LABELS)
namespaces = st.lists(labels, min_size=1, max_size=3).map(tuple)
common = st.sampled_from(LABELS[:3])  # few, so that operations meet the same namespaces
near = st.lists(common, min_size=1, max_size=2).map(tuple)
values = st.fixed_dictionaries(
    {"n": st.integers(0, 2), "s": st.sampled_from(["x", "y"])},
    optional={
        "tags": st.lists(st.sampled_from(["p", "q"]), max_size=2),
        "meta": st.fixed_dictionaries(
            {"k": st.sampled_from(["v", "w"])}, optional={"z": st.integers(0, 1)}
        ),
    },
)
comparisons = st.dictionaries(
    st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]), st.integers(0, 2),
    min_size=1, max_size=2,
)
filters = st.one_of(
    st.none(),
    st.fixed_dictionaries({"n": st.integers(0, 2) | comparisons}),
    st.fixed_dictionaries(
        {},
        optional={
            "n": comparisons,
            "s": st.sampled_from(["x", "y"]) | st.fixed_dictionaries({"$ne": st.just("x")}),
            "meta": st.fixed_dictionaries({"k": st.sampled_from(["v", "w"])}),
            "tags": st.lists(st.sampled_from(["p", "q"]), max_size=2),
        },
    ),
)
paths = st.none() | st.lists(labels | st.just("*"), min_size=1, max_size=2).map(tuple)
ops = st.one_of(
    st.tuples(st.just("put"), namespaces, st.sampled_from(KEYS), values),
    st.tuples(st.just("put"), near, st.sampled_from(KEYS), values),
    st.tuples(st.just("put"), near, st.sampled_from(KEYS), values),
    st.tuples(st.just("delete"), near, st.sampled_from(KEYS)),
    st.tuples(st.just("get"), near | namespaces, st.sampled_from(KEYS)),
    st.tuples(
        st.just("search"), st.lists(common, max_size=1).map(tuple), filters,
        st.sampled_from([1, 2, 10]), st.integers(0, 2),
    ),
    st.tuples(
        st.just("list"), paths, paths, st.sampled_from([None, 1, 2]),
        st.sampled_from([1, 3, 100]), st.integers(0, 2),
    ),
)


# After each random sequence: every filter form, and listings, over whatever it left behind.
FILTERS = [None, {"n": 1}, {"s": "y"}, {"s": {"$ne": "x"}}, {"s": {"$eq": "x"}},
           {"meta": {"k": "v"}}, {"meta": {"k": "v", "z": 1}}, {"meta": {"z": 0}},
           {"tags": ["p"]}, {"tags": []}, {"tags": ["q", "p"]}, {"n": 1, "s": "x"},
           {"n": {"$gte": 1, "$lt": 2}}, {"n": {"$ne": 1}}, {"missing": None}]
FILTERS += [{"n": {op: x}} for op in ("$gt", "$gte", "$lt", "$lte", "$eq") for x in (0, 1, 2)]
LISTINGS = [(None, None, None), (("a",), None, None), (None, ("a",), None),
            (("*", "a"), None, None), (None, ("*", "a/b"), None), (None, None, 1),
            (("a",), ("%",), 2), (("a/b", "*"), None, 1)]


EXAMPLES = {"sqlite_url": 80, "postgres_url": 30, "http_sqlite_url": 12}  # ~ the same time


def test_same_answers_as_in_memory_store(store, url, request):  # store: keeps the engine open
    @settings(max_examples=EXAMPLES[request.node.callspec.params["url"]], deadline=None)
    @given(sequence=st.lists(ops, min_size=4, max_size=24))
    def check(sequence: list[tuple]) -> None:
        ref = InMemoryStore()
        with BotWireStore(unique_ns("lg"), url=url) as ours:  # a fresh prefix per example
            for op in sequence:
                got, expected = apply(ours, ref, op)
                assert got == expected, op
            battery = [("search", (), f, 10**6, 0) for f in FILTERS]
            battery += [("search", ("a",), None, 10**6, 0)]
            battery += [("list", p, s, depth, 100, 0) for p, s, depth in LISTINGS]
            for op in battery:
                got, expected = apply(ours, ref, op)
                assert got == expected, op

    check()


TABLE: list[tuple] = [
    ("put", ("users", "1"), "prefs", {"theme": "dark", "n": 3, "meta": {"lang": "en", "v": 1}}),
    ("put", ("users", "1"), "name", {"first": "Ada", "n": 7, "tags": ["a", "b"]}),
    ("put", ("users", "2"), "prefs", {"theme": "light", "n": 5, "meta": {"lang": "fr"}}),
    ("put", ("users", "2", "memories"), "m1", {"text": "likes tea", "n": 1.5}),
    ("put", ("docs", "a/b", "%"), "d", {"n": "4", "theme": None}),
    ("put", ("users", "1"), "prefs", {"theme": "blue", "n": 4, "meta": {"lang": "en", "v": 2}}),
    ("get", ("users", "1"), "prefs"),
    ("get", ("users", "9"), "prefs"),
    ("search", ("users",), None, 10, 0),
    ("search", (), None, 2, 1),
    ("search", ("users",), {"theme": "light"}, 10, 0),
    ("search", (), {"n": {"$gt": 3}}, 10, 0),
    ("search", (), {"n": {"$gte": 4, "$lt": 7}}, 10, 0),
    ("search", (), {"n": {"$lte": 1.5}}, 10, 0),
    ("search", (), {"n": {"$gt": 4}}, 10, 0),
    ("search", (), {"n": {"$lt": 5}}, 10, 0),
    ("search", (), {"n": {"$gte": 5}}, 10, 0),
    ("search", (), {"n": {"$lte": 4}}, 10, 0),
    ("search", (), {"n": {"$ne": 7}}, 10, 0),
    ("search", (), {"n": {"$eq": 4}}, 10, 0),
    ("search", (), {"theme": {"$ne": "dark"}}, 10, 0),
    ("search", (), {"meta": {"lang": "en"}}, 10, 0),
    ("search", (), {"meta": {"lang": "en", "v": 2}}, 10, 0),
    ("search", (), {"tags": ["a", "b"]}, 10, 0),
    ("search", (), {"tags": ["a"]}, 10, 0),
    ("search", (), {"theme": None}, 10, 0),
    ("search", (), {"missing": None}, 10, 0),
    ("search", ("docs", "a/b"), None, 10, 0),
    ("search", ("docs", "a"), None, 10, 0),
    ("list", None, None, None, 100, 0),
    ("list", ("users",), None, None, 100, 0),
    ("list", ("users", "*"), None, None, 100, 0),
    ("list", None, ("memories",), None, 100, 0),
    ("list", None, ("*", "memories"), None, 100, 0),
    ("list", ("*",), ("1",), None, 100, 0),
    ("list", None, None, 1, 100, 0),
    ("list", ("users",), None, 2, 100, 0),
    ("list", None, None, None, 2, 1),
    ("list", ("docs", "a/b"), None, None, 100, 0),
    ("delete", ("users", "2", "memories"), "m1"),
    ("list", None, None, None, 100, 0),
    ("search", ("users",), None, 10, 0),
]


def test_table_of_operations(store):
    ref = InMemoryStore()
    for op in TABLE:
        got, expected = apply(store, ref, op)
        assert got == expected, op


async def test_async_methods_answer_like_in_memory_store(astore, monkeypatch):
    monkeypatch.setattr(astore._io, "_call", None)  # async all the way: the sync path is unused
    ref = InMemoryStore()
    for op in TABLE:
        kind, *args = op
        if kind == "put":
            await astore.aput(*args)
            await ref.aput(*args)
        elif kind == "delete":
            await astore.adelete(*args)
            await ref.adelete(*args)
        elif kind == "get":
            assert _row(await astore.aget(*args)) == _row(await ref.aget(*args))
        elif kind == "search":
            prefix, filter, limit, offset = args
            got = await astore.asearch(prefix, filter=filter, limit=limit, offset=offset)
            every = await ref.asearch(prefix, filter=filter, limit=10**6)
            want = sorted(map(_row, every), key=lambda r: (r[0], r[1]))[offset : offset + limit]
            assert [_row(i) for i in got] == want, op
        else:
            prefix, suffix, max_depth, limit, offset = args
            _prune(ref)
            options = dict(prefix=prefix, suffix=suffix, max_depth=max_depth, limit=limit,
                           offset=offset)
            got_ns = await astore.alist_namespaces(**options)
            assert got_ns == await ref.alist_namespaces(**options), op


def test_batch_reads_see_the_store_before_its_writes(store):
    ref = InMemoryStore()
    for s in (store, ref):
        s.put(("a",), "k", {"v": 1})
    ops = [
        PutOp(("a",), "k", {"v": 2}),
        GetOp(("a",), "k"),
        PutOp(("a",), "k", {"v": 3}),
        SearchOp(("a",)),
        PutOp(("a",), "gone", None),
        PutOp(("b",), "new", {"v": 4}),
    ]
    ours, theirs = store.batch(ops), ref.batch(ops)
    assert [_row(r) if not isinstance(r, list) else list(map(_row, r)) for r in ours] == [
        _row(r) if not isinstance(r, list) else list(map(_row, r)) for r in theirs
    ]
    assert _row(store.get(("a",), "k")) == (("a",), "k", {"v": 3})  # the last put wins
    assert _row(store.get(("b",), "new")) == (("b",), "new", {"v": 4})


# -- items -------------------------------------------------------------------------------------


def test_items_carry_aware_times_and_keep_created_at(store):
    store.put(("u",), "k", {"v": 1})
    first = store.get(("u",), "k")
    assert isinstance(first, Item) and not isinstance(first, SearchItem)
    assert first.created_at.tzinfo is not None and first.created_at == first.updated_at
    assert abs(first.created_at - datetime.datetime.now(datetime.timezone.utc)).total_seconds() < 60
    time.sleep(0.01)
    store.put(("u",), "k", {"v": 2})
    second = store.get(("u",), "k")
    assert second.value == {"v": 2}
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    [hit] = store.search(("u",), query="anything at all")  # no vector index: query ignored
    assert isinstance(hit, SearchItem) and hit.score is None
    assert (hit.created_at, hit.updated_at) == (second.created_at, second.updated_at)


def test_namespace_mapping_is_documented_reversible_and_collision_free(store, url):
    spaces = [("a", "b"), ("a/b",), ("a%2Fb",), ("%",), ("é", "x y"), ("a", "b", "c")]
    for labels in spaces:
        store.put(labels, "k", {"labels": list(labels)})
    names = list(botwire.namespaces(store.prefix + "/", url=url))
    p = store.prefix
    assert names == sorted(
        [f"{p}/a/b", f"{p}/a%2Fb", f"{p}/a%252Fb", f"{p}/%25", f"{p}/é/x y", f"{p}/a/b/c"]
    )
    for labels in spaces:
        name = namespace_name(p, labels)
        assert namespace_labels(p, name) == labels
        with Memory(name, url=url) as raw:  # the item is the envelope at the LangGraph key
            envelope = raw.get("k")
        assert envelope["value"] == {"labels": list(labels)} and "ttl" not in envelope
        assert store.get(labels, "k").value == {"labels": list(labels)}
    assert sorted(store.list_namespaces()) == sorted(spaces)
    for foreign in (f"{p}x/a", f"{p}/a//b", f"{p}/%41", f"{p}/"):
        assert namespace_labels(p, foreign) is None


@given(st.lists(st.text(st.characters(blacklist_categories=["Cs"]), min_size=1), min_size=1))
def test_every_tuple_has_its_own_name_which_gives_it_back(labels):
    name = namespace_name("p", tuple(labels))
    assert namespace_labels("p", name) == tuple(labels)
    assert name.count("/") == len(labels)  # no "/" left inside a label


# -- bad input ---------------------------------------------------------------------------------

BAD_VALUES = {
    "datetime": ({"when": datetime.datetime(2024, 1, 1)}, TypeError),
    "set": ({"set": {1, 2}}, TypeError),
    "bytes": ({"bytes": b"x"}, TypeError),
    "tuple": ({"tuple": (1, 2)}, TypeError),
    "int-key": ({1: "int key"}, TypeError),
    "object": ({"nested": {"deep": [object()]}}, TypeError),
    "nan": ({"nan": float("nan")}, ValueError),
    "list": (["not", "a", "dict"], ValueError),
}


@pytest.mark.parametrize("value, error", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_values_that_are_not_json_store_nothing(store, value, error):
    with pytest.raises(error, match="nothing was stored|must be str|cannot be stored as JSON"):
        store.put(("u",), "k", value)
    with pytest.raises(error):  # one bad value in a batch: nothing of the batch is stored
        store.batch([PutOp(("u",), "good", {"v": 1}), PutOp(("v",), "bad", value)])
    assert store.list_namespaces() == [] and store.search(()) == []


BAD_NAMESPACES = [(), ("",), ("a.b",), ("a", 1), ("langgraph", "x"), ("a\x00",)]


@pytest.mark.parametrize("namespace", BAD_NAMESPACES, ids=repr)
def test_invalid_namespaces_raise_what_langgraph_raises(store, namespace):
    with pytest.raises(InvalidNamespaceError) as theirs:
        InMemoryStore().put(namespace, "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError) as ours:
        store.put(namespace, "k", {"v": 1})
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(InvalidNamespaceError):  # also when the op reaches batch directly
        store.batch([PutOp(("ok",), "k", {"v": 1}), PutOp(namespace, "k", {"v": 1})])
    assert store.list_namespaces() == []


def test_other_bad_input_stores_nothing(store):
    too_long = ("x" * 300, "y" * 300)
    with pytest.raises(InvalidNamespaceError, match="botwire's limit is 512"):
        store.put(too_long, "k", {"v": 1})
    with pytest.raises(InvalidKey):
        store.put(("u",), "", {"v": 1})
    for ttl in (0, -1, "5", float("inf")):
        with pytest.raises(InvalidInput, match="minutes"):
            store.put(("u",), "k", {"v": 1}, ttl=ttl)
    with pytest.raises(ValueError, match="Unsupported operator: \\$regex"):
        store.search(("u",), filter={"n": {"$regex": "x"}})
    with pytest.raises(ValueError, match="Unknown operation type"):
        store.batch([("not", "an", "op")])
    assert store.list_namespaces() == []


# -- TTL ---------------------------------------------------------------------------------------

TTL = 1.5 / 60  # minutes


@pytest.mark.parametrize("engine", ["sqlite_url", "http_sqlite_url"])
def test_ttl_expires_and_reads_restart_it(request, monkeypatch, engine):
    for name in ENGINE_ENV:
        monkeypatch.delenv(name, raising=False)
    url = request.getfixturevalue(engine)
    prefix = unique_ns("lg")
    config = {"default_ttl": TTL, "refresh_on_read": False}
    with BotWireStore(prefix, url=url) as store, BotWireStore(prefix, url=url, ttl=config) as lazy:
        for key in ("got", "unread", "searched", "peeked"):
            store.put(("t", key), key, {"v": key}, ttl=TTL)
        store.put(("t", "forever"), "forever", {"v": 1})
        lazy.put(("t", "default"), "default", {"v": 1})  # default_ttl from the config
        with Memory(namespace_name(prefix, ("t", "got")), url=url) as raw:
            assert raw.info("got").expires_at is not None  # botwire's own key expiry
            assert raw.get("got")["ttl"] == TTL
        time.sleep(1.0)
        assert store.get(("t", "got"), "got") is not None  # restarts the 1.5 s
        assert [i.key for i in store.search(("t", "searched"))] == ["searched"]  # restarts too
        assert store.get(("t", "peeked"), "peeked", refresh_ttl=False) is not None
        assert lazy.get(("t", "default"), "default") is not None  # refresh_on_read=False
        time.sleep(1.0)  # 2.0 s after the puts, 1.0 s after the reads
        assert store.get(("t", "unread"), "unread") is None
        assert store.get(("t", "peeked"), "peeked") is None
        assert lazy.get(("t", "default"), "default") is None
        assert store.get(("t", "got"), "got", refresh_ttl=False).value == {"v": "got"}
        assert store.get(("t", "searched"), "searched", refresh_ttl=False) is not None
        assert store.get(("t", "forever"), "forever") is not None
        assert ("t", "unread") not in store.list_namespaces()  # expired items list nothing
        time.sleep(0.8)
        assert store.get(("t", "got"), "got") is None


def _drive(plan: Any, store: BotWireStore, after: str, then: Any) -> tuple[Any, list[str]]:
    """Run ``plan`` like the store does, calling ``then()`` once ``after`` has been answered."""
    methods: list[str] = []
    try:
        call = next(plan)
        while True:
            methods.append(call.method)
            try:
                answer = store._io._call(call)
            except botwire.BotWireError as exc:
                call = plan.throw(exc)
                continue
            if call.method == after:
                then()
            call = plan.send(answer)
    except StopIteration as done:
        return done.value, methods


@pytest.mark.parametrize("after", ["get_many", "info"])
def test_a_refresh_never_rolls_back_a_newer_write(store, url, after):
    """A write landing between a read and its TTL refresh is kept (the refresh may skip)."""
    store.put(("u",), "k", {"v": "old"}, ttl=10)
    with BotWireStore(store.prefix, url=url) as writer:
        write = lambda: writer.put(("u",), "k", {"v": "new"}, ttl=20)  # noqa: E731
        [item], methods = _drive(store._batch([GetOp(("u",), "k")]), store, after, write)
    assert item.value == {"v": "old"}  # what the read saw
    assert methods == ["get_many", "info", "get", "set"]
    assert store.get(("u",), "k", refresh_ttl=False).value == {"v": "new"}
    with Memory(namespace_name(store.prefix, ("u",)), url=url) as raw:
        assert raw.get("k")["ttl"] == 20


# -- in a graph --------------------------------------------------------------------------------


class State(TypedDict):
    text: str
    recalled: list[str]


def remember(state: State, config: RunnableConfig, *, store: BaseStore) -> dict:
    user = config["configurable"]["user_id"]
    if state["text"]:
        key = f"m{len(state['recalled'])}"
        store.put(("users", user, "memories"), key, {"text": state["text"]})
    return {"recalled": [i.value["text"] for i in store.search(("users", user, "memories"))]}


async def aremember(state: State, config: RunnableConfig, *, store: BaseStore) -> dict:
    user = config["configurable"]["user_id"]
    if state["text"]:
        await store.aput(("users", user, "memories"), "a", {"text": state["text"]})
    hits = await store.asearch(("users", user, "memories"))
    return {"recalled": [i.value["text"] for i in hits]}


def _graph(node: Any) -> StateGraph:
    builder = StateGraph(State)
    builder.add_node("remember", node)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", END)
    return builder


def test_a_compiled_graph_remembers_across_threads_and_store_instances(store, url):
    first = _graph(remember).compile(store=store)
    config = {"configurable": {"thread_id": "t1", "user_id": "ada"}}
    assert first.invoke({"text": "likes tea", "recalled": []}, config)["recalled"] == ["likes tea"]
    with BotWireStore(store.prefix, url=url) as again:  # another instance, another thread
        second = _graph(remember).compile(store=again)
        config = {"configurable": {"thread_id": "t2", "user_id": "ada"}}
        assert second.invoke({"text": "", "recalled": []}, config)["recalled"] == ["likes tea"]
        other = {"configurable": {"thread_id": "t3", "user_id": "bob"}}
        assert second.invoke({"text": "", "recalled": []}, other)["recalled"] == []
    assert store.list_namespaces() == [("users", "ada", "memories")]


async def test_a_graph_run_with_ainvoke_uses_the_async_store(astore, url):
    graph = _graph(aremember).compile(store=astore)
    config = {"configurable": {"thread_id": "t1", "user_id": "ada"}}
    out = await graph.ainvoke({"text": "likes jazz", "recalled": []}, config)
    assert out["recalled"] == ["likes jazz"]
    async with BotWireStore(astore.prefix, url=url) as again:
        assert (await again.aget(("users", "ada", "memories"), "a")).value == {"text": "likes jazz"}


# -- packaging and docs ------------------------------------------------------------------------


def test_missing_langgraph_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "langgraph", None)
    for name in [m for m in sys.modules if m.startswith("botwire.adapters.langgraph")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingDependency, match=re.escape("./botwire[langgraph]")):
        importlib.import_module("botwire.adapters.langgraph")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def test_docs_examples_run(tmp_path, monkeypatch, capsys):
    for name in ENGINE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTWIRE_HOME", str(tmp_path))
    blocks = python_blocks()
    assert len(blocks) >= 3
    scope: dict[str, Any] = {"__name__": "docs"}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec", dont_inherit=True), scope)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == ["['likes tea']", "1.2", "['voice']", "[('users', 'ada')]",
                         "['hello', 'Nice to meet you, Ada']"]
    assert int(lines[5]) >= 3 and lines[6:] == ["['likes tea']"]
    assert (tmp_path / "botwire.db").exists()
