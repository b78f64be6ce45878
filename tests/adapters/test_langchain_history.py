"""BotWireChatHistory: LangChain chat history in a botwire log, over every engine."""

from __future__ import annotations

from frameworks import CountingEngine, need, unique_ns

need("langchain_core", "langchain")

import datetime  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from langchain_core.chat_history import BaseChatMessageHistory  # noqa: E402
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)
from langchain_core.runnables.history import RunnableWithMessageHistory  # noqa: E402

import botwire  # noqa: E402
from botwire import AsyncMemory, InvalidInput, InvalidKey, Memory, UnsupportedValue  # noqa: E402
from botwire.adapters.langchain import (  # noqa: E402
    BotWireChatHistory,
    session_log_name,
)

HERE = Path(__file__).resolve().parent
DOCS = HERE.parents[1] / "docs" / "langchain.md"
CHILD = HERE / "lc_history_child.py"


def every_message_type() -> list[BaseMessage]:
    return [
        SystemMessage("You take orders for a pizza shop.", id="sys-1"),
        HumanMessage(
            "Two margheritas, please",
            id="h-1",
            name="Ana",
            additional_kwargs={"channel": "phone", "confidence": 0.93},
        ),
        AIMessage(
            "",
            id="ai-1",
            tool_calls=[
                {"name": "place_order", "args": {"item": "margherita", "qty": 2},
                 "id": "call-1", "type": "tool_call"}
            ],
            additional_kwargs={"refusal": None, "nested": {"a": [1, 2.5, True, None]}},
            response_metadata={"model_name": "fake-1", "finish_reason": "tool_calls"},
            usage_metadata={"input_tokens": 12, "output_tokens": 7, "total_tokens": 19},
        ),
        ToolMessage(
            '{"order": "ORDER-789"}', tool_call_id="call-1", artifact={"id": 789}, status="success"
        ),
        AIMessage("Done: ORDER-789. Anything else?", id="ai-2"),
        ChatMessage("Caller sounded in a hurry.", role="supervisor"),
        FunctionMessage("42", name="lookup"),
        AIMessageChunk("par", id="chunk-1"),
        HumanMessage([{"type": "text", "text": "see"}, {"type": "image_url",
                      "image_url": {"url": "data:image/png;base64,AAAA"}}]),
        HumanMessage("emoji 🍕, NUL \x00 and quotes \"'"),
    ]


def assert_same(got: list[BaseMessage], want: list[BaseMessage]) -> None:
    assert got == want
    assert [type(m) for m in got] == [type(m) for m in want]
    assert [m.model_dump() for m in got] == [m.model_dump() for m in want]


@pytest.fixture
def ns() -> str:
    return unique_ns("lc")


@pytest.fixture
async def history(engine_url, ns):
    # Closed with aclose: a history used through its async methods holds async connections
    # (a PostgreSQL pool per event loop) that only aclose releases.
    h = BotWireChatHistory("call-555-0123", namespace=ns, url=engine_url)
    yield h
    await h.aclose()


# -- storage -----------------------------------------------------------------------------------


def test_is_a_langchain_chat_history(history):
    assert isinstance(history, BaseChatMessageHistory)
    assert botwire.BotWireChatHistory is BotWireChatHistory
    assert history.messages == []


def test_every_message_type_round_trips(history, engine_url, ns):
    sent = every_message_type()
    history.add_messages(sent)
    assert_same(history.messages, sent)
    with BotWireChatHistory("call-555-0123", namespace=ns, url=engine_url) as again:
        assert_same(again.messages, sent)


async def test_every_message_type_round_trips_async(history):
    sent = every_message_type()
    await history.aadd_messages(sent[:4])
    await history.aadd_messages(sent[4:])
    assert_same(await history.aget_messages(), sent)
    assert_same(history.messages, sent)


def test_entry_format(history):
    before = time.time()
    sent = [HumanMessage("hi"), AIMessage("hello", id="a-1")]
    history.add_messages(sent)
    after = time.time()
    entries = history.log.read()
    assert [e.seq for e in entries] == [1, 2]
    for entry, message in zip(entries, sent, strict=False):
        assert set(entry.value) == {"ts", "message"}
        assert entry.value["message"] == message_to_dict(message)
        assert before - 1 <= entry.value["ts"] <= after + 1
    assert messages_from_dict([e.value["message"] for e in entries]) == sent


def test_add_messages_is_one_engine_call(engine_url, ns):
    with Memory(ns, url=engine_url) as holder, \
            Memory(ns, engine=CountingEngine(holder.engine)) as memory:
        counter = memory.engine
        history = BotWireChatHistory("s", memory=memory)
        history.add_messages([HumanMessage(f"m{i}") for i in range(25)])
        assert counter.ops == ["Append"]
        history.add_messages([])
        assert counter.ops == ["Append"]
        history.add_message(AIMessage("one"))
        assert counter.ops == ["Append", "Append"]
        assert len(history.messages) == 26


async def test_aadd_messages_is_one_engine_call(engine_url, ns):
    async with AsyncMemory(ns, url=engine_url) as holder:
        counter = CountingEngine(holder.engine)
        async with AsyncMemory(ns, engine=counter) as memory:
            history = BotWireChatHistory("s", memory=memory)
            await history.aadd_messages([HumanMessage(f"m{i}") for i in range(25)])
            await history.aadd_messages([])
            assert counter.ops == ["async Append"]  # on the event loop, not in a thread
            assert len(await history.aget_messages()) == 25
            await history.aclear()
            assert counter.ops == ["async Append", "async Read", "async LogClear"]


def test_appending_never_rewrites(history):
    history.add_messages([HumanMessage("one"), AIMessage("two")])
    first = history.log.read()
    time.sleep(0.01)
    history.add_messages([HumanMessage("three"), AIMessage("four")])
    history.add_user_message("five")
    entries = history.log.read()
    assert entries[:2] == first  # same seq, value and ts
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[2].ts >= first[1].ts
    assert [m.content for m in history.messages] == ["one", "two", "three", "four", "five"]


def test_clear(engine_url, ns, history):
    other = BotWireChatHistory("another call", namespace=ns, url=engine_url)
    history.add_messages([HumanMessage("a"), AIMessage("b")])
    other.add_messages([HumanMessage("kept")])
    history.clear()
    assert history.messages == []
    assert [m.content for m in other.messages] == ["kept"]
    history.add_messages([HumanMessage("after")])
    assert [m.content for m in history.messages] == ["after"]
    assert [e.seq for e in history.log.read()] == [3]  # numbers are not reused
    other.close()


async def test_aclear(engine_url, ns, history):
    other = BotWireChatHistory("another call", namespace=ns, url=engine_url)
    await history.aadd_messages([HumanMessage("a"), AIMessage("b")])
    await other.aadd_messages([HumanMessage("kept")])
    await history.aclear()
    assert await history.aget_messages() == []
    assert [m.content for m in await other.aget_messages()] == ["kept"]
    await other.aclose()


async def test_window_last(engine_url, ns, history):
    sent = [HumanMessage(f"q{i}") if i % 2 == 0 else AIMessage(f"a{i}") for i in range(7)]
    history.add_messages(sent)
    memory = history.memory
    windowed = BotWireChatHistory("call-555-0123", memory=memory, last=3)
    assert windowed.messages == sent[-3:]
    assert await windowed.aget_messages() == sent[-3:]
    one = BotWireChatHistory("call-555-0123", memory=memory, last=1)
    assert one.messages == sent[-1:]
    assert await one.aget_messages() == sent[-1:]
    wide = BotWireChatHistory("call-555-0123", memory=memory, last=100)
    assert wide.messages == sent
    assert history.log.count() == 7  # the window only limits reading


@pytest.mark.parametrize("last", [0, -1, True, 1.5, "3"])
def test_window_must_be_a_positive_int(last, tmp_path):
    with pytest.raises(InvalidInput, match="last"):
        BotWireChatHistory("s", url=f"sqlite:///{tmp_path}/b.db", last=last)


# -- bad input ---------------------------------------------------------------------------------


NOT_MESSAGES = [
    ([HumanMessage("ok"), "not a message"], "item 1 is a str"),
    ([HumanMessage("ok"), {"type": "human", "data": {}}], "item 1 is a dict"),
    ([HumanMessage("ok"), None], "item 1 is a NoneType"),
    (HumanMessage("single"), r"add_messages\(\[message\]\)"),
    ("hello", "not a str"),
    ({"role": "user"}, "not a dict"),
]


async def test_bad_messages_store_nothing(history):
    for bad, match in NOT_MESSAGES:
        with pytest.raises(UnsupportedValue, match=match):
            history.add_messages(bad)
        with pytest.raises(TypeError, match=match):  # UnsupportedValue is a TypeError
            await history.aadd_messages(bad)
    assert history.log.count() == 0


async def test_unstorable_message_content_stores_nothing(history):
    history.add_messages([HumanMessage("first")])
    bad = [
        HumanMessage("fine"),
        AIMessage("when", additional_kwargs={"at": datetime.datetime(2024, 1, 1)}),
    ]
    where = r"message 1 \(ai\) cannot be stored: data\['additional_kwargs'\]\['at'\] is a date"
    with pytest.raises(UnsupportedValue, match=where):
        history.add_messages(bad)
    with pytest.raises(UnsupportedValue, match=where):
        await history.aadd_messages(bad)
    lossy = [AIMessage("pair", additional_kwargs={"xy": (1, 2)})]  # a tuple would come back a list
    with pytest.raises(UnsupportedValue, match=r"\['xy'\] is a tuple"):
        history.add_messages(lossy)
    keyed = [ToolMessage("t", tool_call_id="c", artifact={1: "one"})]
    with pytest.raises(UnsupportedValue, match=r"data\['artifact'\] has a int key 1"):
        history.add_messages(keyed)
    with pytest.raises(InvalidInput, match="surrogate"):
        history.add_messages([HumanMessage("\ud800")])
    assert [m.content for m in history.messages] == ["first"]


FOREIGN_ENTRIES = [
    "something else",
    ["a", "list"],
    {"text": "no message key"},
    {"ts": 1.0, "message": "not a dict"},
    {"ts": 1.0, "message": {"type": "no-such-type", "data": {"content": "x"}}},
    {"ts": 1.0, "message": {"type": "human"}},
    {"ts": 1.0, "message": {"type": "human", "data": {"content": 5}}},
]


async def test_entry_not_written_by_the_history(history):
    for i, foreign in enumerate(FOREIGN_ENTRIES):
        session = BotWireChatHistory(f"call-{i}", memory=history.memory)
        session.add_messages([HumanMessage("ok")])
        session.log.append(foreign)
        session.add_messages([HumanMessage("later")])
        where = f"entry 2 of log 'session:call-{i}' in namespace 'lc-"
        with pytest.raises(UnsupportedValue, match=where):
            _ = session.messages
        with pytest.raises(UnsupportedValue, match=where):
            await session.aget_messages()
        tail = BotWireChatHistory(f"call-{i}", memory=history.memory, last=1)
        assert [m.content for m in tail.messages] == ["later"]  # a window past it still reads


# -- session ids and namespaces ----------------------------------------------------------------

ODD_IDS = [
    "",
    " ",
    "x" * 504,  # "session:" + id is exactly 512 characters
    "x" * 505,
    "x" * 10_000,
    "a\x00b",
    "\x00",
    "🍕 ünïcode",
    "\ud800",  # a lone surrogate
    "\udfff\ud800",
    "session:nested",
    "session-sha256:" + "0" * 64,
    "../../etc/passwd",
    "a/b?c#d%2F",
]


def test_session_ids_map_to_distinct_valid_log_names():
    names = [session_log_name(s) for s in ODD_IDS]
    assert len(set(names)) == len(ODD_IDS)
    assert names == [session_log_name(s) for s in ODD_IDS]  # deterministic
    for session_id, name in zip(ODD_IDS, names, strict=False):
        assert 0 < len(name) <= 512 and "\x00" not in name
        name.encode("utf-8")  # no lone surrogate
        if name.startswith("session:"):
            assert name == "session:" + session_id
        else:
            assert re.fullmatch(r"session-sha256:[0-9a-f]{64}", name)
    assert session_log_name("call-1") == "session:call-1"
    assert session_log_name("") == "session:"
    # the hashed form of one id is never the plain form of another
    hashed = session_log_name("\x00")
    assert session_log_name(hashed[len("session:"):]) != hashed


def test_odd_session_ids_store_their_own_history(engine_url, ns):
    with Memory(ns, url=engine_url) as memory:
        for i, session_id in enumerate(ODD_IDS):
            BotWireChatHistory(session_id, memory=memory).add_messages([HumanMessage(f"m{i}")])
        for i, session_id in enumerate(ODD_IDS):
            history = BotWireChatHistory(session_id, memory=memory)
            assert history.session_id == session_id
            assert [m.content for m in history.messages] == [f"m{i}"]


@pytest.mark.parametrize("session_id", [1, None, b"call", uuid.UUID(int=1), ["a"]])
def test_session_id_must_be_a_str(session_id, tmp_path):
    with pytest.raises(InvalidKey, match="session_id must be a str"):
        BotWireChatHistory(session_id, url=f"sqlite:///{tmp_path}/b.db")


def test_default_namespace_is_chat(tmp_path, monkeypatch):
    monkeypatch.setenv("BOTWIRE_HOME", str(tmp_path))
    for name in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with BotWireChatHistory("call-1") as history:
        assert (history.namespace, history.log_name) == ("chat", "session:call-1")
        history.add_messages([HumanMessage("hi")])
    with Memory("chat") as memory:
        (entry,) = memory.log("session:call-1").read()
        assert entry.value["message"] == message_to_dict(HumanMessage("hi"))
    assert (tmp_path / "botwire.db").exists()


def test_tenants_never_share_a_session(engine_url):
    acme, globex = unique_ns("acme"), unique_ns("globex")
    with BotWireChatHistory("call-1", namespace=acme, url=engine_url) as a, \
            BotWireChatHistory("call-1", namespace=globex, url=engine_url) as g:
        a.add_messages([HumanMessage("acme order")])
        g.add_messages([HumanMessage("globex order"), AIMessage("ok")])
        assert [m.content for m in a.messages] == ["acme order"]
        assert [m.content for m in g.messages] == ["globex order", "ok"]
        a.clear()
        assert a.messages == [] and len(g.messages) == 2
    assert set(botwire.namespaces(url=engine_url, prefix="globex-")) >= {globex}


def test_tenant_api_key_reaches_only_its_namespaces(http_sqlite_server, monkeypatch):
    import httpx

    monkeypatch.delenv("BOTWIRE_API_KEY", raising=False)
    acme, globex = unique_ns("acme"), unique_ns("globex")
    made = httpx.post(
        f"{http_sqlite_server.base}/v1/keys",
        headers={"Authorization": f"Bearer {http_sqlite_server.admin_key}"},
        json={"prefixes": [f"{acme}:"], "rights": "write", "name": "acme agents"},
    )
    assert made.status_code == 201, made.text
    acme_key = made.json()["key"]
    url = http_sqlite_server.base  # no key in the URL: api_key= carries it
    with BotWireChatHistory("call-1", namespace=f"{acme}:chat", url=url, api_key=acme_key) as h:
        h.add_messages([HumanMessage("acme order")])
        assert [m.content for m in h.messages] == ["acme order"]
    with BotWireChatHistory("call-1", namespace=f"{globex}:chat", url=url, api_key=acme_key) as h:
        with pytest.raises(botwire.PermissionDenied):
            h.add_messages([HumanMessage("not yours")])
        with pytest.raises(botwire.PermissionDenied):
            _ = h.messages
    with BotWireChatHistory("call-1", namespace=f"{globex}:chat",
                            url=http_sqlite_server.url()) as admin_view:
        assert admin_view.messages == []


def test_bad_namespace(tmp_path):
    with pytest.raises(InvalidKey, match="namespace"):
        BotWireChatHistory("s", namespace="", url=f"sqlite:///{tmp_path}/b.db")


async def test_existing_memory(engine_url, ns):
    memory = Memory(ns, url=engine_url)
    history = BotWireChatHistory("s", memory=memory)
    assert history.namespace == ns and history.memory is memory
    history.add_messages([HumanMessage("hi")])
    history.close()  # the caller's Memory stays open
    assert memory.log("session:s").count() == 1
    with pytest.raises(InvalidInput, match="not both"):
        BotWireChatHistory("s", memory=memory, namespace="other")
    with pytest.raises(InvalidInput, match="not both"):
        BotWireChatHistory("s", memory=memory, url=engine_url)
    with pytest.raises(InvalidInput, match="Memory or AsyncMemory"):
        BotWireChatHistory("s", memory="chat")  # type: ignore[arg-type]
    memory.close()
    async with AsyncMemory(ns, url=engine_url) as amemory:
        history = BotWireChatHistory("s", memory=amemory)
        assert [m.content for m in await history.aget_messages()] == ["hi"]
        assert [m.content for m in history.messages] == ["hi"]


def test_close_releases_the_engine(sqlite_url, ns):
    history = BotWireChatHistory("s", namespace=ns, url=sqlite_url)
    history.add_messages([HumanMessage("hi")])
    history.close()
    with pytest.raises(botwire.StorageUnavailable, match="closed"):
        _ = history.messages
    log = BotWireChatHistory("s", namespace=ns, url=sqlite_url).log
    gc.collect()  # the history is gone; its log still holds the engine
    assert [e.value["message"]["data"]["content"] for e in log.read()] == ["hi"]


async def test_aclose_releases_the_engine(sqlite_url, ns):
    async with BotWireChatHistory("s", namespace=ns, url=sqlite_url) as history:
        await history.aadd_messages([HumanMessage("hi")])
    with pytest.raises(botwire.StorageUnavailable, match="closed"):
        await history.aget_messages()


def test_repr_hides_credentials(http_sqlite_url, ns, monkeypatch):
    monkeypatch.delenv("BOTWIRE_API_KEY", raising=False)
    key = http_sqlite_url.split("//", 1)[1].split("@", 1)[0]
    with BotWireChatHistory("x" * 1000, namespace=ns, url=http_sqlite_url, last=5) as history:
        text = repr(history)
    assert key not in text
    assert text.startswith("BotWireChatHistory('xxx") and len(text) < 200
    assert f"namespace={ns!r}" in text and "last=5" in text and "127.0.0.1" in text


def test_missing_langchain_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "langchain_core", None)  # import fails
    monkeypatch.delitem(sys.modules, "botwire.adapters.langchain")
    with pytest.raises(botwire.MissingDependency, match=r"./botwire\[langchain\]"):
        importlib.import_module("botwire.adapters.langchain")


# -- with LangChain's runnables ----------------------------------------------------------------


def with_history(model: Any, memory: Memory | AsyncMemory, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # RunnableWithMessageHistory is
        return RunnableWithMessageHistory(  # deprecated in langchain-core 1.x, still shipped
            model,
            lambda session_id: BotWireChatHistory(session_id, memory=memory, **kwargs),
        )


async def test_runnable_with_message_history(engine_url, ns):
    model = GenericFakeChatModel(messages=iter(["Hi Ana!", "Two margheritas.", "Bye!"]))
    async with AsyncMemory(ns, url=engine_url) as memory:
        chain = with_history(model, memory)
        config: Any = {"configurable": {"session_id": "call-1"}}
        assert chain.invoke("Hi, I'm Ana", config=config).content == "Hi Ana!"
        assert (await chain.ainvoke("My order?", config=config)).content == "Two margheritas."
        assert chain.invoke("Thanks", config={"configurable": {"session_id": "call-2"}})
        history = BotWireChatHistory("call-1", memory=memory)
        assert [(m.type, m.content) for m in await history.aget_messages()] == [
            ("human", "Hi, I'm Ana"), ("ai", "Hi Ana!"),
            ("human", "My order?"), ("ai", "Two margheritas."),
        ]


def test_runnable_with_a_window(engine_url, ns):
    prompts: list[list[BaseMessage]] = []

    def model(messages: list[BaseMessage]) -> AIMessage:
        prompts.append(messages)
        return AIMessage(f"answer {len(prompts)}")

    from langchain_core.runnables import RunnableLambda

    with Memory(ns, url=engine_url) as memory:
        chain = with_history(RunnableLambda(model), memory, last=2)
        config: Any = {"configurable": {"session_id": "call-1"}}
        for text in ("one", "two", "three"):
            chain.invoke(text, config=config)
        assert [m.content for m in prompts[2]] == ["two", "answer 2", "three"]
        history = BotWireChatHistory("call-1", memory=memory)
        assert len(history.messages) == 6  # the window never drops stored messages


def run_turn(url: str, ns: str, text: str, reply: str, *flags: str) -> list[BaseMessage]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    done = subprocess.run(
        [sys.executable, str(CHILD), url, ns, "call-555-0123", text, reply, *flags],
        capture_output=True, text=True, timeout=120, env=env, cwd=HERE,
    )
    assert done.returncode == 0, done.stderr
    return messages_from_dict(json.loads(done.stdout))


@pytest.mark.processes
@pytest.mark.parametrize("engine", ["sqlite_url", "postgres_url", "http_sqlite_url"])
def test_history_is_shared_across_processes(engine, request, ns):
    url = request.getfixturevalue(engine)
    first = run_turn(url, ns, "Hi, I'm Ana", "Hello Ana!")
    assert [m.content for m in first] == ["Hi, I'm Ana"]
    second = run_turn(url, ns, "What's my name?", "You are Ana.", "--async")
    assert [(m.type, m.content) for m in second] == [
        ("human", "Hi, I'm Ana"), ("ai", "Hello Ana!"), ("human", "What's my name?"),
    ]
    with BotWireChatHistory("call-555-0123", namespace=ns, url=url) as history:
        assert [m.content for m in history.messages] == [
            "Hi, I'm Ana", "Hello Ana!", "What's my name?", "You are Ana.",
        ]
        assert [e.seq for e in history.log.read()] == [1, 2, 3, 4]


# -- the docs ----------------------------------------------------------------------------------


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def test_docs_examples_run(tmp_path, monkeypatch, capsys):
    for name in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL", "BOTWIRE_MAX_VALUE_BYTES",
                 "BOTWIRE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTWIRE_HOME", str(tmp_path))
    blocks = python_blocks()
    assert len(blocks) >= 2
    for block in blocks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            exec(compile(block, str(DOCS), "exec"), {"__name__": "docs"})
    out = capsys.readouterr().out.splitlines()
    assert out[:8] == [
        "You ordered two margheritas.",
        "human: Two margheritas, please.",
        "ai: Two margheritas, coming up.",
        "human: What did I order?",
        "ai: You ordered two margheritas.",
        "['What did I order?', 'You ordered two margheritas.']",
        "5",
        "[]",
    ]
    assert "chat session:call-555-0199 session:call-555-0199" in out
    assert "session:call-555-0199 1 What did I order?" in out  # found by Memory.search
    assert "[{'text': 'Hello!', 'voice': 'alloy'}, 3, None]" in out
    assert "['embedding:hello', 'greeting']" in out
    assert "[b'RIFF\\x00\\x01']" in out
    assert (tmp_path / "botwire.db").exists()
