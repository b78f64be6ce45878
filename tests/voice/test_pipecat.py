"""BotWireMemoryProcessor in real Pipecat pipelines: briefing, per-turn recall, turns, tools, end.

The pipelines are Pipecat's own pieces (``LLMContextAggregatorPair``, ``LLMService``,
``run_test``); only the model is scripted, so nothing leaves the machine.
"""

from __future__ import annotations

from frameworks import need

need("pipecat", "pipecat")

import json  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

try:  # pipecat-ai >= 1.14
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema  # noqa: E402
except ImportError:  # pipecat-ai 1.13
    from pipecat.adapters.schemas.tools_schema import ToolsSchema  # noqa: E402
from pipecat.frames.frames import (  # noqa: E402
    FunctionCallFromLLM,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.processors.aggregators.llm_context import LLMContext  # noqa: E402
from pipecat.processors.aggregators.llm_response_universal import (  # noqa: E402
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.services.llm_service import LLMService  # noqa: E402
from pipecat.tests.utils import SleepFrame, run_test  # noqa: E402
from pipecat.transports.base_transport import BaseTransport  # noqa: E402
from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies  # noqa: E402

from botwire import InvalidInput  # noqa: E402
from botwire.voice import AsyncCallMemory  # noqa: E402
from botwire.voice.context import FIRST_CALL  # noqa: E402
from botwire.voice.pipecat import (  # noqa: E402
    MEMORY_HEADER,
    RECALL_HEADER,
    BotWireMemoryProcessor,
    end_call_on_disconnect,
    memory_tools,
    register_memory_tools,
)

ANA = "+14155550123"
SYSTEM = {"role": "system", "content": "You are the pizzeria's phone agent."}


class ScriptedLLM(LLMService):
    """A real ``LLMService`` whose completions come from a script: a reply text, or a tool call
    as ``(name, arguments)``. Records the messages of every context it is asked to complete."""

    def __init__(self, script: list[Any]) -> None:
        super().__init__()
        self.script = list(script)
        self.seen: list[list[dict[str, Any]]] = []
        self.replies = 0  # text replies pushed: each scripted turn ends with one

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        self.seen.append([dict(m) for m in frame.context.get_messages()])
        step = self.script.pop(0)
        if isinstance(step, tuple):
            name, args = step
            call = FunctionCallFromLLM(name, f"call_{len(self.seen)}", args, frame.context)
            await self.run_function_calls([call])
            return
        await self.push_frame(LLMFullResponseStartFrame())
        await self.push_frame(LLMTextFrame(step))
        await self.push_frame(LLMFullResponseEndFrame())
        self.replies += 1


def said(*texts: str) -> list[list]:
    """The frames of the caller saying each text as one turn (turns decided externally)."""
    return [
        [
            UserStartedSpeakingFrame(),
            TranscriptionFrame(text, "caller", "now"),
            SleepFrame(0.05),
            UserStoppedSpeakingFrame(),
        ]
        for text in texts
    ]


def one_turn_at_a_time(turns: list[list], llm: ScriptedLLM) -> Iterator:
    """The turns' frames, each turn sent once the model has answered the one before: a fixed
    pause is not enough on a loaded machine, where the next turn would reach the shared context
    while the memory is still being read for this one."""
    for number, frames in enumerate(turns):
        yield from frames
        waited = 0.0
        while llm.replies <= number and waited < 30:
            yield SleepFrame(0.02)
            waited += 0.02
        yield SleepFrame(0.1)  # the assistant aggregator adds the reply to the context


async def run_call(
    memory: BotWireMemoryProcessor, llm: ScriptedLLM, turns: list[list], tools: list | None = None
) -> LLMContext:
    context = LLMContext([dict(SYSTEM)], tools=tools) if tools else LLMContext([dict(SYSTEM)])
    params = LLMUserAggregatorParams(user_turn_strategies=ExternalUserTurnStrategies())
    pair = LLMContextAggregatorPair(context, user_params=params)
    pipeline = Pipeline([pair.user(), memory, llm, pair.assistant()])
    await run_test(pipeline, frames_to_send=one_turn_at_a_time(turns, llm))  # type: ignore[arg-type]
    return context


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/m.db"


@pytest.fixture
async def ana_known(url) -> None:
    async with AsyncCallMemory(ANA, url=url, platform="vapi") as call:
        await call.remember("customer_name", "Ana")
        await call.remember_fact("Ana is allergic to peanuts")
        await call.end_call(summary="Ana ordered a margherita")


async def conversation(url: str) -> list[dict[str, Any]]:
    async with AsyncCallMemory(ANA, url=url) as call:
        return [e.value for e in await call.memory.log("conversation").read()]


def tool_results(messages: list[dict[str, Any]]) -> list[str]:
    """What the tools answered, as the model reads them (Pipecat stores results as JSON)."""
    return [json.loads(m["content"]) for m in messages if m.get("role") == "tool"]


def with_header(messages: list[dict[str, Any]], header: str) -> list[int]:
    return [i for i, m in enumerate(messages) if str(m.get("content", "")).startswith(header)]


async def test_a_call_is_briefed_recalled_recorded_and_ended(url, ana_known):
    memory = BotWireMemoryProcessor(ANA, url=url)
    llm = ScriptedLLM(["Hi Ana, the usual margherita?", "Noted, nothing with peanuts."])
    await run_call(memory, llm, said("hello, it's Ana", "anything with peanuts on the menu?"))

    first, second = llm.seen
    # the briefing: once, right after the instructions, in every later context too
    for messages in (first, second):
        assert with_header(messages, MEMORY_HEADER) == [1]
        assert messages[0] == SYSTEM
    briefing = first[1]["content"]
    assert briefing.startswith(MEMORY_HEADER + "\n")
    assert "customer_name: Ana" in briefing and "Ana ordered a margherita" in briefing
    # per-turn recall: one message, just before the caller's newest message, replaced each turn
    assert with_header(first, RECALL_HEADER) == [len(first) - 2]
    assert with_header(second, RECALL_HEADER) == [len(second) - 2]
    assert second[-1] == {"role": "user", "content": "anything with peanuts on the menu?"}
    assert "Ana is allergic to peanuts" in second[-2]["content"]
    # a turn is recorded after its search, so it never finds itself
    assert "hello" not in first[-2]["content"]
    assert "peanuts on the menu" not in second[-2]["content"]

    turns = await conversation(url)
    assert [(t["role"], t["text"]) for t in turns] == [
        ("user", "hello, it's Ana"),
        ("assistant", "Hi Ana, the usual margherita?"),
        ("user", "anything with peanuts on the menu?"),
        ("assistant", "Noted, nothing with peanuts."),
    ]
    assert {(t["platform"], t["call_id"]) for t in turns} == {("pipecat", memory.memory.call_id)}

    # cleanup recorded the call: the next call is briefed with two calls, this one newest
    async with AsyncCallMemory(ANA, url=url) as later:
        assert (await later.memory.get("last_call"))["platform"] == "pipecat"
        calls = [e.value for e in await later.memory.log("calls").read()]
        assert [c["platform"] for c in calls] == ["vapi", "pipecat"]


async def test_a_first_caller_is_told_so_and_recall_can_be_off(url):
    memory = BotWireMemoryProcessor(ANA, url=url, recall_limit=0, role="developer")
    llm = ScriptedLLM(["Welcome!"])
    context = await run_call(memory, llm, said("hi there"))

    (seen,) = llm.seen
    assert seen[1] == {"role": "developer", "content": f"{MEMORY_HEADER}\n{FIRST_CALL}"}
    assert with_header(seen, RECALL_HEADER) == []
    assert with_header(context.get_messages(), MEMORY_HEADER) == [1]  # added once, kept
    assert [t["text"] for t in await conversation(url)] == ["hi there", "Welcome!"]


async def test_nothing_found_adds_no_recall_message(url):
    memory = BotWireMemoryProcessor(ANA, url=url)
    llm = ScriptedLLM(["Hello!", "Sure."])
    await run_call(memory, llm, said("good evening", "quattro stagioni please"))
    for messages in llm.seen:  # an unknown caller: no match, so no stale or empty message
        assert with_header(messages, RECALL_HEADER) == []


async def test_tools_run_through_the_llm_service_and_store(url, ana_known):
    async with AsyncCallMemory(ANA, url=url, platform="pipecat") as call:
        llm = ScriptedLLM(
            [
                ("remember", {"key": "favourite_pizza", "value": "diavola"}),
                "Saved your favourite.",
                ("remember", {"key": "~call/x", "value": "y"}),
                "I could not save that.",
            ]
        )
        schemas = register_memory_tools(llm, call)
        assert [s.name for s in schemas] == ["recall_memory", "remember", "remember_fact", "forget"]
        assert all(llm.has_function(s.name) for s in schemas)
        memory = BotWireMemoryProcessor(call, recall_limit=0)
        context = await run_call(
            memory, llm, said("my favourite is diavola", "and save ~call/x"), tools=None
        )
        assert await call.memory.get("favourite_pizza") == "diavola"
        assert await call.memory.get("~call/x") is None
        results = tool_results(context.get_messages())
        assert results[0] == "Remembered favourite_pizza."
        assert "kept by botwire itself" in results[1]  # a refusal is answered, not raised


async def test_schemas_with_handlers_answer_like_the_webhooks(url, ana_known):
    async with AsyncCallMemory(ANA, url=url) as call:
        tools = {s.name: s for s in memory_tools(call)}
        assert tools["remember"].required == ["key", "value"]
        assert tools["recall_memory"].to_default_dict()["parameters"]["required"] == ["query"]
        llm = ScriptedLLM(
            [
                ("recall_memory", {"query": "peanuts"}),
                "You are allergic.",
                ("forget", {"key": "customer_name"}),
                "Done.",
                ("remember_fact", {}),
                "Hm.",
            ]
        )
        await run_call(
            BotWireMemoryProcessor(call, recall_limit=0),
            llm,
            said("what do you know", "forget my name", "note this"),
            tools=ToolsSchema(standard_tools=list(tools.values())),
        )
        results = tool_results(llm.seen[-1])
        assert "Ana is allergic to peanuts" in results[0]
        assert results[1] == "Forgot customer_name."
        assert results[2] == "missing argument 'text'"
        assert await call.memory.get("customer_name") is None


async def test_the_transport_disconnect_ends_the_call_once(url):
    class Transport(BaseTransport):
        def __init__(self) -> None:
            super().__init__()
            self._register_event_handler("on_client_disconnected")

        def input(self):  # pragma: no cover - not part of a pipeline here
            raise NotImplementedError

        def output(self):  # pragma: no cover
            raise NotImplementedError

    async with AsyncCallMemory(ANA, url=url, platform="pipecat") as call:
        memory = BotWireMemoryProcessor(call)
        transport = Transport()
        end_call_on_disconnect(transport, memory)
        await call.record_turn("user", "bye")
        await transport._call_event_handler("on_client_disconnected", object())
        await transport.cleanup()  # waits for the event's handlers, as at the end of a call
        await memory.end_call(summary="too late, already ended")  # idempotent
        calls = [e.value for e in await call.memory.log("calls").read()]
        assert len(calls) == 1 and calls[0]["call_id"] == call.call_id
        assert calls[0].get("summary") is None


async def test_a_storage_outage_does_not_stop_the_call(caplog):
    memory = BotWireMemoryProcessor(ANA, url="http://127.0.0.1:9?retries=0")
    llm = ScriptedLLM(["Hello!"])
    await run_call(memory, llm, said("hi"))
    (seen,) = llm.seen  # the call went on, without memory
    assert seen == [SYSTEM, {"role": "user", "content": "hi"}]
    assert "botwire: cannot read the memory" in caplog.text
    assert "botwire: cannot record" in caplog.text


def test_bad_arguments_are_refused(url):
    with pytest.raises(InvalidInput, match="recall_limit"):
        BotWireMemoryProcessor(ANA, url=url, recall_limit=-1)
    with pytest.raises(InvalidInput, match="role"):
        BotWireMemoryProcessor(ANA, url=url, role="assistant")
    with pytest.raises(InvalidInput, match="budget"):
        BotWireMemoryProcessor(ANA, url=url, budget=-5)
    with pytest.raises(InvalidInput, match="phone number"):
        BotWireMemoryProcessor(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="withheld"):
        BotWireMemoryProcessor("anonymous", url=url)
    with pytest.raises(InvalidInput, match="AsyncCallMemory"):
        memory_tools("+14155550123")  # type: ignore[arg-type]


async def test_an_open_memory_takes_no_connection_arguments(url):
    async with AsyncCallMemory(ANA, url=url) as call:
        with pytest.raises(InvalidInput, match="go with a phone number"):
            BotWireMemoryProcessor(call, url=url)
