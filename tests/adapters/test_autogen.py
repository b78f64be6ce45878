"""BotWireMemory: AutoGen's Memory interface over botwire, on the embedded engines and a server."""

from __future__ import annotations

from frameworks import need

need("autogen_core", "autogen")
need("autogen_agentchat", "test-adapters")
need("autogen_ext.models.replay", "test-adapters")

import asyncio  # noqa: E402
import datetime  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import unquote, urlsplit  # noqa: E402

import pytest  # noqa: E402
from autogen_agentchat.agents import AssistantAgent  # noqa: E402
from autogen_agentchat.messages import MemoryQueryEvent  # noqa: E402
from autogen_core import CancellationToken, Image  # noqa: E402
from autogen_core.memory import (  # noqa: E402
    ListMemory,
    Memory,
    MemoryContent,
    MemoryMimeType,
)
from autogen_core.model_context import UnboundedChatCompletionContext  # noqa: E402
from autogen_core.models import AssistantMessage, SystemMessage, UserMessage  # noqa: E402
from autogen_ext.models.replay import ReplayChatCompletionClient  # noqa: E402
from frameworks import unique_ns  # noqa: E402

import botwire  # noqa: E402
from botwire.adapters.autogen import BotWireMemory, BotWireMemoryConfig  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "autogen.md"
TEXT = MemoryMimeType.TEXT

FACTS = {
    "pizza": "The customer's favourite pizza is margherita with extra basil",
    "allergy": "The customer is allergic to peanuts",
    "dog": "The customer's dog is called Rex",
    "delivery": "Deliveries go to the back door after 6 pm",
}


@pytest.fixture(autouse=True)
def _no_engine_env(monkeypatch):
    for name in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL", "BOTWIRE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["sqlite", "postgres", "http-sqlite"])
def some_url(request) -> str:
    """The embedded engines and a real server: for tests that need not run on every engine."""
    return request.getfixturevalue(
        {"sqlite": "sqlite_url", "postgres": "postgres_url", "http-sqlite": "http_sqlite_url"}[
            request.param
        ]
    )


def text(content: str, **metadata) -> MemoryContent:
    return MemoryContent(content=content, mime_type=TEXT, metadata=metadata or None)


async def stored(memory: BotWireMemory, url: str) -> int:
    """How many entries the memory's log holds, read with botwire itself."""
    async with botwire.AsyncMemory(memory.namespace, url=url) as m:
        return await m.log(memory.log_name).count()


# -- through an AssistantAgent -------------------------------------------------------------------


async def test_agent_prompt_gets_the_relevant_memories_only(engine_url):
    memory = BotWireMemory(unique_ns("agent"), url=engine_url)
    for fact in FACTS.values():
        await memory.add(text(fact))
    client = ReplayChatCompletionClient(["A margherita, as usual."])
    agent = AssistantAgent("assistant", model_client=client, memory=[memory])

    result = await agent.run(task="Which pizza should I order tonight?")

    assert result.messages[-1].content == "A margherita, as usual."
    (call,) = client.create_calls
    prompt = "\n".join(str(m.content) for m in call["messages"])
    assert FACTS["pizza"] in prompt
    for other in ("allergy", "dog", "delivery"):
        assert FACTS[other] not in prompt
    system = [m for m in call["messages"] if isinstance(m, SystemMessage)]
    assert any(m.content == f"\nRelevant memory content:\n1. {FACTS['pizza']}" for m in system)
    events = [m for m in result.messages if isinstance(m, MemoryQueryEvent)]
    assert [c.content for c in events[0].content] == [FACTS["pizza"]]
    await memory.close()


async def test_agent_without_matching_memory_gets_no_memory_message(sqlite_url):
    memory = BotWireMemory(unique_ns(), url=sqlite_url)
    await memory.add(text(FACTS["dog"]))
    client = ReplayChatCompletionClient(["Sure."])
    agent = AssistantAgent("assistant", model_client=client, memory=[memory])
    result = await agent.run(task="Book a table for two")
    prompt = "\n".join(str(m.content) for m in client.create_calls[0]["messages"])
    assert "Relevant memory content" not in prompt and FACTS["dog"] not in prompt
    assert not any(isinstance(m, MemoryQueryEvent) for m in result.messages)
    await memory.close()


async def test_agent_component_round_trip_keeps_the_memory(sqlite_url):
    ns = unique_ns()
    memory = BotWireMemory(ns, url=sqlite_url, k=2)
    await memory.add(text(FACTS["pizza"]))
    agent = AssistantAgent(
        "assistant", model_client=ReplayChatCompletionClient(["ok"]), memory=[memory]
    )
    loaded = AssistantAgent.load_component(json.loads(agent.dump_component().model_dump_json()))
    (again,) = loaded._memory or []
    assert isinstance(again, BotWireMemory) and again.namespace == ns and again.k == 2
    assert [r.content for r in (await again.query("pizza")).results] == [FACTS["pizza"]]
    await again.close()
    await memory.close()


# -- storage and ranking ---------------------------------------------------------------------------


async def test_persists_across_instances(engine_url):
    ns = unique_ns("persist")
    first = BotWireMemory(ns, url=engine_url)
    await first.add(text(FACTS["allergy"], source="call-1"))
    await first.close()

    second = BotWireMemory(ns, url=engine_url)
    (hit,) = (await second.query("peanut allergy")).results
    assert hit.content == FACTS["allergy"]
    assert hit.mime_type == TEXT
    assert hit.metadata is not None and hit.metadata["source"] == "call-1"
    assert hit.metadata["score"] > 0
    await second.close()


async def test_ranks_the_most_relevant_first(engine_url):
    memory = BotWireMemory(unique_ns("rank"), url=engine_url, k=10)
    docs = [
        "Order 17 was a vegan pizza with olives",  # both words
        "Order 12 was a pepperoni pizza",  # one word
        "Order 9 was a salad with olives",
        "The customer lives in Leeds",
        "The customer pays by card",
    ]
    for doc in docs:
        await memory.add(text(doc))
    results = (await memory.query("vegan pizza")).results
    assert [r.content for r in results] == docs[:2]
    scores = [r.metadata["score"] for r in results if r.metadata]
    assert scores[0] > scores[1]
    assert [r.content for r in (await memory.query("vegan pizza", k=1)).results] == docs[:1]
    await memory.close()


async def test_clear_removes_the_contents_only(engine_url):
    ns = unique_ns("clear")
    memory = BotWireMemory(ns, url=engine_url)
    await memory.add(text(FACTS["pizza"]))
    async with botwire.AsyncMemory(ns, url=engine_url) as plain:
        await plain.set("pizza-note", "not a memory of the agent")
        await plain.log("calls").append("pizza ordered")
        await memory.clear()
        assert (await memory.query("pizza")).results == []
        assert await plain.get("pizza-note") == "not a memory of the agent"
        assert await plain.log("calls").count() == 1
        assert await plain.log(memory.log_name).count() == 0
    await memory.add(text(FACTS["pizza"]))  # usable after clear
    assert len((await memory.query("pizza")).results) == 1
    await memory.close()


async def test_mime_types_and_metadata_round_trip(some_url):
    memory = BotWireMemory(unique_ns(), url=some_url)
    await memory.add(MemoryContent(content="# Pizza\n*margherita*", mime_type="text/markdown"))
    await memory.add(MemoryContent(content={"pizza": "quattro formaggi", "size": 32},
                                   mime_type=MemoryMimeType.JSON, metadata={"call": 7}))
    await memory.add(MemoryContent(content="pizza on fridays", mime_type="text/plain"))
    results = {r.mime_type: r for r in (await memory.query("pizza")).results}
    assert set(results) == {MemoryMimeType.MARKDOWN, MemoryMimeType.JSON, MemoryMimeType.TEXT}
    assert results[MemoryMimeType.MARKDOWN].content == "# Pizza\n*margherita*"
    assert results[MemoryMimeType.JSON].content == {"pizza": "quattro formaggi", "size": 32}
    assert results[MemoryMimeType.JSON].metadata == {
        "call": 7, "score": results[MemoryMimeType.JSON].metadata["score"]  # type: ignore[index]
    }
    assert results[MemoryMimeType.TEXT].content == "pizza on fridays"
    await memory.close()


async def test_only_content_and_metadata_are_searchable(sqlite_url, postgres_url):
    """The stored format adds no words: a query for mime or field names finds nothing."""
    for url in (sqlite_url, postgres_url):
        memory = BotWireMemory(unique_ns(), url=url)
        await memory.add(MemoryContent(content="margherita", mime_type="text/markdown"))
        await memory.add(MemoryContent(content={"a": "b"}, mime_type=MemoryMimeType.JSON))
        await memory.add(text("basil", topic="pizza"))
        words = "text plain markdown application json content mime type metadata null"
        assert (await memory.query(words)).results == []
        assert [r.content for r in (await memory.query("pizza")).results] == ["basil"]
        await memory.close()


async def test_query_by_memory_content(sqlite_url):
    memory = BotWireMemory(unique_ns(), url=sqlite_url)
    for fact in FACTS.values():
        await memory.add(text(fact))
    by_text = await memory.query(text("anything about the dog?"))
    pet = MemoryContent(content={"pet": "dog"}, mime_type="application/json")
    by_json = await memory.query(pet)
    assert [r.content for r in by_text.results] == [FACTS["dog"]]
    assert [r.content for r in by_json.results] == [FACTS["dog"]]
    await memory.close()


async def test_other_keys_and_logs_of_the_namespace_do_not_crowd_out_results(sqlite_url,
                                                                             postgres_url):
    for url in (sqlite_url, postgres_url):
        ns = unique_ns("crowd")
        async with botwire.AsyncMemory(ns, url=url) as plain:
            await plain.set_many({f"note-{i}": "pizza pizza pizza pizza" for i in range(60)})
            await plain.log("other").extend(["pizza pizza pizza"] * 60)
        memory = BotWireMemory(ns, url=url, k=2)
        await memory.add(text("a long sentence that mentions pizza only once among many words"))
        await memory.add(text("pizza"))
        results = (await memory.query("pizza")).results
        assert sorted(str(r.content) for r in results) == sorted(
            ["pizza", "a long sentence that mentions pizza only once among many words"]
        )
        await memory.close()


async def test_query_without_search_words_finds_nothing(sqlite_url):
    memory = BotWireMemory(unique_ns(), url=sqlite_url)
    await memory.add(text(FACTS["pizza"]))
    for query in ("", "   ", "the and of", "?!"):
        assert (await memory.query(query)).results == []
    long_query = "pizza " + "word " * 2000  # longer than the core's query limit: clipped
    assert len((await memory.query(long_query)).results) == 1
    await memory.close()


async def test_score_threshold(sqlite_url):
    memory = BotWireMemory(unique_ns(), url=sqlite_url, score_threshold=1e9)
    for fact in FACTS.values():
        await memory.add(text(fact))
    assert (await memory.query("pizza")).results == []
    assert len((await memory.query("pizza", score_threshold=None)).results) == 1
    assert len((await memory.query("pizza", score_threshold=-1e9)).results) == 1
    await memory.close()


async def test_entries_appended_by_other_means_read_as_text_or_json(sqlite_url):
    ns = unique_ns()
    async with botwire.AsyncMemory(ns, url=sqlite_url) as plain:
        await plain.log("autogen").extend(["pizza plain", {"pizza": "dict"}, ["pizza", 1, 2, 3]])
    memory = BotWireMemory(ns, url=sqlite_url)
    found = {json.dumps(r.content): r.mime_type for r in (await memory.query("pizza")).results}
    assert found == {
        '"pizza plain"': TEXT,
        '{"pizza": "dict"}': MemoryMimeType.JSON,
        json.dumps('["pizza", 1, 2, 3]'): TEXT,
    }
    await memory.close()


# -- update_context ----------------------------------------------------------------------------


async def test_update_context_uses_the_last_user_message(sqlite_url):
    memory = BotWireMemory(unique_ns(), url=sqlite_url)
    for fact in FACTS.values():
        await memory.add(text(fact))
    context = UnboundedChatCompletionContext()
    await context.add_message(UserMessage(content="What is my dog called?", source="user"))
    await context.add_message(AssistantMessage(content="Rex.", source="assistant"))
    await context.add_message(UserMessage(content="And which door for deliveries?", source="user"))
    await context.add_message(AssistantMessage(content="Thinking about pizza", source="a"))

    result = await memory.update_context(context)

    assert [r.content for r in result.memories.results] == [FACTS["delivery"]]
    last = (await context.get_messages())[-1]
    assert last == SystemMessage(content=f"\nRelevant memory content:\n1. {FACTS['delivery']}")
    await memory.close()


async def test_update_context_with_multimodal_and_empty_contexts(sqlite_url):
    memory = BotWireMemory(unique_ns(), url=sqlite_url)
    await memory.add(MemoryContent(content={"dog": "Rex"}, mime_type=MemoryMimeType.JSON))
    empty = UnboundedChatCompletionContext()
    assert (await memory.update_context(empty)).memories.results == []
    assert await empty.get_messages() == []

    image = Image.from_base64(_PIXEL)
    context = UnboundedChatCompletionContext()
    await context.add_message(UserMessage(content=["who is this dog?", image], source="user"))
    result = await memory.update_context(context)
    assert [r.content for r in result.memories.results] == [{"dog": "Rex"}]
    last = (await context.get_messages())[-1]
    assert last == SystemMessage(content='\nRelevant memory content:\n1. {"dog": "Rex"}')

    unrelated = UnboundedChatCompletionContext()
    await unrelated.add_message(UserMessage(content="weather tomorrow?", source="user"))
    assert (await memory.update_context(unrelated)).memories.results == []
    assert len(await unrelated.get_messages()) == 1
    await memory.close()


_PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5Erk"
    "Jggg=="
)


# -- component config ----------------------------------------------------------------------------


async def test_component_round_trip(some_url, monkeypatch):
    key = unquote(urlsplit(some_url).username or "")
    if some_url.startswith("http"):  # a dumped config holds no key: it comes from the environment
        monkeypatch.setenv("BOTWIRE_API_KEY", key)
    ns = unique_ns("component")
    memory = BotWireMemory(ns, url=some_url, log="facts", k=3, score_threshold=-5.0, name="prefs")
    await memory.add(text(FACTS["pizza"]))
    model = memory.dump_component()
    assert model.provider == "botwire.adapters.autogen.BotWireMemory"
    assert model.component_type == "memory"

    again = Memory.load_component(model)
    from_json = Memory.load_component(json.loads(model.model_dump_json()))
    for loaded in (again, from_json):
        assert isinstance(loaded, BotWireMemory)
        assert loaded._to_config() == memory._to_config()
        assert (loaded.namespace, loaded.log_name, loaded.k, loaded.name) == (ns, "facts", 3,
                                                                              "prefs")
        assert [r.content for r in (await loaded.query("pizza")).results] == [FACTS["pizza"]]
        await loaded.close()
    await memory.close()


async def test_dumped_config_holds_no_secret(http_sqlite_url, monkeypatch):
    key = unquote(urlsplit(http_sqlite_url).username or "")
    assert key
    ns = unique_ns()
    bare_url = http_sqlite_url.replace(f"{key}@", "")
    with_key_in_url = BotWireMemory(ns, url=http_sqlite_url)
    with_api_key = BotWireMemory(ns, url=bare_url, api_key=key)
    await with_api_key.add(text(FACTS["dog"]))
    for memory in (with_key_in_url, with_api_key):
        model = memory.dump_component()
        dumped = model.model_dump_json()
        assert key not in dumped and key not in repr(model)
        assert model.config == {"namespace": ns, "url": bare_url, "log": "autogen", "k": 5}

        with pytest.raises(botwire.AuthenticationFailed):  # no key anywhere: the server refuses
            loaded = Memory.load_component(json.loads(dumped))
            try:
                await loaded.query("dog")
            finally:
                await loaded.close()
        monkeypatch.setenv("BOTWIRE_API_KEY", key)  # the key comes from the environment
        loaded = Memory.load_component(json.loads(dumped))
        assert [r.content for r in (await loaded.query("dog")).results] == [FACTS["dog"]]
        await loaded.close()
        monkeypatch.delenv("BOTWIRE_API_KEY")
        await memory.close()

    config = {"namespace": ns, "url": bare_url, "api_key": key}  # a hand-written config
    loaded = Memory.load_component({"provider": "botwire.adapters.autogen.BotWireMemory",
                                    "component_type": "memory", "config": config})
    assert [r.content for r in (await loaded.query("dog")).results] == [FACTS["dog"]]
    assert key not in loaded.dump_component().model_dump_json()
    await loaded.close()


def test_dumped_url_loses_passwords_only():
    from botwire._wire import redact  # what _to_config writes

    assert redact("postgresql://app:s3cret@db:5432/x?options=-csearch_path%3Ds") == (
        "postgresql://app@db:5432/x?options=-csearch_path%3Ds"
    )
    assert redact("postgresql://app@db/x?password=s3cret&sslmode=require") == (
        "postgresql://app@db/x?sslmode=require"
    )
    assert redact("https://bw_key@memory.example.com") == "https://memory.example.com"
    assert redact("sqlite:////var/lib/app/botwire.db") == "sqlite:////var/lib/app/botwire.db"


def test_config_validation():
    with pytest.raises(ValueError):
        BotWireMemoryConfig(namespace="x", k=0)
    assert BotWireMemoryConfig(namespace="x").k == 5


# -- an AsyncMemory of one's own, close -----------------------------------------------------------


async def test_existing_async_memory_is_shared_not_closed(sqlite_url):
    async with botwire.AsyncMemory(unique_ns(), url=sqlite_url) as plain:
        memory = BotWireMemory(plain)
        assert memory.namespace == plain.namespace == memory.name
        await memory.add(text(FACTS["pizza"]))
        assert memory._to_config().url == sqlite_url
        await memory.close()
        assert await plain.log("autogen").count() == 1  # still open
    with botwire.Memory("sync", url=sqlite_url) as sync, pytest.raises(TypeError, match="async"):
        BotWireMemory(sync)  # type: ignore[arg-type]
    async with botwire.AsyncMemory("a", url=sqlite_url) as plain:
        with pytest.raises(ValueError, match="not both"):
            BotWireMemory(plain, url=sqlite_url)


async def test_closed_memory_refuses_work(sqlite_url):
    memory = BotWireMemory(unique_ns(), url=sqlite_url)
    await memory.close()
    await memory.close()  # idempotent
    for call in (memory.add(text("x")), memory.query("x"), memory.clear()):
        with pytest.raises(RuntimeError, match="closed"):
            await call


async def test_cancelled_token_stores_nothing(sqlite_url):
    memory = BotWireMemory(unique_ns(), url=sqlite_url)
    token = CancellationToken()
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        await memory.add(text(FACTS["pizza"]), cancellation_token=token)
    with pytest.raises(asyncio.CancelledError):
        await memory.query("pizza", cancellation_token=token)
    assert await stored(memory, sqlite_url) == 0
    live = CancellationToken()
    await memory.add(text(FACTS["pizza"]), cancellation_token=live)
    assert len((await memory.query("pizza", cancellation_token=live)).results) == 1
    await memory.close()


# -- bad input -----------------------------------------------------------------------------------


async def test_bad_contents_raise_and_store_nothing(some_url):
    memory = BotWireMemory(unique_ns(), url=some_url)
    bad = [
        (MemoryContent(content=b"\x00\x01", mime_type=MemoryMimeType.BINARY), botwire.InvalidInput),
        (MemoryContent(content=b"pizza", mime_type=TEXT), botwire.UnsupportedValue),
        (MemoryContent(content=Image.from_base64(_PIXEL), mime_type=MemoryMimeType.IMAGE),
         botwire.InvalidInput),
        (MemoryContent(content=Image.from_base64(_PIXEL), mime_type=TEXT),
         botwire.UnsupportedValue),
        (MemoryContent(content="pizza", mime_type="text/html"), botwire.InvalidInput),
        (MemoryContent(content={"a": 1}, mime_type=TEXT), botwire.UnsupportedValue),
        (MemoryContent(content="{}", mime_type=MemoryMimeType.JSON), botwire.UnsupportedValue),
        (text("pizza", when=datetime.date(2024, 1, 1)), botwire.UnsupportedValue),
        (text("pizza", ratio=float("nan")), botwire.InvalidInput),
        (text("x" * 2_000_000), botwire.ValueTooLarge),
        ("pizza", botwire.UnsupportedValue),
        (ListMemory(), botwire.UnsupportedValue),
    ]
    for content, error in bad:
        with pytest.raises(error) as caught:
            await memory.add(content)  # type: ignore[arg-type]
        assert str(caught.value)
    assert await stored(memory, some_url) == 0
    for query in (b"pizza", 42, MemoryContent(content=b"x", mime_type=MemoryMimeType.BINARY)):
        with pytest.raises(botwire.UnsupportedValue):
            await memory.query(query)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limit"):
        await memory.query("pizza", limit=3)
    for k in (0, -1, True, 1.5, 10**6):
        with pytest.raises(botwire.InvalidInput):
            await memory.query("pizza", k=k)
    with pytest.raises(botwire.InvalidInput):
        await memory.query("pizza", score_threshold="high")
    await memory.close()


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("",), {}, botwire.InvalidKey),
        ((None,), {}, botwire.InvalidKey),
        (("a\x00b",), {}, botwire.InvalidKey),
        (("ns",), {"log": ""}, botwire.InvalidKey),
        (("ns",), {"k": 0}, botwire.InvalidInput),
        (("ns",), {"k": "5"}, botwire.InvalidInput),
        (("ns",), {"k": 100_000}, botwire.InvalidInput),
        (("ns",), {"score_threshold": "0.5"}, botwire.InvalidInput),
        (("ns",), {"name": 3}, botwire.InvalidInput),
        (("ns",), {"url": "ftp://nowhere"}, botwire.ConfigurationError),
        (("ns",), {"url": "sqlite:///x.db", "api_key": "k"}, botwire.ConfigurationError),
    ],
)
def test_bad_arguments(args, kwargs, error):
    with pytest.raises(error):
        BotWireMemory(*args, **kwargs)


def test_missing_autogen_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "autogen_core", None)
    monkeypatch.delitem(sys.modules, "botwire.adapters.autogen")
    extra = re.escape("./botwire[autogen]")
    with pytest.raises(botwire.MissingDependency, match=extra):
        importlib.import_module("botwire.adapters.autogen")


# -- docs/autogen.md -----------------------------------------------------------------------------


def test_docs_example_runs(tmp_path, monkeypatch, capsys):
    for name in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL", "BOTWIRE_MAX_VALUE_BYTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTWIRE_HOME", str(tmp_path))
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {"__name__": "__docs__"})
    out = capsys.readouterr().out
    answer, shown = out.split("\nRelevant memory content:\n")
    assert answer == "ORDER-789 is on its way and will come after 6 pm.\n"
    prompt, queried = shown.split("Allergic to peanuts {'call': 1, 'score': ")
    assert prompt == (  # the allergy does not match the question: not in the prompt
        "1. Prefers deliveries after 6 pm\n"
        '2. {"last_order": "ORDER-789", "status": "out for delivery"}\n'
    )
    assert '"config":{"namespace":"customer-555-0123","log":"autogen","k":3}' in queried
    assert (tmp_path / "botwire.db").exists()

