"""The CrewAI tools: remember / recall / list_memories / forget on a botwire namespace.

Each behaviour runs on the embedded SQLite engine, PostgreSQL and a botwire server over HTTP
(the ``url`` fixture), and a crew of a real ``crewai.Agent`` driven by a scripted LLM calls
the tools through CrewAI's own ReAct loop.
"""

from __future__ import annotations

from frameworks import need

need("crewai", "crewai")

import copy  # noqa: E402
import re  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402
from crewai import Agent, Crew, Task  # noqa: E402
from crewai.tools import BaseTool  # noqa: E402

import botwire  # noqa: E402
from botwire import InvalidKey, Memory  # noqa: E402
from botwire.adapters.crewai import (  # noqa: E402
    BotWireForgetTool,
    BotWireListTool,
    BotWireRecallTool,
    BotWireRememberTool,
    botwire_tools,
)
from botwire.adapters.crewai_tools import MAX_LISTED, MAX_VALUE_CHARS  # noqa: E402


def new_ns() -> str:
    return f"crewai-tools-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def ns() -> str:
    return new_ns()


@pytest.fixture
def tools(ns, url):
    made = botwire_tools(ns, url=url)
    yield {tool.name: tool for tool in made}
    made[0].memory.close()


def stored(ns: str, url: str) -> dict:
    """Everything in the namespace, read by a Memory of its own."""
    with Memory(ns, url=url) as memory:
        return dict(memory.items())


# -- construction -----------------------------------------------------------------------------


def test_botwire_tools_are_crewai_tools_sharing_one_memory(ns, sqlite_url):
    made = botwire_tools(ns, url=sqlite_url)
    assert [t.name for t in made] == ["remember", "recall", "list_memories", "forget"]
    assert all(isinstance(t, BaseTool) for t in made)
    assert len({id(t.memory) for t in made}) == 1
    assert made[0].memory.namespace == ns and all(t.namespace == ns for t in made)
    remember = made[0]
    assert set(remember.args_schema.model_fields) == {"key", "value"}
    assert set(made[1].args_schema.model_fields) == {"query", "limit"}
    assert set(made[2].args_schema.model_fields) == {"prefix"}
    assert set(made[3].args_schema.model_fields) == {"key"}
    assert "Tool Name: remember" in remember.formatted_description
    made[0].memory.close()


def test_a_tool_class_takes_a_namespace_or_an_open_memory(ns, sqlite_url):
    tool = BotWireRememberTool(ns, url=sqlite_url)
    assert tool.memory.namespace == ns
    tool.memory.close()
    with Memory(ns, url=sqlite_url) as memory:
        recall = BotWireRecallTool(memory=memory)
        assert recall.memory is memory
        with pytest.raises(ValueError, match="differs"):
            BotWireForgetTool("other", memory=memory)
        with pytest.raises(ValueError, match="not both"):
            BotWireListTool(memory=memory, url=sqlite_url)
        with pytest.raises(ValueError, match="differs"):
            botwire_tools("other", memory=memory)
        assert [t.memory for t in botwire_tools(memory=memory)] == [memory] * 4
    with pytest.raises(TypeError, match="namespace"):
        BotWireRememberTool()
    with pytest.raises(TypeError, match="namespace"):
        botwire_tools()
    with pytest.raises(InvalidKey):
        botwire_tools("", url=sqlite_url)


def test_copies_share_the_open_memory(ns, sqlite_url, scripted_llm):
    remember, *_ = made = botwire_tools(ns, url=sqlite_url)
    twin = copy.deepcopy(remember)
    assert twin is not remember and twin.memory is remember.memory
    agent = Agent(role="r", goal="g", backstory="b", tools=made, llm=scripted_llm())
    assert agent.copy().tools[0].memory is remember.memory
    twin.run(key="k", value="v")
    assert remember.memory.get("k") == "v"
    remember.memory.close()


# -- each tool, sync and async ----------------------------------------------------------------


def test_remember_stores_json_values_and_replaces(tools, ns, url):
    remember = tools["remember"]
    assert remember.run(key="favorite_color", value="blue") == "Remembered favorite_color: blue"
    assert remember.run(key="orders", value=["ORDER-1", {"id": 2}]) == (
        'Remembered orders: ["ORDER-1", {"id": 2}]'
    )
    assert remember.run(key="vip", value=True) == "Remembered vip: true"
    remember.run(key="favorite_color", value="green")
    assert stored(ns, url) == {
        "favorite_color": "green",
        "orders": ["ORDER-1", {"id": 2}],
        "vip": True,
    }


async def test_async_tools_store_and_read_through_async_memory(tools, ns, url):
    assert await tools["remember"].arun(key="language", value="Portuguese") == (
        "Remembered language: Portuguese"
    )
    assert stored(ns, url) == {"language": "Portuguese"}
    assert "- language: Portuguese" in await tools["recall"].arun(query="language", limit=5)
    assert "- language: Portuguese" in await tools["list_memories"].arun(prefix="")
    assert await tools["forget"].arun(key="language") == "Forgot language."
    assert await tools["forget"].arun(key="language") == "Nothing was saved under 'language'."
    assert await tools["recall"].arun(query="language", limit=5) == (
        "Nothing saved matches 'language'."
    )
    assert stored(ns, url) == {}


def test_recall_finds_the_exact_key_first_then_keyword_matches(tools, url, ns):
    tools["remember"].run(key="color", value="blue")
    tools["remember"].run(key="car", value="a red car with a blue stripe")
    tools["remember"].run(key="city", value="Lisbon")
    text = tools["recall"].run(query="color", limit=5)
    assert text.splitlines()[0] == "Found 1 for 'color':"
    assert text.splitlines()[1] == "- color: blue"

    text = tools["recall"].run(query="blue", limit=5)
    assert "- car: a red car with a blue stripe" in text and "- color: blue" in text
    assert "city" not in text

    # the exact key comes first even when the search ranks it lower; no line twice
    text = tools["recall"].run(query="car", limit=5)
    assert text.splitlines()[1] == "- car: a red car with a blue stripe"
    assert text.count("- car:") == 1


def test_recall_also_finds_log_entries_and_respects_limit(tools, ns, url):
    with Memory(ns, url=url) as memory:
        memory.log("calls").append("asked about a refund for ORDER-789")
        memory.set_many({f"refund-{i}": f"refund request {i}" for i in range(8)})
    text = tools["recall"].run(query="refund", limit=3)
    lines = text.splitlines()
    assert lines[0] == "Found 3 for 'refund':" and len(lines) == 4
    text = tools["recall"].run(query="ORDER-789", limit=20)
    assert "- calls #1: asked about a refund for ORDER-789" in text


def test_recall_handles_blank_and_overlong_queries(tools):
    assert tools["recall"].run(query="   ", limit=5) == "Give a key or a few words to search for."
    tools["remember"].run(key="note", value="word " * 3)
    # longer than any key: no exact lookup, but still searched
    assert "- note:" in tools["recall"].run(query="word " * 200, limit=5)
    refused = tools["recall"].run(query="word " * 1000, limit=5)
    assert refused.startswith("Could not recall") and "limit is 4096" in refused


def test_long_values_are_cut_short_for_the_model(tools, ns, url):
    tools["remember"].run(key="transcript", value="x" * 5000)
    shown = tools["recall"].run(query="transcript", limit=1).splitlines()[1]
    assert shown == "- transcript: " + "x" * (MAX_VALUE_CHARS - 3) + "..."
    assert stored(ns, url)["transcript"] == "x" * 5000  # stored whole


def test_list_memories_in_key_order_with_prefix_and_a_cap(tools, ns, url):
    assert tools["list_memories"].run(prefix="") == "No facts stored."
    tools["remember"].run(key="pref:lang", value="pt")
    assert tools["list_memories"].run(prefix="") == "1 fact stored:\n- pref:lang: pt"
    tools["remember"].run(key="pref:color", value="blue")
    tools["remember"].run(key="name", value="Ana")
    assert tools["list_memories"].run(prefix="pref:") == (
        "2 facts stored with keys starting 'pref:':\n- pref:color: blue\n- pref:lang: pt"
    )
    assert tools["list_memories"].run(prefix="zzz") == "No facts stored with keys starting 'zzz'."
    with Memory(ns, url=url) as memory:
        memory.set_many({f"item-{i:03}": i for i in range(MAX_LISTED + 5)})
    text = tools["list_memories"].run(prefix="item-")
    assert text.startswith(f"The first {MAX_LISTED} facts stored with keys starting 'item-'")
    assert len(text.splitlines()) == MAX_LISTED + 1
    assert text.splitlines()[-1] == f"- item-{MAX_LISTED - 1:03}: {MAX_LISTED - 1}"


def test_forget_deletes_one_key(tools, ns, url):
    tools["remember"].run(key="a", value=1)
    tools["remember"].run(key="b", value=2)
    assert tools["forget"].run(key="a") == "Forgot a."
    assert tools["forget"].run(key="a") == "Nothing was saved under 'a'."
    assert stored(ns, url) == {"b": 2}


# -- bad input: a readable refusal, nothing stored --------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("", "v", "key must not be empty"),
        ("k" * 513, "v", "the limit is 512"),
        ("bad\x00key", "v", "NUL"),
        ("k", float("nan"), "cannot be stored as JSON"),
        ("k", {"when": {1, 2}}, "is not a JSON value"),
        ("k", "x" * (1024 * 1024 + 1), "the limit is 1048576 bytes"),
    ],
)
def test_bad_input_is_refused_in_words_and_stores_nothing(tools, ns, url, key, value, reason):
    answer = tools["remember"].run(key=key, value=value)
    assert answer.startswith(f"Could not remember {key!r}: ") and reason in answer
    assert answer.endswith("Nothing was changed.")
    assert stored(ns, url) == {}


@pytest.mark.parametrize(
    ("key", "reason"),
    [("", "key must not be empty"), ("k" * 513, "the limit is 512"), ("a\x00b", "NUL")],
)
def test_bad_keys_are_refused_by_forget_too(tools, ns, url, key, reason):
    tools["remember"].run(key="kept", value=1)
    answer = tools["forget"].run(key=key)
    assert answer.startswith(f"Could not forget {key!r}: ") and reason in answer
    assert stored(ns, url) == {"kept": 1}


async def test_bad_input_is_refused_on_the_async_path_too(tools, ns, url):
    answer = await tools["remember"].arun(key="", value="v")
    assert answer == "Could not remember '': key must not be empty. Nothing was changed."
    answer = await tools["remember"].arun(key="k", value=float("inf"))
    assert answer.startswith("Could not remember 'k'") and "cannot be stored as JSON" in answer
    assert "must not be empty" in await tools["forget"].arun(key="")
    assert stored(ns, url) == {}


def test_arguments_that_do_not_fit_the_schema_are_rejected_before_the_tool_runs(tools, ns, url):
    with pytest.raises(ValueError, match="arguments validation failed"):
        tools["remember"].run(key=["not", "a", "str"], value="v")
    with pytest.raises(ValueError, match="arguments validation failed"):
        tools["recall"].run(query="x", limit=0)
    assert stored(ns, url) == {}


# -- a crew using the tools -------------------------------------------------------------------


def _observation(prompt: str) -> str:
    return re.findall(r"Observation: (.*?)(?:\n\n|$)", prompt, flags=re.S)[-1]


def _crew(llm, tools, description: str) -> Crew:
    agent = Agent(
        role="Phone support agent",
        goal="Help callers, remembering what they tell you across calls",
        backstory="You answer the phone for a small shop.",
        llm=llm,
        tools=tools,
    )
    task = Task(description=description, expected_output="A short reply", agent=agent)
    return Crew(agents=[agent], tasks=[task])


def test_a_crew_remembers_in_one_run_and_recalls_in_the_next(url, scripted_llm):
    caller = new_ns()

    def after_remember(prompt: str) -> str:
        assert _observation(prompt) == "Remembered favorite_color: blue"
        return "Thought: I now know the final answer\nFinal Answer: Noted, blue it is."

    llm = scripted_llm(
        "Thought: The caller told me a preference; I will save it.\n"
        "Action: remember\n"
        'Action Input: {"key": "favorite_color", "value": "blue"}',
        after_remember,
    )
    tools = botwire_tools(caller, url=url)
    result = _crew(llm, tools, "The caller says: my favorite color is blue.").kickoff()
    tools[0].memory.close()
    assert result.raw == "Noted, blue it is."
    assert stored(caller, url) == {"favorite_color": "blue"}

    def answer_from_memory(prompt: str) -> str:
        found = re.search(r"- favorite_color: (\w+)", _observation(prompt))
        answer = f"Your favorite color is {found.group(1)}." if found else "I don't know."
        return f"Thought: I now know the final answer\nFinal Answer: {answer}"

    llm = scripted_llm(
        "Thought: Let me check what I know about this caller.\n"
        "Action: recall\n"
        'Action Input: {"query": "favorite color", "limit": 5}',
        answer_from_memory,
    )
    tools = botwire_tools(caller, url=url)  # a new call: new objects, same namespace
    result = _crew(llm, tools, "The caller asks: what is my favorite color?").kickoff()
    tools[0].memory.close()
    assert result.raw == "Your favorite color is blue."
    assert len(llm.prompts) == 2 and not llm.replies


def test_a_crew_gets_a_readable_refusal_for_a_bad_key(sqlite_url, scripted_llm, ns):
    def after_refusal(prompt: str) -> str:
        assert _observation(prompt).startswith("Could not remember ''")
        return "Thought: I now know the final answer\nFinal Answer: Could not save that."

    llm = scripted_llm(
        'Thought: save it\nAction: remember\nAction Input: {"key": "", "value": "blue"}',
        after_refusal,
    )
    tools = botwire_tools(ns, url=sqlite_url)
    result = _crew(llm, tools, "Save the color blue.").kickoff()
    tools[0].memory.close()
    assert result.raw == "Could not save that."
    assert stored(ns, sqlite_url) == {}
    assert ns not in botwire.namespaces(url=sqlite_url)
